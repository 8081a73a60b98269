// Built only when the CUDA toolkit is found: proves kforge's own driver API subset
// (cuda_subset.h, used to build the runtime without the toolkit) matches cuda.h.
// Compiling is the test: a prototype that differs from the toolkit's in any parameter
// or return type is a conflicting declaration of a C function, and every constant and
// type size is compared below.
#include <cuda.h>

#include <cstddef>
#include <type_traits>

#include "cuda_subset.h"

namespace kf_subset {
#define KF_CUDA_SUBSET_FORCE_TYPES
#include "cuda_subset_types.h"
#undef KF_CUDA_SUBSET_FORCE_TYPES
}  // namespace kf_subset

#define KF_SAME_VALUE(name) static_assert(static_cast<long>(kf_subset::name) == static_cast<long>(::name), #name);
KF_SAME_VALUE(CUDA_SUCCESS)
KF_SAME_VALUE(CUDA_ERROR_INVALID_VALUE)
KF_SAME_VALUE(CUDA_ERROR_NOT_INITIALIZED)
KF_SAME_VALUE(CUDA_ERROR_NO_DEVICE)
KF_SAME_VALUE(CUDA_ERROR_INVALID_IMAGE)
KF_SAME_VALUE(CUDA_ERROR_NO_BINARY_FOR_GPU)
KF_SAME_VALUE(CUDA_ERROR_NOT_FOUND)
KF_SAME_VALUE(CUDA_ERROR_UNKNOWN)
KF_SAME_VALUE(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
KF_SAME_VALUE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
KF_SAME_VALUE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
KF_SAME_VALUE(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
KF_SAME_VALUE(CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
KF_SAME_VALUE(CU_STREAM_CAPTURE_MODE_GLOBAL)
KF_SAME_VALUE(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
KF_SAME_VALUE(CU_STREAM_CAPTURE_MODE_RELAXED)
#undef KF_SAME_VALUE

static_assert(std::is_same<kf_subset::CUdevice, ::CUdevice>::value, "CUdevice");
static_assert(std::is_same<kf_subset::CUdeviceptr, ::CUdeviceptr>::value, "CUdeviceptr");
static_assert(sizeof(kf_subset::CUresult) == sizeof(::CUresult), "CUresult");
static_assert(sizeof(kf_subset::CUdevice_attribute) == sizeof(::CUdevice_attribute), "CUdevice_attribute");
static_assert(sizeof(kf_subset::CUfunction_attribute) == sizeof(::CUfunction_attribute), "CUfunction_attribute");
static_assert(sizeof(kf_subset::CUlaunchAttributeValue) == sizeof(::CUlaunchAttributeValue), "CUlaunchAttributeValue");
static_assert(sizeof(kf_subset::CUlaunchAttribute) == sizeof(::CUlaunchAttribute), "CUlaunchAttribute");
static_assert(offsetof(kf_subset::CUlaunchAttribute, value) == offsetof(::CUlaunchAttribute, value), "CUlaunchAttribute");
static_assert(sizeof(kf_subset::CUlaunchConfig) == sizeof(::CUlaunchConfig), "CUlaunchConfig");
static_assert(offsetof(kf_subset::CUlaunchConfig, hStream) == offsetof(::CUlaunchConfig, hStream), "CUlaunchConfig");
static_assert(offsetof(kf_subset::CUlaunchConfig, attrs) == offsetof(::CUlaunchConfig, attrs), "CUlaunchConfig");
static_assert(offsetof(kf_subset::CUlaunchConfig, numAttrs) == offsetof(::CUlaunchConfig, numAttrs), "CUlaunchConfig");
