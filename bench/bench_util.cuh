// What the GPU layer benchmarks share: fatal checks of CUDA and kforge calls, device
// allocation, and fills of random data made on the device (a counter-based hash, so a
// buffer of any size is filled fast and the same every run; never zeros).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kforge/kforge.h"

namespace kf {
namespace bench {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

inline void kf_check(kf_status st, const char* what) {
  if (st != KF_OK) {
    std::fprintf(stderr, "%s: %s: %s\n", what, kf_status_name(st), kf_last_error());
    std::exit(1);
  }
}

inline void* alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, std::max<size_t>(bytes, 256)), "cudaMalloc");
  return p;
}

__device__ inline uint32_t mix(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
__device__ inline float uniform(uint64_t i, uint32_t seed, float lo, float hi) {
  return lo + (hi - lo) * (mix(i, seed) >> 8) * (1.f / 16777216.f);
}

// Random 32-bit words (int4 or MXFP4 codes: any bits).
__global__ void fill_bits(uint32_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = mix(i, seed);
}
// bf16 values ~ U(lo, hi) (truncated from fp32).
__global__ void fill_bf16(uint16_t* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint16_t>(__float_as_uint(uniform(i, seed, lo, hi)) >> 16);
}
__global__ void fill_f32(float* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = uniform(i, seed, lo, hi);
}

}  // namespace bench
}  // namespace kf
