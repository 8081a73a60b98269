// bench/layout_probe: is the decode kernel's gap to the read floor its access pattern?
// Times, cold like bench/linear, read-only kernels over the same 12.6 MB int4 weight
// matrix (N = 12288, K = 2048): the contiguous read floor, and the decode kernel's
// exact load pattern over the GPTQ layout (block = block_n columns x a K / split slice,
// each thread 16-byte loads of 4 columns, k-lanes strided) with no arithmetic; and the
// skinny kernel's pattern (templates/w4a16_linear/skinny.h: per warp a K slice walked in
// 32-k spans, lane (g, t) copying word row t of columns 4g .. 4g + 3 of each 32-column
// chunk by cp.async into its warp's ring of STAGES shared-memory slots, then reading its
// own rows back), also without arithmetic: is the skinny kind's gap its loads or its work?
#include <cuda_runtime.h>

#include <cstdio>

#include "bench_util.cuh"
#include "cold_timer.h"
#include "kf_portability.h"

namespace {

template <int BN, int THREADS, int ROWS>
__global__ void __launch_bounds__(THREADS) gptq_pattern_read(const kf::u32x4* q, int n_total, int k_total,
                                                               int split_k, unsigned* sink) {
  constexpr int TN = BN / 4, TK = THREADS / TN;
  const int tn = threadIdx.x % TN, tk = threadIdx.x / TN;
  const int n4 = (blockIdx.x * BN) / 4 + tn;  // index of this thread's 4-column group
  const int rows_per_split = k_total / 8 / split_k;
  const int row0 = blockIdx.y * rows_per_split;
  uint32_t acc = 0;
  for (int r = row0 + tk * ROWS; r < row0 + rows_per_split; r += TK * ROWS) {
    kf::u32x4 v[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; ++i) v[i] = q[(size_t)(r + i) * (n_total / 4) + n4];
#pragma unroll
    for (int i = 0; i < ROWS; ++i) acc ^= v[i].x ^ v[i].y ^ v[i].z ^ v[i].w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

// WIDE: instead of 8 lanes x 128 B on each of 4 rows per chunk, 16 lanes x 256 B on each
// of 2 rows (the decode kind's row pieces), same bytes per span (block_n 64 only).
template <int BN, int WARPS, int STAGES, bool WIDE = false>
__global__ void __launch_bounds__(WARPS * 32) skinny_pattern_read(const uint32_t* q, int n_total, int k_total,
                                                                  int split_k, unsigned* sink) {
  constexpr int CHUNKS = BN / 32;
  __shared__ kf::u32x4 ring[WARPS][STAGES][CHUNKS][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int kw = k_total / split_k / WARPS, spans = kw / 32;
  const int k0 = (blockIdx.y * WARPS + warp) * kw, n0 = blockIdx.x * BN;
  auto request = [&](int span, int slot) {
    if (span < spans) {
      if constexpr (WIDE) {
#pragma unroll
        for (int j = 0; j < CHUNKS; ++j) {
          const uint32_t* row = q + (size_t)((k0 + 32 * span) / 8 + 2 * j + lane / 16) * n_total + n0 + 4 * (lane % 16);
          kf::cp_async16(&ring[warp][slot][j][lane], row, true);
        }
      } else {
        const uint32_t* row = q + (size_t)((k0 + 32 * span) / 8 + t) * n_total + n0 + 4 * g;
#pragma unroll
        for (int j = 0; j < CHUNKS; ++j) kf::cp_async16(&ring[warp][slot][j][lane], row + 32 * j, true);
      }
    }
    kf::cp_async_commit();
  };
#pragma unroll
  for (int s = 0; s < STAGES; ++s) request(s, s);
  uint32_t acc = 0;
  for (int base = 0; base < spans; base += STAGES) {
#pragma unroll
    for (int s = 0; s < STAGES; ++s) {
      if (base + s >= spans) break;
      kf::cp_async_wait<STAGES - 1>();
#pragma unroll
      for (int j = 0; j < CHUNKS; ++j) {
        const kf::u32x4 v = ring[warp][s][j][lane];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
      }
      request(base + s + STAGES, s);
    }
  }
  kf::cp_async_wait<0>();
  if (acc == 0x9e3779b9u) *sink = acc;
}

template <int BN, int WARPS, int STAGES, bool WIDE = false>
void probe_skinny(kf::bench::ColdTimer& t, const void* q, int n, int k, int split_k, unsigned* sink,
                  double floor_us) {
  const dim3 grid(n / BN, split_k);
  const double us = t.median_us(
      [&](cudaStream_t s) {
        skinny_pattern_read<BN, WARPS, STAGES, WIDE>
            <<<grid, WARPS * 32, 0, s>>>(static_cast<const uint32_t*>(q), n, k, split_k, sink);
      },
      100);
  std::printf("skinny pattern%s bn%-4d warps %d stages %d split %d : %7.2f us  (%.2fx floor)\n",
              WIDE ? " (256 B rows)" : "", BN, WARPS, STAGES, split_k, us, us / floor_us);
}

template <int BN, int THREADS, int ROWS>
void probe(kf::bench::ColdTimer& t, const void* q, int n, int k, int split_k, unsigned* sink, double floor_us) {
  const dim3 grid(n / BN, split_k);
  const double us = t.median_us(
      [&](cudaStream_t s) {
        gptq_pattern_read<BN, THREADS, ROWS><<<grid, THREADS, 0, s>>>(static_cast<const kf::u32x4*>(q), n, k, split_k,
                                                                       sink);
      },
      100);
  std::printf("gptq pattern bn%-4d threads %-4d rows/step %d split %d : %7.2f us  (%.2fx floor)\n", BN, THREADS, ROWS,
              split_k, us, us / floor_us);
}

}  // namespace

int main() {
  kf::bench::device_or_skip();
  const int n = 12288, k = 2048;
  const size_t bytes = static_cast<size_t>(n) * k / 2;
  void* q = nullptr;
  unsigned* sink = nullptr;
  cudaMalloc(&q, bytes);
  cudaMemset(q, 0x5a, bytes);
  cudaMalloc(&sink, 4);
  kf::bench::ColdTimer t;
  const double empty = t.median_us([&](cudaStream_t s) { t.empty(s); }, 100);
  const double floor_us = t.median_us([&](cudaStream_t s) { t.stream_read(q, bytes, s); }, 100);
  std::printf("N %d K %d int4 weights %.2f MB; empty kernel %.2f us; contiguous read floor %.2f us\n", n, k, bytes / 1e6,
              empty, floor_us);
  for (int sk : {1, 4}) {
    probe<64, 256, 4>(t, q, n, k, sk, sink, floor_us);
    probe<128, 256, 4>(t, q, n, k, sk, sink, floor_us);
    probe<256, 256, 4>(t, q, n, k, sk, sink, floor_us);
    probe<64, 256, 8>(t, q, n, k, sk, sink, floor_us);
    probe<256, 512, 8>(t, q, n, k, sk, sink, floor_us);
  }
  // The skinny configs bench/linear v9 measured at M = 1 (16.8-33.6 us there).
  probe_skinny<64, 4, 3>(t, q, n, k, 1, sink, floor_us);
  probe_skinny<64, 2, 3>(t, q, n, k, 4, sink, floor_us);
  probe_skinny<64, 2, 6>(t, q, n, k, 1, sink, floor_us);
  probe_skinny<64, 2, 8>(t, q, n, k, 1, sink, floor_us);
  probe_skinny<64, 4, 3>(t, q, n, k, 4, sink, floor_us);
  probe_skinny<128, 2, 6>(t, q, n, k, 1, sink, floor_us);
  probe_skinny<64, 8, 4>(t, q, n, k, 2, sink, floor_us);
  probe_skinny<64, 4, 3, true>(t, q, n, k, 1, sink, floor_us);
  probe_skinny<64, 2, 3, true>(t, q, n, k, 4, sink, floor_us);
  probe_skinny<64, 2, 6, true>(t, q, n, k, 1, sink, floor_us);
  probe_skinny<64, 4, 3, true>(t, q, n, k, 4, sink, floor_us);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
