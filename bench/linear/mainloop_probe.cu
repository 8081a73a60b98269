// Development harness: the ceilings under the w4a16_linear wgmma kind's main loop on
// sm_90a (bench/NOTES.md, "the wgmma main loop against its ceilings"). (1) The rate of
// register-A wgmma m64n256k16 from two warpgroups alone, with a wait and a wgmma.fence
// before each product (as wgmma.h issues them), and with the kind's unpacking of 8
// weights per product from shared memory and a barrier per 4 products added. (2) How many
// bytes per second one SM's copies bring in from the L2 (a 16 MiB source, resident after
// the first pass) through a 4-slot ring of 32 KiB stages, two ahead: 16-byte cp.async
// against bulk copies (cp.async.bulk), on 1, half and all SMs. (3) The rates the decode
// forms' products could reach at M = 16: mma.sync m16n8k16 (the skinny kind's atom) from 4,
// 8 and 16 warps a block, each warp with 12 independent accumulators (the paired form's
// 6 atoms x 2 halves of block_n 96), and register-A wgmma m64n16k16 from two warpgroups.
// Timings, not checks: the products multiply whatever is there.
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cstdio>
#include <vector>
#include <algorithm>
#include "kf_portability.h"
#include "kf_wgmma.h"

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA error %s line %d\n", cudaGetErrorString(e), __LINE__); exit(1); } } while (0)
using namespace kf;

// MODE 0: wgmma only; 1: + wgmma.fence before each; 2: + the unpacking of 8 weights per
// thread per product from shared memory (as wgmma.h) and a barrier per 4 products.
template <int MODE>
__global__ __launch_bounds__(256) void wgmma_rate(int iters, float* out, const uint32_t* words_g) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const int tid = threadIdx.x;
  for (int i = tid; i < 32768 / 4; i += 256) reinterpret_cast<uint32_t*>(smem)[i] = 0x3f803f80u ^ (i * 2654435761u);
  __syncthreads();
  wg::fence_proxy_async();
  __syncthreads();
  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) { acc[i] = 0.f; wg::fence_operand(acc[i]); }
  const uint32_t* words = reinterpret_cast<const uint32_t*>(smem + 16384);
  const uint32_t sel = (tid % 4) | ((4 + tid % 4) << 8);
  uint32_t a[4] = {0x3f803f80u, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u};
  const uint32_t bias = 0x43084308u, scale = 0x3c003c00u;
  wg::fence();
  for (int it = 0; it < iters; it += 4) {
    if (MODE == 2) { wg::wait<4>(); __syncthreads(); }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      if (MODE >= 1) wg::wait<3>();
      if (MODE == 2) {
        const uint32_t* w = words + ((it / 4 + s) % 32) * 128 + 2 * (tid % 64);
        uint32_t lo0 = w[0], lo1 = w[1], hi0 = w[256], hi1 = w[257];
        uint32_t v[4] = {lo0, lo1, hi0, hi1};
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          uint32_t r = __byte_perm(v[p], v[p] >> 4, sel), pair;
          asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(pair) : "r"(r), "n"(0x000F000F), "n"(0x43004300));
          __nv_bfloat162 x = __hmul2(__hsub2(*reinterpret_cast<__nv_bfloat162*>(&pair), *reinterpret_cast<const __nv_bfloat162*>(&bias)),
                                     *reinterpret_cast<const __nv_bfloat162*>(&scale));
          a[p] = *reinterpret_cast<uint32_t*>(&x);
        }
      }
      if (MODE >= 1) wg::fence();
      wg::mma_rs<256, true>(acc, a, wg::b_desc_sw128(smem, 16 * s, 256));
      wg::commit();
    }
  }
  wg::wait<0>();
  float sum = 0;
#pragma unroll
  for (int i = 0; i < 128; ++i) { wg::fence_operand(acc[i]); sum += acc[i]; }
  if (sum == 1234.5f) out[0] = sum;
}

// (3) WARPS warps, each issuing `iters` rounds of 12 independent m16n8k16 bf16 products.
template <int WARPS>
__global__ __launch_bounds__(WARPS * 32) void mma_sync_rate(int iters, float* out, const uint32_t*) {
  constexpr int kChains = 12;
  float d[kChains][4] = {};
  const uint32_t lane = threadIdx.x % 32;
  uint32_t a0 = 0x3f803f80u ^ lane, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, b0 = 0x3f803f80u, b1 = b0 ^ lane;
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int c = 0; c < kChains; ++c)
      asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                   : "+f"(d[c][0]), "+f"(d[c][1]), "+f"(d[c][2]), "+f"(d[c][3])
                   : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  float sum = 0;
#pragma unroll
  for (int c = 0; c < kChains; ++c) sum += d[c][0] + d[c][1] + d[c][2] + d[c][3];
  if (sum == 1234.5f) out[0] = sum;
}
// Two warpgroups, each issuing register-A m64n16k16 products back to back (4 a commit),
// B a 16-row swizzled tile of shared memory.
__global__ __launch_bounds__(256) void wgmma_n16_rate(int iters, float* out, const uint32_t*) {
  extern __shared__ __align__(1024) unsigned char smem[];
  for (int i = threadIdx.x; i < 8192 / 4; i += 256) reinterpret_cast<uint32_t*>(smem)[i] = 0x3f803f80u ^ (i * 2654435761u);
  __syncthreads();
  wg::fence_proxy_async();
  __syncthreads();
  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) { acc[i] = 0.f; wg::fence_operand(acc[i]); }
  const uint32_t a[4] = {0x3f803f80u, 0x3f803f80u ^ threadIdx.x, 0x3f803f80u, 0x3f803f80u};
  wg::fence();
  for (int it = 0; it < iters; it += 4) {
#pragma unroll
    for (int s = 0; s < 4; ++s) wg::mma_rs<16, true>(acc, a, wg::b_desc_sw128(smem, 16 * s, 16));
    wg::commit();
    wg::wait<1>();
  }
  wg::wait<0>();
  float sum = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) { wg::fence_operand(acc[i]); sum += acc[i]; }
  if (sum == 1234.5f) out[0] = sum;
}

// One SM's copies: STAGE bytes per stage into a 4-stage ring, STAGES - 2 ahead, a barrier
// per stage, for `stages` stages over an L2-resident source of `src_bytes`.
constexpr int STAGE = 32768, RING = 4;
__global__ __launch_bounds__(256) void copy_cp_async(const unsigned char* src, size_t src_bytes, int stages, unsigned long long* t) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const int tid = threadIdx.x;
  const size_t base = (size_t)blockIdx.x * 65536;
  unsigned long long t0 = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  auto issue = [&](int s) {
    const size_t off = (base + (size_t)s * STAGE) % src_bytes;
#pragma unroll
    for (int j = 0; j < STAGE / 16 / 256; ++j)
      cp_async16(smem + (s % RING) * STAGE + (j * 256 + tid) * 16, src + off + (j * 256 + tid) * 16, true);
  };
  for (int s = 0; s < RING - 2; ++s) { issue(s); cp_async_commit(); }
  for (int s = 0; s < stages; ++s) {
    cp_async_wait<RING - 3>();
    __syncthreads();
    if (s + RING - 2 < stages) issue(s + RING - 2);
    cp_async_commit();
  }
  cp_async_wait<0>();
  __syncthreads();
  unsigned long long t1;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t1));
  if (tid == 0) { t[2 * blockIdx.x] = t0; t[2 * blockIdx.x + 1] = t1; }
}
__global__ __launch_bounds__(256) void copy_bulk(const unsigned char* src, size_t src_bytes, int stages, unsigned long long* t) {
  extern __shared__ __align__(1024) unsigned char smem[];
  __shared__ __align__(8) unsigned long long bar[RING];
  const int tid = threadIdx.x;
  const size_t base = (size_t)blockIdx.x * 65536;
  if (tid == 0)
    for (int i = 0; i < RING; ++i) {
      const unsigned a = (unsigned)__cvta_generic_to_shared(&bar[i]);
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(a));
    }
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  __syncthreads();
  unsigned long long t0 = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  auto issue = [&](int s) {
    if (tid != 0) return;
    const size_t off = (base + (size_t)s * STAGE) % src_bytes;
    const unsigned b = (unsigned)__cvta_generic_to_shared(&bar[s % RING]);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(STAGE) : "memory");
    for (int j = 0; j < 4; ++j) {
      const unsigned d = (unsigned)__cvta_generic_to_shared(smem + (s % RING) * STAGE + j * (STAGE / 4));
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(d),
                   "l"(src + off + j * (STAGE / 4)), "r"(STAGE / 4), "r"(b) : "memory");
    }
  };
  for (int s = 0; s < RING - 2; ++s) issue(s);
  for (int s = 0; s < stages; ++s) {
    const unsigned b = (unsigned)__cvta_generic_to_shared(&bar[s % RING]);
    const unsigned phase = (s / RING) & 1;
    asm volatile("{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra W;\n}\n" ::"r"(b), "r"(phase) : "memory");
    __syncthreads();
    if (s + RING - 2 < stages) issue(s + RING - 2);
  }
  __syncthreads();
  unsigned long long t1;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t1));
  if (tid == 0) { t[2 * blockIdx.x] = t0; t[2 * blockIdx.x + 1] = t1; }
}

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("device %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  const int sms = prop.multiProcessorCount;
  float* out; CK(cudaMalloc(&out, 4));
  cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  const int smem_w = 200 * 1024;
  // flop_per_iter: one block's products per loop iteration.
  auto rate = [&](auto kern, const char* name, int threads = 256, double flop_per_iter = 2 * 64.0 * 256 * 16 * 2) {
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_w));
    const int iters = 40000;
    kern<<<sms, threads, smem_w>>>(100, out, nullptr);
    CK(cudaDeviceSynchronize());
    std::vector<float> v;
    for (int r = 0; r < 5; ++r) {
      CK(cudaEventRecord(e0));
      kern<<<sms, threads, smem_w>>>(iters, out, nullptr);
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); v.push_back(ms);
    }
    std::sort(v.begin(), v.end());
    const double flop = (double)sms * iters * flop_per_iter;
    printf("%-58s %8.3f ms  %6.1f TFLOP/s  (%.1f per SM)\n", name, v[2], flop / v[2] * 1e-9, flop / v[2] * 1e-9 / sms);
  };
  rate(wgmma_rate<0>, "wgmma m64n256k16 RS, 2 warpgroups, back to back");
  rate(wgmma_rate<1>, "  + wait<3> and wgmma.fence before each");
  rate(wgmma_rate<2>, "  + unpacking 8 weights a product, a barrier per 4");
  const double mma16n8 = 16.0 * 8 * 16 * 2 * 12;  // a warp's 12 products per iteration
  rate(mma_sync_rate<4>, "mma.sync m16n8k16, 4 warps a block, 12 chains a warp", 128, 4 * mma16n8);
  rate(mma_sync_rate<8>, "mma.sync m16n8k16, 8 warps a block (the paired form's)", 256, 8 * mma16n8);
  rate(mma_sync_rate<16>, "mma.sync m16n8k16, 16 warps a block", 512, 16 * mma16n8);
  rate(wgmma_n16_rate, "wgmma m64n16k16 RS, 2 warpgroups, one chain each, 4 a commit", 256, 2 * 64.0 * 16 * 16 * 2);
  CK(cudaGetLastError());

  const size_t src_bytes = 16u << 20;  // L2-resident
  unsigned char* src; unsigned long long* t;
  CK(cudaMalloc(&src, src_bytes + 65536 * 200)); CK(cudaMemset(src, 1, src_bytes + 65536 * 200));
  CK(cudaMalloc(&t, 2 * 1024 * 8));
  auto copy = [&](auto kern, const char* name, int blocks) {
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_w));
    const int stages = 4000;
    for (int r = 0; r < 3; ++r) kern<<<blocks, 256, smem_w>>>(src, src_bytes, stages, t);
    CK(cudaDeviceSynchronize());
    std::vector<unsigned long long> h(2 * blocks);
    CK(cudaMemcpy(h.data(), t, h.size() * 8, cudaMemcpyDeviceToHost));
    double sum = 0, mn = 1e30, mx = 0;
    for (int b = 0; b < blocks; ++b) {
      const double gbs = (double)stages * STAGE / (double)(h[2 * b + 1] - h[2 * b]);
      sum += gbs; mn = std::min(mn, gbs); mx = std::max(mx, gbs);
    }
    printf("%-40s %3d SMs: per SM %.1f GB/s (min %.1f, max %.1f), all %.2f TB/s\n", name, blocks, sum / blocks, mn, mx, sum * 1e-3);
  };
  for (int blocks : {1, 66, sms}) {
    copy(copy_cp_async, "16-byte cp.async, 32 KiB stages", blocks);
    copy(copy_bulk, "bulk copies (4 x 8 KiB) per stage", blocks);
  }
  CK(cudaGetLastError());
  return 0;
}
