// The driver entry points the CUDA measurer needs beyond the shared loader's table
// (runtime/cuda/cuda_driver.h): streams, events, async memsets, the primary-context
// reset. Loaded from the same libcuda.so.1 the same way (symbols named as cuda.h maps
// them, e.g. cuEventElapsedTime -> cuEventElapsedTime_v2 of driver 12.8+, with a fallback
// to the first version on older drivers).
// Kept here rather than in the shared table so that table (and the runtime built from
// it without the toolkit, via cuda_subset.h) need not grow for the tuner's sake.
#pragma once
#include <cuda.h>

#include "cuda_driver.h"

namespace kf {
namespace cuda {

struct TimingApi {
#define KF_CUDA_TIMING_FUNCTIONS(X)                                                                 \
  X(cuGetErrorName) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamQuery) X(cuEventCreate)            \
  X(cuEventDestroy) X(cuEventRecord) X(cuEventElapsedTime) X(cuMemsetD16Async) X(cuMemsetD32Async)    \
  X(cuDevicePrimaryCtxReset)
#define KF_CUDA_DECLARE(fn) decltype(&::fn) fn = nullptr;
  KF_CUDA_TIMING_FUNCTIONS(KF_CUDA_DECLARE)
#undef KF_CUDA_DECLARE
};

// nullptr (with `why` set) when libcuda cannot be loaded or lacks one of them.
const TimingApi* timing_api(const char** why = nullptr);

}  // namespace cuda
}  // namespace kf
