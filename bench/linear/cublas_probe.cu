// Development probe: cuBLAS bf16 dense at one layer shape, launched a few times and
// nothing else, so a profiler (ncu --launch-skip) sees the kernel cuBLAS picks for the
// baseline bench/linear compares against (its tile and cluster are in its name) without
// the benchmark's thousands of other launches. Random data; the result is not checked
// (bench/linear and tests/gpu check kforge against references, not cuBLAS).
//   kforge_cublas_probe N K M [launches]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

int main(int argc, char** argv) {
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
  // bf16 bit patterns of values in [-1, 1): the top half of a float's bits.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  auto random_bf16 = [&](size_t count) {
    std::vector<uint16_t> v(count);
    for (auto& e : v) {
      const float f = dist(rng);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      e = static_cast<uint16_t>(bits >> 16);
    }
    return v;
  };
  const std::vector<uint16_t> hw = random_bf16(size_t(n) * k), hx = random_bf16(size_t(m) * k);
  void *w, *x, *y;
  if (cudaMalloc(&w, hw.size() * 2) != cudaSuccess || cudaMalloc(&x, hx.size() * 2) != cudaSuccess ||
      cudaMalloc(&y, size_t(m) * n * 2) != cudaSuccess) {
    std::fprintf(stderr, "no GPU memory for %d x %d x %d (or no GPU): skipped\n", n, k, m);
    return 0;
  }
  cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice);
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
