// GPU check of Hopper's warpgroup MMA operand layouts as kforge's templates use them
// (templates/kf_wgmma.h, kf_wgmma_layout.h): one warpgroup loads A into registers by
// wg::a_pair, writes B to shared memory by wg::b_tile_offset (unswizzled) or
// wg::b_tile_offset_sw128 (128-byte swizzle, four k16 steps through b_desc_sw128), runs
// the products and stores D by wg::d_elem; the result must equal a float64 product of
// the same random inputs, for N = 64, 128, 256 in bf16 and fp16. It also checks the two
// forms of kf_wgmma_forms.h: A from shared memory (mma_ss_n64) and a transposed,
// MN-major B (mma_rs_mn_n256, B written by mn_tile_offset_sw128).
// Exits 77 (ctest: skipped) without an sm_90 GPU.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kf_wgmma.h"
#include "kf_wgmma_forms.h"

namespace {

constexpr int kRows = 64;  // the instruction's M

// K = 16 unswizzled (one product), or K = 64 swizzled (four).
template <int N, bool BF16, bool SW128>
__global__ void wgmma_kernel(const uint16_t* a_rows, const uint16_t* b_rows, float* d_out) {
  constexpr int K = SW128 ? 64 : 16;
  __shared__ __align__(1024) unsigned char bs[N * K * 2];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  for (int i = tid; i < N * K; i += kf::wg::kThreads) {
    const int n = i / K, k = i % K;
    const int off = SW128 ? kf::wg::b_tile_offset_sw128(n, k, N) : kf::wg::b_tile_offset(n, k, K);
    *reinterpret_cast<uint16_t*>(bs + off) = b_rows[i];
  }
  kf::wg::fence_proxy_async();
  __syncthreads();
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) {
    d[i] = 0.f;
    kf::wg::fence_operand(d[i]);
  }
  for (int s = 0; s < K / 16; ++s) {
    uint32_t a[4];
    for (int p = 0; p < 4; ++p) {
      const kf::layout::RC rc = kf::wg::a_pair(warp, lane, p);
      const uint16_t* src = a_rows + rc.row * K + 16 * s + rc.col;
      a[p] = src[0] | uint32_t(src[1]) << 16;
    }
    kf::wg::fence();
    kf::wg::mma_rs<N, BF16>(d, a, SW128 ? kf::wg::b_desc_sw128(bs, 16 * s, N) : kf::wg::b_desc(bs, K));
    kf::wg::commit();
    kf::wg::wait<0>();
  }
  for (int i = 0; i < N / 2; ++i) kf::wg::fence_operand(d[i]);
  for (int e = 0; e < N / 2; ++e) {
    const kf::layout::RC rc = kf::wg::d_elem(warp, lane, e);
    d_out[rc.row * N + rc.col] = d[e];
  }
}

// The kf_wgmma_forms.h products over K = 64 (four k16 steps):
//   SS: d[64 x 64] = A[64 x 64] B^T, A rows and B rows (n) K-major in shared memory;
//   MN: d[64 x 256] = A[64 x 64] B, A in registers, B[k][n] MN-major in shared memory.
// a_rows is A row-major [64][64]; b_rows is [n][k] for SS and [k][n] for MN.
template <bool BF16, bool MN>
__global__ void wgmma_forms_kernel(const uint16_t* a_rows, const uint16_t* b_rows, float* d_out) {
  constexpr int K = 64, N = MN ? 256 : 64;
  __shared__ __align__(1024) unsigned char as[kRows * K * 2];
  __shared__ __align__(1024) unsigned char bs[N * K * 2];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  for (int i = tid; i < kRows * K; i += kf::wg::kThreads)
    *reinterpret_cast<uint16_t*>(as + kf::wg::b_tile_offset_sw128(i / K, i % K, kRows)) = a_rows[i];
  for (int i = tid; i < N * K; i += kf::wg::kThreads) {
    const int off = MN ? kf::wg::mn_tile_offset_sw128(i / N, i % N, K) : kf::wg::b_tile_offset_sw128(i / K, i % K, N);
    *reinterpret_cast<uint16_t*>(bs + off) = b_rows[i];
  }
  kf::wg::fence_proxy_async();
  __syncthreads();
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) {
    d[i] = 0.f;
    kf::wg::fence_operand(d[i]);
  }
  for (int s = 0; s < K / 16; ++s) {
    if constexpr (MN) {
      uint32_t a[4];
      for (int p = 0; p < 4; ++p) {
        const kf::layout::RC rc = kf::wg::a_pair(warp, lane, p);
        const uint16_t* src = a_rows + rc.row * K + 16 * s + rc.col;
        a[p] = src[0] | uint32_t(src[1]) << 16;
      }
      kf::wg::fence();
      kf::wg::mma_rs_mn_n256<BF16>(d, a, kf::wg::mn_desc_sw128(bs, 16 * s, K));
    } else {
      kf::wg::fence();
      kf::wg::mma_ss_n64<BF16>(d, kf::wg::a_desc_sw128(as, 16 * s), kf::wg::b_desc_sw128(bs, 16 * s, N));
    }
    kf::wg::commit();
    kf::wg::wait<0>();
  }
  for (int i = 0; i < N / 2; ++i) kf::wg::fence_operand(d[i]);
  for (int e = 0; e < N / 2; ++e) {
    const kf::layout::RC rc = kf::wg::d_elem(warp, lane, e);
    d_out[rc.row * N + rc.col] = d[e];
  }
}

uint16_t to16(float f, bool bf16) {
  if (bf16) {
    const __nv_bfloat16 b = __float2bfloat16_rn(f);
    return *reinterpret_cast<const uint16_t*>(&b);
  }
  const __half h = __float2half_rn(f);
  return *reinterpret_cast<const uint16_t*>(&h);
}
double from16(uint16_t v, bool bf16) {
  if (bf16) return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(&v));
  return __half2float(*reinterpret_cast<const __half*>(&v));
}

bool ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::printf("FAIL %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

template <int N, bool BF16, bool SW128>
bool check(std::mt19937& rng) {
  constexpr int K = SW128 ? 64 : 16;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> a(kRows * K), b(N * K);
  for (auto& v : a) v = to16(u(rng), BF16);
  for (auto& v : b) v = to16(u(rng), BF16);
  uint16_t *da = nullptr, *db = nullptr;
  float* dd = nullptr;
  bool good = ok(cudaMalloc(&da, a.size() * 2), "malloc") && ok(cudaMalloc(&db, b.size() * 2), "malloc") &&
              ok(cudaMalloc(&dd, kRows * N * 4), "malloc") &&
              ok(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice), "copy") &&
              ok(cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice), "copy") &&
              ok(cudaMemset(dd, 0xff, kRows * N * 4), "poison");  // NaN where nothing is stored
  std::vector<float> d(kRows * N);
  if (good) {
    wgmma_kernel<N, BF16, SW128><<<1, kf::wg::kThreads>>>(da, db, dd);
    good = ok(cudaGetLastError(), "launch") && ok(cudaDeviceSynchronize(), "run") &&
           ok(cudaMemcpy(d.data(), dd, d.size() * 4, cudaMemcpyDeviceToHost), "copy back");
  }
  double worst = 0;
  bool finite = true;
  if (good)
    for (int m = 0; m < kRows; ++m)
      for (int n = 0; n < N; ++n) {
        double ref = 0;
        for (int k = 0; k < K; ++k) ref += from16(a[m * K + k], BF16) * from16(b[n * K + k], BF16);
        const double err = std::fabs(ref - d[m * N + n]);
        finite &= std::isfinite(err);
        worst = std::max(worst, err);
      }
  // fp32 accumulation of K products of magnitude <= 1: far below 1e-3 when the layout is right;
  // a wrong index gives errors of order 1.
  const bool pass = good && finite && worst < 1e-3;
  std::printf("%s m64n%dk16 %s %s: max abs error %.3g (tolerance 1e-3)\n", pass ? "PASS" : "FAIL", N,
              BF16 ? "bf16" : "fp16", SW128 ? "128-byte swizzle, 4 steps" : "unswizzled", worst);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dd);
  return pass;
}

template <bool BF16, bool MN>
bool check_form(std::mt19937& rng) {
  constexpr int K = 64, N = MN ? 256 : 64;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> a(kRows * K), b(N * K);
  for (auto& v : a) v = to16(u(rng), BF16);
  for (auto& v : b) v = to16(u(rng), BF16);
  uint16_t *da = nullptr, *db = nullptr;
  float* dd = nullptr;
  bool good = ok(cudaMalloc(&da, a.size() * 2), "malloc") && ok(cudaMalloc(&db, b.size() * 2), "malloc") &&
              ok(cudaMalloc(&dd, kRows * N * 4), "malloc") &&
              ok(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice), "copy") &&
              ok(cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice), "copy") &&
              ok(cudaMemset(dd, 0xff, kRows * N * 4), "poison");
  std::vector<float> d(kRows * N);
  if (good) {
    wgmma_forms_kernel<BF16, MN><<<1, kf::wg::kThreads>>>(da, db, dd);
    good = ok(cudaGetLastError(), "launch") && ok(cudaDeviceSynchronize(), "run") &&
           ok(cudaMemcpy(d.data(), dd, d.size() * 4, cudaMemcpyDeviceToHost), "copy back");
  }
  double worst = 0;
  bool finite = true;
  if (good)
    for (int m = 0; m < kRows; ++m)
      for (int n = 0; n < N; ++n) {
        double ref = 0;
        for (int k = 0; k < K; ++k)
          ref += from16(a[m * K + k], BF16) * from16(MN ? b[k * N + n] : b[n * K + k], BF16);
        const double err = std::fabs(ref - d[m * N + n]);
        finite &= std::isfinite(err);
        worst = std::max(worst, err);
      }
  const bool pass = good && finite && worst < 1e-3;
  std::printf("%s m64n%dk16 %s %s, 4 steps: max abs error %.3g (tolerance 1e-3)\n", pass ? "PASS" : "FAIL", N,
              BF16 ? "bf16" : "fp16", MN ? "A in registers, MN-major B" : "A and B in shared memory", worst);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dd);
  return pass;
}

}  // namespace

int main() {
  int devices = 0;
  cudaDeviceProp prop{};
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0 ||
      cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9) {
    std::printf("SKIPPED: no sm_90 GPU (the warpgroup MMA layout check needs one)\n");
    return 77;
  }
  std::printf("device: %s\n", prop.name);
  std::mt19937 rng(20261130);
  bool pass = true;
  pass &= check<64, true, false>(rng) & check<128, true, false>(rng) & check<256, true, false>(rng);
  pass &= check<64, false, false>(rng) & check<256, false, false>(rng);
  pass &= check<64, true, true>(rng) & check<128, true, true>(rng) & check<256, true, true>(rng);
  pass &= check<128, false, true>(rng);
  pass &= check_form<true, false>(rng) & check_form<false, false>(rng);
  pass &= check_form<true, true>(rng) & check_form<false, true>(rng);
  std::printf(pass ? "all wgmma layout checks passed\n" : "wgmma layout checks FAILED\n");
  return pass ? 0 : 1;
}
