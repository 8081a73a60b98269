// The HIP module API, loaded at run time (dlopen of libamdhip64) instead of linked, so
// the runtime starts on machines without ROCm. Types and prototypes come from the HIP
// headers (Debian: libamdhip64-dev), whose macros also pick the versioned symbol names
// (a ROCm 6 header maps hipGetDeviceProperties to hipGetDevicePropertiesR0600).
#pragma once
#ifndef __HIP_PLATFORM_AMD__
#define __HIP_PLATFORM_AMD__
#endif
#include <hip/hip_runtime_api.h>

namespace kf {
namespace hip {

struct Driver {
// The second half is autotune's (tuner/hip_measurer.cpp): memory, streams, events.
// hipExtMallocWithFlags(.., hipDeviceMallocDefault) stands for hipMalloc, which the
// header overloads (a template), so decltype cannot name it; both are in HIP 5.2 and 6.
#define KF_HIP_FUNCTIONS(X)                                                                          \
  X(hipInit) X(hipGetDeviceCount) X(hipGetDevice) X(hipGetDeviceProperties) X(hipGetErrorString)      \
  X(hipModuleLoadData) X(hipModuleGetFunction) X(hipModuleUnload) X(hipModuleLaunchKernel)            \
  X(hipGetErrorName) X(hipSetDevice) X(hipDeviceGetAttribute) X(hipDriverGetVersion)                  \
  X(hipRuntimeGetVersion) X(hipDeviceSynchronize) X(hipDeviceReset) X(hipExtMallocWithFlags)          \
  X(hipFree) X(hipMemcpy) X(hipMemsetD32) X(hipMemsetD16Async) X(hipMemsetD32Async) X(hipStreamCreate) \
  X(hipStreamDestroy) X(hipStreamQuery) X(hipEventCreate) X(hipEventDestroy) X(hipEventRecord)        \
  X(hipEventElapsedTime)
#define KF_HIP_DECLARE(fn) decltype(&::fn) fn = nullptr;
  KF_HIP_FUNCTIONS(KF_HIP_DECLARE)
#undef KF_HIP_DECLARE
};

// The process-wide table, or nullptr (with `why` set) when no libamdhip64 can be loaded
// or it lacks a function. Thread-safe; loads once.
const Driver* driver(const char** why = nullptr);

}  // namespace hip
}  // namespace kf
