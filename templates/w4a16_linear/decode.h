// w4a16_linear decode kernel: y[M, N] = x[M, K] * dequant(W)^T for small M.
//
// Memory-bound: every weight byte is read once, with 16-byte loads coalesced along N
// (one int32 row of the GPTQ layout holds 8 k of one column; 4 columns per load).
// A block owns BN columns and BM rows of M; its THREADS are BN/4 column lanes times
// TK k-lanes that split the block's K range, reduced through shared memory at the end.
// STAGES == 2 keeps the next k-step's weight loads in flight while the current step is
// multiplied (register double buffering).
// SPLIT_K > 1 spreads K over blocks too (more blocks in flight for small N): each
// writes an fp32 partial and the last block of a tile to arrive sums them in fixed
// order (deterministic) and resets the tile's counter.
//
// The same body serves the generic kernel (generic.h): with RuntimeDims, N, K and the
// group size come from the arguments and columns past N are masked; and the MoE GEMMs
// (w4a16_moe/gemm.h): a Rows policy (rows.h) says which rows of x and y a block takes.
// SILU = true fuses silu(gate) * up into the epilogue (silu.h): the block's upper
// BN/2 columns are the up partners of its lower BN/2, exchanged through shared memory.
#pragma once
#include "kf_portability.h"
#include "w4a16_linear/args.h"
#include "w4a16_linear/dequant.h"
#include "w4a16_linear/rows.h"
#include "w4a16_linear/silu.h"
#include "w4a16_linear/tiling.h"

namespace kf {
namespace w4a16 {

template <int N_, int K_, int G_>
struct FixedDims {
  static constexpr bool kFixed = true;
  KF_INLINE int n() const { return N_; }
  KF_INLINE int k() const { return K_; }
  KF_INLINE int g() const { return G_; }
};

struct RuntimeDims {
  static constexpr bool kFixed = false;
  int n_, k_, g_;
  KF_INLINE int n() const { return n_; }
  KF_INLINE int k() const { return k_; }
  KF_INLINE int g() const { return g_; }
};

template <class Dims, class Rows, bool BF16, bool ASYM, int BM, int BN, int BK, int THREADS, int SPLIT_K,
          int STAGES, bool SILU = false>
KF_INLINE void decode_body(const Dims dims, const Rows rows, const kf_linear_args& args) {
  static_assert(STAGES == 1 || STAGES == 2, "decode stages: 1 or 2");
  static_assert(!SILU || Dims::kFixed, "the fused SiLU epilogue is for kernels of one shape");
  using T = Act16<BF16>;
  constexpr int TN = decode_threads_n(BN);
  constexpr int TK = decode_threads_k(BN, THREADS);
  constexpr int ROWS = BK / 8;  // int32 rows (8 k each) a thread loads per step
  const int N = dims.n(), K = dims.k(), G = dims.g();
  const int k_per_split = K / SPLIT_K;

  const uint16_t* x = static_cast<const uint16_t*>(args.x);
  const uint32_t* qweight = static_cast<const uint32_t*>(args.qweight);
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const uint32_t* qzeros = static_cast<const uint32_t*>(args.qzeros);
  const int tn = thread_id() % TN;
  const int tk = thread_id() / TN;
  // The weight column of this thread's 4 (with SILU: gate or up, silu.h).
  const int n_out = SILU ? silu_weight_col(N, BN, BN / 2, block_x(), tn * 4) : block_x() * BN + tn * 4;
  const bool col_ok = Dims::kFixed || n_out < N;
  const int n = col_ok ? n_out : 0;  // masked lanes read column 0 and store nothing
  const int split = block_y();
  const int m0 = block_z() * BM;

  // Rows that are not valid read a valid row and are never stored: no branch in the loop.
  const uint16_t* xrow[BM];
#pragma unroll
  for (int m = 0; m < BM; ++m) xrow[m] = x + (size_t)rows.x_row(m0 + m) * K;

  float acc[BM][4];
#pragma unroll
  for (int m = 0; m < BM; ++m)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[m][c] = 0.f;

  const int k_begin = split * k_per_split, k_end = k_begin + k_per_split;
  u32x4 q[ROWS], q_next[ROWS];
  auto load_step = [&](int k0, u32x4 (&dst)[ROWS]) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r) dst[r] = load16(qweight + (size_t)(k0 / 8 + r) * N + n);
  };
  if (STAGES == 2 && k_begin + tk * BK < k_end) load_step(k_begin + tk * BK, q_next);
  for (int k0 = k_begin + tk * BK; k0 < k_end; k0 += TK * BK) {
    // STAGES == 2: this step's weights were requested during the previous step; request
    // the next step's now, so DRAM latency overlaps the arithmetic instead of adding up.
    if constexpr (STAGES == 2) {
#pragma unroll
      for (int r = 0; r < ROWS; ++r) q[r] = q_next[r];
      if (k0 + TK * BK < k_end) load_step(k0 + TK * BK, q_next);
    } else {
      load_step(k0, q);
    }
    float scale[4], base[4];
    load_group_params<BF16, ASYM>(scales, qzeros, N, k0 / G, n, scale, base);

#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      // Dequantise once, reuse for every row of M.
      const uint32_t qc[4] = {q[r].x, q[r].y, q[r].z, q[r].w};
      float w[4][8];
#pragma unroll
      for (int c = 0; c < 4; ++c) dequant8(qc[c], scale[c], base[c], w[c]);
#pragma unroll
      for (int m = 0; m < BM; ++m) {
        const u32x4 xv = load16(xrow[m] + k0 + 8 * r);
        const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const float xf = T::to_f32(j % 2 ? xw[j / 2] >> 16 : xw[j / 2] & 0xffffu);
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[m][c] += xf * w[c][j];
        }
      }
    }
  }

  // Reduce the TK k-lanes: k-lane 0 ends with the block's sums.
  if constexpr (TK > 1) {
    KF_SHARED float red[TK][BN];
#pragma unroll
    for (int m = 0; m < BM; ++m) {
#pragma unroll
      for (int c = 0; c < 4; ++c) red[tk][tn * 4 + c] = acc[m][c];
      barrier();
      if (tk == 0)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          for (int t = 1; t < TK; ++t) acc[m][c] += red[t][tn * 4 + c];
      barrier();
    }
  }

  uint16_t* y = static_cast<uint16_t*>(args.y);
  if constexpr (SPLIT_K > 1) {
    // Partials are indexed by the block grid's row (count() rows per split).
    const int M = rows.count();
    float* ws = args.workspace;
    if (tk == 0)
#pragma unroll
      for (int m = 0; m < BM; ++m)
        if (rows.valid(m0 + m))
#pragma unroll
          for (int c = 0; c < 4; ++c) ws[((size_t)split * M + m0 + m) * N + n + c] = acc[m][c];
    fence_device();
    barrier();
    KF_SHARED int last;
    int* counter = args.counters + block_z() * (N / BN) + block_x();
    if (thread_id() == 0) last = atomic_add_device(counter, 1) == SPLIT_K - 1;
    barrier();
    if (!last) return;
    // The last block: k-lane 0 ends with the tile's sums, as without split-K.
    fence_device();
    if (tk == 0)
#pragma unroll
      for (int m = 0; m < BM; ++m) {
        if (!rows.valid(m0 + m)) continue;
        float sum[4] = {0.f, 0.f, 0.f, 0.f};
        for (int s = 0; s < SPLIT_K; ++s)
#pragma unroll
          for (int c = 0; c < 4; ++c) sum[c] += load_coherent(ws + ((size_t)s * M + m0 + m) * N + n + c);
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[m][c] = sum[c];
      }
    if (thread_id() == 0) atomic_store_device(counter, 0);
  }

  if constexpr (SILU) {
    // Local columns [BN/2, BN) hold the up partners of [0, BN/2): the threads with the
    // up sums hand them to those with the gate sums, which write the BN/2 outputs.
    constexpr int HALF = BN / 2;
    KF_SHARED float up[BM][HALF];
    if (tk == 0 && tn * 4 >= HALF)
#pragma unroll
      for (int m = 0; m < BM; ++m)
#pragma unroll
        for (int c = 0; c < 4; ++c) up[m][tn * 4 - HALF + c] = acc[m][c];
    barrier();
    if (tk == 0 && tn * 4 < HALF)
#pragma unroll
      for (int m = 0; m < BM; ++m) {
        if (!rows.valid(m0 + m)) continue;
        const float f = rows.scale(m0 + m);
        float h[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) h[c] = silu_mul(acc[m][c] * f, up[m][tn * 4 + c] * f);
        store8(y + (size_t)rows.y_row(m0 + m) * (N / 2) + block_x() * HALF + tn * 4,
               u32x2{T::pack2(h[0], h[1]), T::pack2(h[2], h[3])});
      }
  } else if (tk == 0 && col_ok) {
#pragma unroll
    for (int m = 0; m < BM; ++m) {
      if (!rows.valid(m0 + m)) continue;
      const float f = rows.scale(m0 + m);
      store8(y + (size_t)rows.y_row(m0 + m) * N + n, u32x2{T::from_f32(acc[m][0] * f) | T::from_f32(acc[m][1] * f) << 16,
                                                          T::from_f32(acc[m][2] * f) | T::from_f32(acc[m][3] * f) << 16});
    }
  }
}

}  // namespace w4a16

template <int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int THREADS, int SPLIT_K,
          int STAGES>
KF_INLINE void w4a16_linear_decode(const kf_linear_args& args) {
  static_assert(w4a16::decode_valid(N, K, G, BN, BK, THREADS, SPLIT_K), "invalid decode config");
  w4a16::decode_body<w4a16::FixedDims<N, K, G>, w4a16::DenseRows, BF16, ASYM, BM, BN, BK, THREADS, SPLIT_K,
                     STAGES>({}, {args.m}, args);
}

}  // namespace kf
