// The CUDA driver API, loaded at run time (dlopen of libcuda.so.1) instead of linked,
// so kforge binaries start on machines without an NVIDIA driver and can say so.
// Declarations come from the toolkit's cuda.h when it is on the include path, else from
// kforge's own subset (cuda_subset.h), so the runtime builds without the toolkit.
#pragma once
#if defined(__has_include)
#if __has_include(<cuda.h>)
#include <cuda.h>
#define KF_CUDA_TOOLKIT_HEADER 1
#endif
#endif
#ifndef KF_CUDA_TOOLKIT_HEADER
#include "cuda_subset.h"
#endif

namespace kf {
namespace cuda {

struct Driver {
#define KF_CUDA_DRIVER_FUNCTIONS(X)                                                           \
  X(cuInit) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute)      \
  X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent)                  \
  X(cuCtxGetCurrent) X(cuCtxGetDevice)                                                         \
  X(cuCtxSynchronize) X(cuGetErrorString) X(cuMemAlloc) X(cuMemFree) X(cuMemcpyHtoD)            \
  X(cuMemcpyDtoH) X(cuMemsetD16) X(cuMemsetD32) X(cuModuleLoadData) X(cuModuleUnload)           \
  X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuDriverGetVersion)
// Null when the driver lacks them: a newer entry point, and what only the GPU checks use
// (streams and graph capture, to check launches inside captured graphs).
#define KF_CUDA_DRIVER_OPTIONAL_FUNCTIONS(X)                                                   \
  X(cuLaunchKernelEx) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)               \
  X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiate) X(cuGraphLaunch)         \
  X(cuGraphExecDestroy) X(cuGraphDestroy)
#define KF_CUDA_DECLARE(fn) decltype(&::fn) fn = nullptr;
  KF_CUDA_DRIVER_FUNCTIONS(KF_CUDA_DECLARE)
  KF_CUDA_DRIVER_OPTIONAL_FUNCTIONS(KF_CUDA_DECLARE)
#undef KF_CUDA_DECLARE
};

// The process-wide driver table, or nullptr (with `why` set) when libcuda cannot be
// loaded or lacks a function. Thread-safe; loads once.
const Driver* driver(const char** why = nullptr);

}  // namespace cuda
}  // namespace kf
