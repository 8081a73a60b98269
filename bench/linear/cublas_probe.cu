// Development probe: cuBLAS bf16 dense at one layer shape, launched a few times and
// nothing else, so a profiler (ncu --launch-skip) sees the kernel cuBLAS picks for the
// baseline bench/linear compares against (its tile and cluster are in its name) without
// the benchmark's thousands of other launches. Random data (bench_util.cuh's fills, two
// more launches before the first GEMM); the result is not checked
// (bench/linear and tests/gpu check kforge against references, not cuBLAS).
//   kforge_cublas_probe N K M [launches]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "bench_util.cuh"

int main(int argc, char** argv) {
  using namespace kf::bench;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s N K M [launches]\n", argv[0]);
    return 2;
  }
  const int n = std::atoi(argv[1]), k = std::atoi(argv[2]), m = std::atoi(argv[3]);
  const int launches = argc > 4 ? std::atoi(argv[4]) : 10;
  if (n <= 0 || k <= 0 || m <= 0 || launches <= 0) {
    std::fprintf(stderr, "N, K, M and launches must be positive (got %s %s %s)\n", argv[1], argv[2], argv[3]);
    return 2;
  }
  device_or_skip();
  const size_t w_count = size_t(n) * k, x_count = size_t(m) * k;
  auto* w = static_cast<uint16_t*>(alloc(w_count * 2));
  auto* x = static_cast<uint16_t*>(alloc(x_count * 2));
  void* y = alloc(size_t(m) * n * 2);
  fill_bf16<<<1024, 256>>>(w, w_count, 1, -1.f, 1.f);
  fill_bf16<<<1024, 256>>>(x, x_count, 2, -1.f, 1.f);
  cublasHandle_t h;
  cublasCreate(&h);
  const float alpha = 1.f, beta = 0.f;
  for (int i = 0; i < launches; ++i)
    // As bench/linear: row-major y[M,N] = x[M,K] W[N,K]^T is column-major y^T = W x^T.
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, k, x, CUDA_R_16BF, k, &beta, y,
                 CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  const cudaError_t e = cudaDeviceSynchronize();
  std::printf("cuBLAS bf16 %d x %d at M = %d: %d launches, %s\n", n, k, m, launches, cudaGetErrorString(e));
  cublasDestroy(h);
  return e == cudaSuccess ? 0 : 1;
}
