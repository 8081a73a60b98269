// GPU check of Hopper's warpgroup MMA operand layouts as kforge's templates use them
// (templates/kf_wgmma.h, kf_wgmma_layout.h): one warpgroup loads A into registers by
// wg::a_pair, writes B to shared memory by wg::b_tile_offset (unswizzled) or
// wg::b_tile_offset_sw128 (128-byte swizzle, four k16 steps through b_desc_sw128), runs
// the products and stores D by wg::d_elem; the result must equal a float64 product of
// the same random inputs, for N = 16, 32, 64, 128, 256 in bf16 and fp16. It also checks the two
// forms of kf_wgmma_forms.h: A from shared memory (mma_ss, N = 32 and 64) and a transposed,
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

// The A registers of k16 step s for this lane, by wg::a_pair, from A row-major [64][k].
__device__ void load_a(uint32_t (&a)[4], const uint16_t* a_rows, int k_depth, int s, int warp, int lane) {
  for (int p = 0; p < 4; ++p) {
    const kf::layout::RC rc = kf::wg::a_pair(warp, lane, p);
    const uint16_t* src = a_rows + rc.row * k_depth + 16 * s + rc.col;
    a[p] = src[0] | uint32_t(src[1]) << 16;
  }
}
template <int N>
__device__ void zero_d(float (&d)[N / 2]) {
  for (int i = 0; i < N / 2; ++i) {
    d[i] = 0.f;
    kf::wg::fence_operand(d[i]);
  }
}
// After the products: d [64 x N] row-major, by wg::d_elem.
template <int N>
__device__ void store_d(float (&d)[N / 2], float* d_out, int warp, int lane) {
  for (int i = 0; i < N / 2; ++i) kf::wg::fence_operand(d[i]);
  for (int e = 0; e < N / 2; ++e) {
    const kf::layout::RC rc = kf::wg::d_elem(warp, lane, e);
    d_out[rc.row * N + rc.col] = d[e];
  }
}

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
  zero_d<N>(d);
  for (int s = 0; s < K / 16; ++s) {
    uint32_t a[4];
    load_a(a, a_rows, K, s, warp, lane);
    kf::wg::fence();
    kf::wg::mma_rs<N, BF16>(d, a, SW128 ? kf::wg::b_desc_sw128(bs, 16 * s, N) : kf::wg::b_desc(bs, K));
    kf::wg::commit();
    kf::wg::wait<0>();
  }
  store_d<N>(d, d_out, warp, lane);
}

// The kf_wgmma_forms.h products over K = 64 (four k16 steps):
//   SS: d[64 x NS] = A[64 x 64] B^T, A rows and B rows (n) K-major in shared memory;
//   MN: d[64 x 256] = A[64 x 64] B, A in registers, B[k][n] MN-major in shared memory.
// a_rows is A row-major [64][64]; b_rows is [n][k] for SS and [k][n] for MN.
template <bool BF16, bool MN, int NS>
__global__ void wgmma_forms_kernel(const uint16_t* a_rows, const uint16_t* b_rows, float* d_out) {
  constexpr int K = 64, N = MN ? 256 : NS;
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
  zero_d<N>(d);
  for (int s = 0; s < K / 16; ++s) {
    if constexpr (MN) {
      uint32_t a[4];
      load_a(a, a_rows, K, s, warp, lane);
      kf::wg::fence();
      kf::wg::mma_rs_mn_n256<BF16>(d, a, kf::wg::mn_desc_sw128(bs, 16 * s, K));
    } else {
      kf::wg::fence();
      kf::wg::mma_ss<N, BF16>(d, kf::wg::a_desc_sw128(as, 16 * s), kf::wg::b_desc_sw128(bs, 16 * s, N));
    }
    kf::wg::commit();
    kf::wg::wait<0>();
  }
  store_d<N>(d, d_out, warp, lane);
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

// Runs `launch` (a kernel filling d[64 x n] from A [64][k] and B) on fresh random A and B
// and compares d with the float64 product, B[k][n] read from b at b_index(n, k). fp32
// accumulation of k products of magnitude <= 1 stays far below 1e-3 when the layout is
// right; a wrong index gives errors of order 1.
template <class Launch, class BIndex>
bool run_case(std::mt19937& rng, bool bf16, int n_cols, int k_depth, BIndex b_index, Launch launch,
              const char* what) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> a(kRows * k_depth), b(n_cols * k_depth);
  for (auto& v : a) v = to16(u(rng), bf16);
  for (auto& v : b) v = to16(u(rng), bf16);
  uint16_t *da = nullptr, *db = nullptr;
  float* dd = nullptr;
  bool good = ok(cudaMalloc(&da, a.size() * 2), "malloc") && ok(cudaMalloc(&db, b.size() * 2), "malloc") &&
              ok(cudaMalloc(&dd, kRows * n_cols * 4), "malloc") &&
              ok(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice), "copy") &&
              ok(cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice), "copy") &&
              ok(cudaMemset(dd, 0xff, kRows * n_cols * 4), "poison");  // NaN where nothing is stored
  std::vector<float> d(kRows * n_cols);
  if (good) {
    launch(da, db, dd);
    good = ok(cudaGetLastError(), "launch") && ok(cudaDeviceSynchronize(), "run") &&
           ok(cudaMemcpy(d.data(), dd, d.size() * 4, cudaMemcpyDeviceToHost), "copy back");
  }
  double worst = 0;
  bool finite = true;
  if (good)
    for (int m = 0; m < kRows; ++m)
      for (int n = 0; n < n_cols; ++n) {
        double ref = 0;
        for (int k = 0; k < k_depth; ++k) ref += from16(a[m * k_depth + k], bf16) * from16(b[b_index(n, k)], bf16);
        const double err = std::fabs(ref - d[m * n_cols + n]);
        finite &= std::isfinite(err);
        worst = std::max(worst, err);
      }
  const bool pass = good && finite && worst < 1e-3;
  std::printf("%s m64n%dk16 %s %s: max abs error %.3g (tolerance 1e-3)\n", pass ? "PASS" : "FAIL", n_cols,
              bf16 ? "bf16" : "fp16", what, worst);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dd);
  return pass;
}

template <int N, bool BF16, bool SW128>
bool check(std::mt19937& rng) {
  constexpr int K = SW128 ? 64 : 16;
  return run_case(
      rng, BF16, N, K, [](int n, int k) { return n * K + k; },
      [](const uint16_t* a, const uint16_t* b, float* d) { wgmma_kernel<N, BF16, SW128><<<1, kf::wg::kThreads>>>(a, b, d); },
      SW128 ? "128-byte swizzle, 4 steps" : "unswizzled");
}

// The kf_wgmma_forms.h forms: B is [n][k] for the shared-memory A form, [k][n] for MN-major.
template <bool BF16, bool MN, int NS = 64>
bool check_form(std::mt19937& rng) {
  constexpr int K = 64, N = MN ? 256 : NS;
  return run_case(
      rng, BF16, N, K, [](int n, int k) { return MN ? k * N + n : n * K + k; },
      [](const uint16_t* a, const uint16_t* b, float* d) {
        wgmma_forms_kernel<BF16, MN, NS><<<1, kf::wg::kThreads>>>(a, b, d);
      },
      MN ? "A in registers, MN-major B, 4 steps" : "A and B in shared memory, 4 steps");
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
  // The narrow widths the MoE GEMMs' 16- and 32-slot blocks use.
  pass &= check<16, true, false>(rng) & check<32, true, false>(rng);
  pass &= check<16, true, true>(rng) & check<32, true, true>(rng) & check<32, false, true>(rng);
  pass &= check_form<true, false>(rng) & check_form<false, false>(rng) & check_form<true, false, 32>(rng);
  pass &= check_form<true, true>(rng) & check_form<false, true>(rng);
  std::printf(pass ? "all wgmma layout checks passed\n" : "wgmma layout checks FAILED\n");
  return pass ? 0 : 1;
}
