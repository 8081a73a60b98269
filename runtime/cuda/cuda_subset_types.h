// The few CUDA driver API types and constants kforge uses, declared here so the runtime
// builds without the CUDA toolkit (the driver itself is loaded at run time, see
// cuda_driver.h). Same names, values and layouts as the toolkit's cuda.h; checked
// against it by cuda_subset_check.cpp whenever the toolkit is found at build time.
//
// No include guard on purpose: the check includes this file a second time inside a
// namespace (with KF_CUDA_SUBSET_FORCE_TYPES) to compare every constant.
#if !defined(__cuda_cuda_h__) || defined(KF_CUDA_SUBSET_FORCE_TYPES)
#if !defined(KF_CUDA_SUBSET_TYPES_DONE) || defined(KF_CUDA_SUBSET_FORCE_TYPES)
#ifndef KF_CUDA_SUBSET_FORCE_TYPES
#define KF_CUDA_SUBSET_TYPES_DONE
#endif

typedef int CUdevice;
typedef unsigned long long CUdeviceptr;  // 64-bit hosts only (cuda.h: CUdeviceptr_v2)
typedef struct CUctx_st* CUcontext;
typedef struct CUmod_st* CUmodule;
typedef struct CUfunc_st* CUfunction;
typedef struct CUstream_st* CUstream;
typedef struct CUgraph_st* CUgraph;
typedef struct CUgraphExec_st* CUgraphExec;

typedef enum cudaError_enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
  CUDA_ERROR_NOT_FOUND = 500,
  CUDA_ERROR_UNKNOWN = 999  // the largest code: gives the enum the range of every driver result
} CUresult;

typedef enum CUdevice_attribute_enum {
  CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
} CUdevice_attribute;

typedef enum CUfunction_attribute_enum {
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
} CUfunction_attribute;

typedef enum CUstreamCaptureMode_enum {
  CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
  CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
  CU_STREAM_CAPTURE_MODE_RELAXED = 2
} CUstreamCaptureMode;

typedef enum CUlaunchAttributeID_enum {
  CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6
} CUlaunchAttributeID;

// cuda.h's union has one member per attribute; kforge sets only this one.
typedef union CUlaunchAttributeValue_union {
  char pad[64];
  int programmaticStreamSerializationAllowed;
} CUlaunchAttributeValue;

typedef struct CUlaunchAttribute_st {
  CUlaunchAttributeID id;
  char pad[8 - sizeof(CUlaunchAttributeID)];
  CUlaunchAttributeValue value;
} CUlaunchAttribute;

typedef struct CUlaunchConfig_st {
  unsigned int gridDimX, gridDimY, gridDimZ;
  unsigned int blockDimX, blockDimY, blockDimZ;
  unsigned int sharedMemBytes;
  CUstream hStream;
  CUlaunchAttribute* attrs;
  unsigned int numAttrs;
} CUlaunchConfig;

#endif
#endif
