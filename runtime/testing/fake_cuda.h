// A recording stand-in for libcuda.so.1 (fake_cuda.cpp), for the runtime's launch
// tests on machines without a GPU. One sm_90a device named kf_testing::kTestDevice;
// code objects load as anything; cuLaunchKernel runs nothing and records the kernel's
// symbol, grid, block, dynamic shared memory, whether it may overlap the kernel before it
// (cuLaunchKernelEx with programmatic stream serialization) and a copy of its argument struct (the struct is known from the
// symbol's prefix) into a fixed table, so recording allocates nothing. Memory calls
// fail. The driver reports version 12.4, or KF_FAKE_CUDA_DRIVER_VERSION when set. Like
// the driver, a launch with more than 48 KiB of dynamic shared memory fails
// unless cuFuncSetAttribute allowed that much first. Programs link the library (its soname is libcuda.so.1, so the runtime's dlopen
// finds the loaded one) and read the record with these functions.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kf_fake_cuda_launch {
  char kernel[256];
  unsigned grid[3], block[3];
  unsigned shared_bytes; /* dynamic shared memory */
  void* stream;
  unsigned char args[192];  /* the argument struct, sizeof of its type */
  size_t args_bytes;
  int overlap_previous; /* launched by cuLaunchKernelEx with programmatic stream serialization */
} kf_fake_cuda_launch;

/* Launches recorded since the last reset (the table keeps the first 64). */
int kf_fake_cuda_launch_count(void);
const kf_fake_cuda_launch* kf_fake_cuda_launch_at(int index);
void kf_fake_cuda_reset(void);
/* Code objects loaded so far (cuModuleLoadData calls). */
int kf_fake_cuda_loads(void);
/* Makes cuLaunchKernel of kernels whose symbol starts with `prefix` fail (NULL: none). */
void kf_fake_cuda_fail_launches_of(const char* prefix);

#ifdef __cplusplus
}
#endif
