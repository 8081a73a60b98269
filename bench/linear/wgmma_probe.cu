// Development harness of the w4a16_linear wgmma kind (templates/w4a16_linear/wgmma.h):
// instantiates a few configs directly (no pack), checks each against cuBLAS on weights
// dequantised the kernel's way (random data, output poisoned, 5 launches so a race
// shows, normalised error <= 1e-2), and times it cold against cuBLAS bf16 at M = 4096
// on 12288 x 2048. A quick loop for trying a template change before a full tune; the
// tuner and bench/linear are the measurements of record. The operand layouts have their
// own check (tests/gpu/check_wgmma_layout.cu).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cold_timer.h"
#include "w4a16_linear/wgmma.h"

#define CK(x)                                                             \
  do {                                                                    \
    cudaError_t e = (x);                                                  \
    if (e != cudaSuccess) {                                               \
      printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      exit(1);                                                            \
    }                                                                     \
  } while (0)

static uint16_t f2bf(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static uint16_t f2h(float f) {
  __half h = __float2half_rn(f);
  return *reinterpret_cast<uint16_t*>(&h);
}
static float bf2f(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// ---- the kind vs a cuBLAS product on weights dequantised the kernel's way
template <bool BF16>
__global__ void dequant_kernel(const uint32_t* qw, const uint16_t* sc, const uint32_t* qz, bool asym, int N, int K,
                               int G, uint16_t* W) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int kb = blockIdx.y;
  if (n >= N) return;
  const uint32_t w = qw[(size_t)kb * N + n];
  for (int j = 0; j < 8; ++j) {
    const int k = kb * 8 + j, grp = k / G;
    const int q = (w >> (4 * j)) & 15;
    const int z = asym ? (qz[(size_t)grp * (N / 8) + n / 8] >> (4 * (n % 8))) & 15 : 8;
    const uint16_t s = sc[(size_t)grp * N + n];
    float sf = BF16 ? __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(&s)) : __half2float(*reinterpret_cast<const __half*>(&s));
    float v = (q - z) * sf;
    uint16_t out;
    if (BF16) {
      __nv_bfloat16 b = __float2bfloat16_rn(v);
      out = *reinterpret_cast<uint16_t*>(&b);
    } else {
      __half h = __float2half_rn(v);
      out = *reinterpret_cast<uint16_t*>(&h);
    }
    W[(size_t)n * K + k] = out;
  }
}

// CLUSTER: empty, or __cluster_dims__(1, 1, split_k) for a split-K config (its blocks sum
// through distributed shared memory, as wgmma.cu.in launches them).
#define KERNEL(NAME, CLUSTER, N_, K_, G_, BF, AS, BM_, BN_, BK_, W_, SK_, S_)                                  \
  __global__ CLUSTER __launch_bounds__(kf::w4a16::wgmma::block_threads(W_)) void NAME(kf_linear_args a) { \
    kf::w4a16_linear_wgmma<N_, K_, G_, BF, AS, BM_, BN_, BK_, W_, SK_, S_>(a);                             \
  }
KERNEL(c0, , 12288, 2048, 128, true, false, 256, 128, 128, 8, 1, 3)
KERNEL(c1, , 12288, 2048, 128, true, false, 256, 128, 64, 8, 1, 4)
KERNEL(c2, , 12288, 2048, 128, true, false, 128, 128, 128, 8, 1, 4)
KERNEL(c3, __cluster_dims__(1, 1, 4), 12288, 2048, 128, true, false, 64, 128, 128, 8, 4, 4)

struct Cfg {
  const char* name;
  void (*fn)(kf_linear_args);
  int N, K, G;
  bool bf16, asym;
  int bm, bn, bk, warps, split_k, stages;
};
static Cfg cfgs[] = {
    {"bm256_bn128_bk128_w8_s3", c0, 12288, 2048, 128, true, false, 256, 128, 128, 8, 1, 3},
    {"bm256_bn128_bk64_w8_s4", c1, 12288, 2048, 128, true, false, 256, 128, 64, 8, 1, 4},
    {"bm128_bn128_bk128_w8_s4", c2, 12288, 2048, 128, true, false, 128, 128, 128, 8, 1, 4},
    {"bm64_bn128_bk128_w8_sk4_s4", c3, 12288, 2048, 128, true, false, 64, 128, 128, 8, 4, 4},
};

int main() {
  bool ok = true;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("device %s\n", prop.name);
  cublasHandle_t h;
  cublasCreate(&h);
  kf::bench::ColdTimer timer;
  const int N = 12288, K = 2048;
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> ui;
  std::uniform_real_distribution<float> uf(-1, 1);
  std::vector<uint32_t> qw((size_t)K / 8 * N), qz((size_t)K / 32 * N / 8);
  for (auto& v : qw) v = ui(rng);
  for (auto& v : qz) v = ui(rng);
  const int Mmax = 4096;
  uint32_t *dqw, *dqz;
  uint16_t *dsc, *dx, *dy, *dW;
  float *dref, *dws;
  int* dcounters;
  CK(cudaMalloc(&dqw, qw.size() * 4));
  CK(cudaMalloc(&dqz, qz.size() * 4));
  CK(cudaMalloc(&dsc, (size_t)K / 32 * N * 2));
  CK(cudaMalloc(&dx, (size_t)Mmax * K * 2));
  CK(cudaMalloc(&dy, (size_t)Mmax * N * 2));
  CK(cudaMalloc(&dW, (size_t)N * K * 2));
  CK(cudaMalloc(&dref, (size_t)Mmax * N * 4));
  CK(cudaMalloc(&dws, (size_t)4 * Mmax * N * 4));  // split-K partials, up to 4 slices
  CK(cudaMalloc(&dcounters, (size_t)(N / 64) * (Mmax / 64) * 4));
  CK(cudaMemset(dcounters, 0, (size_t)(N / 64) * (Mmax / 64) * 4));  // the kernels leave them zero
  CK(cudaMemcpy(dqw, qw.data(), qw.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dqz, qz.data(), qz.size() * 4, cudaMemcpyHostToDevice));
  std::vector<uint16_t> y((size_t)Mmax * N);
  std::vector<float> ref((size_t)Mmax * N);
  for (const Cfg& c : cfgs) {
    // fresh data per config type
    std::vector<uint16_t> sc((size_t)K / 32 * N), x((size_t)Mmax * K);
    for (auto& v : sc) v = c.bf16 ? f2bf(uf(rng) * 0.02f) : f2h(uf(rng) * 0.02f);
    for (auto& v : x) v = c.bf16 ? f2bf(uf(rng)) : f2h(uf(rng));
    CK(cudaMemcpy(dsc, sc.data(), sc.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    if (c.bf16)
      dequant_kernel<true><<<dim3(N / 128, K / 8), 128>>>(dqw, dsc, dqz, c.asym, N, K, c.G, dW);
    else
      dequant_kernel<false><<<dim3(N / 128, K / 8), 128>>>(dqw, dsc, dqz, c.asym, N, K, c.G, dW);
    CK(cudaGetLastError());
    const int smem = kf::w4a16::wgmma::smem_bytes(c.bm, c.bn, c.bk, c.stages, c.asym);
    CK(cudaFuncSetAttribute(c.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const cudaDataType ty = c.bf16 ? CUDA_R_16BF : CUDA_R_16F;
    for (int M : {200, 4096}) {
      kf_linear_args a{};
      a.x = dx;
      a.qweight = dqw;
      a.scales = dsc;
      a.qzeros = dqz;
      a.y = dy;
      a.m = M;
      a.n = N;
      a.k = K;
      a.group = c.G;
      CK(cudaMemset(dy, 0xff, (size_t)Mmax * N * 2));  // poison (NaN)
      dim3 grid(N / c.bn, (M + c.bm - 1) / c.bm, c.split_k);
      a.workspace = dws;
      a.counters = dcounters;
      for (int rep = 0; rep < 5; ++rep) c.fn<<<grid, kf::w4a16::wgmma::block_threads(c.warps), smem>>>(a);  // races would show
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      float alpha = 1, beta = 0;
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, dW, ty, K, dx, ty, K, &beta, dref, CUDA_R_32F, N,
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(y.data(), dy, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(ref.data(), dref, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
      double maxerr = 0, maxref = 0;
      size_t bad = 0;
      for (size_t i = 0; i < (size_t)M * N; ++i) {
        const float v = c.bf16 ? bf2f(y[i]) : __half2float(*reinterpret_cast<__half*>(&y[i]));
        if (!std::isfinite(v)) ++bad;
        maxerr = std::max(maxerr, (double)std::fabs(v - ref[i]));
        maxref = std::max(maxref, (double)std::fabs(ref[i]));
      }
      const double rel = maxerr / maxref;
      if (rel > 1e-2 || bad) {
        // bad elements by (n % 128 row-in-block) and by m-block
        std::vector<int> byn(128), bym((M + c.bm - 1) / c.bm);
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < N; ++n) {
            const size_t i = (size_t)m * N + n;
            const float v = bf2f(y[i]);
            if (!std::isfinite(v) || std::fabs(v - ref[i]) > 1e-2 * maxref) { byn[n % 128]++; bym[m / c.bm]++; }
          }
        printf("  bad by n%%128:");
        for (int i = 0; i < 128; ++i) printf(" %d", byn[i]);
        printf("\n  bad by m-block:");
        for (size_t i = 0; i < bym.size() && i < 40; ++i) printf(" %d", bym[i]);
        printf("\n");
      }
      const bool pass = bad == 0 && rel < 1e-2;
      ok &= pass;
      double us = 0, cub = 0;
      if (M == 4096) {
        us = timer.median_us([&](cudaStream_t s) { c.fn<<<grid, kf::w4a16::wgmma::block_threads(c.warps), smem, s>>>(a); }, 50);
        cublasSetStream(h, timer.stream());
        cub = timer.median_us(
            [&](cudaStream_t) {
              cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, dW, ty, K, dx, ty, K, &beta, dy, ty, N,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            },
            50);
        cublasSetStream(h, 0);
      }
      printf("%-34s M=%4d rel err %.2e nonfinite %zu %s", c.name, M, rel, bad, pass ? "ok" : "WRONG");
      if (M == 4096)
        printf("  %.1f us (%.0f TFLOP/s)  cuBLAS bf16 %.1f us  ratio %.2f", us, 2.0 * M * N * K / us * 1e-6, cub,
               cub / us);
      printf("\n");
    }
  }
  printf(ok ? "ALL OK\n" : "FAILURES\n");
  return ok ? 0 : 1;
}
