// What the GPU layer benchmarks share: fatal checks of CUDA and kforge calls, device
// allocation, and fills of random data made on the device (a counter-based hash, so a
// buffer of any size is filled fast and the same every run; never zeros).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

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

// Device 0's properties; without a CUDA GPU says so and exits 77 (skipped, never passed).
inline cudaDeviceProp device_or_skip() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: no CUDA GPU\n");
    std::exit(77);
  }
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  return prop;
}

// What every layer benchmark starts with: its command line `[DB (tuned_db/kforge.sqlite)]
// [CSV] [reps (100, at least 50)]`, the device's properties and the DB opened and prepared.
// Without a GPU it says so and exits 77.
struct Start {
  const char* db_path;
  const char* csv_path;  // null: no CSV
  int reps;
  cudaDeviceProp prop;
  kf_db* db;
};

// The DB at `path` opened again with a runtime switch set to 0 at open (the caller's
// setting restored after): KFORGE_OVERLAP_LAUNCHES for the rows that time the runtime's
// launches each after the one before it has finished, KFORGE_CLUSTER_ALIGN for moe_align
// in one workgroup at every T.
inline kf_db* open_switched_off(const char* path, const char* variable) {
  const char* before = std::getenv(variable);
  const std::string kept = before ? before : "";
  setenv(variable, "0", 1);
  kf_db* db = nullptr;
  const kf_status opened = kf_open(path, &db);
  if (before) setenv(variable, kept.c_str(), 1);
  else unsetenv(variable);
  kf_check(opened, (std::string("kf_open (") + variable + "=0)").c_str());
  return db;
}
inline kf_db* open_without_overlap(const char* path) { return open_switched_off(path, "KFORGE_OVERLAP_LAUNCHES"); }

inline Start start(int argc, char** argv) {
  Start s{};
  s.db_path = argc > 1 ? argv[1] : "tuned_db/kforge.sqlite";
  s.csv_path = argc > 2 ? argv[2] : nullptr;
  s.reps = argc > 3 ? std::max(50, std::atoi(argv[3])) : 100;
  s.prop = device_or_skip();
  kf_check(kf_open(s.db_path, &s.db), s.db_path);
  kf_check(kf_prepare(s.db), "kf_prepare");
  return s;
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
