// w4a16_linear decode kernel: y[M, N] = x[M, K] * dequant(W)^T for small M.
//
// Memory-bound: every weight byte is read once, with 16-byte loads coalesced along N
// (one int32 row of the GPTQ layout holds 8 k of one column; 4 columns per load).
// A block owns BN columns and BM rows of M; its THREADS are BN/4 column lanes times
// TK k-lanes that split the block's K range, reduced through shared memory at the end.
// STAGES is a ring of register buffers, each holding one k-step's weights and group
// parameters: the loads of STAGES - 1 steps ahead are in flight while a step is
// multiplied (1: none; 2: double buffering; 4: four steps, so a thread with few steps
// issues all its loads at once and the block pays one DRAM round trip, not one per step).
// SPLIT_K > 1 spreads K over blocks too (more blocks in flight for small N): each
// writes an fp32 partial and the last block of a tile to arrive sums them in fixed
// order (deterministic) and resets the tile's counter.
//
// The same body serves the generic kernel (generic.h): with RuntimeDims, N, K and the
// group size come from the arguments and columns past N are masked; and the MoE GEMMs
// (w4a16_moe/gemm.h): a Rows policy (rows.h) says which rows of x and y a block takes.
// SILU = true fuses silu(gate) * up into the epilogue (silu.h): the block's upper
// BN/2 columns are the up partners of its lower BN/2, exchanged through shared memory.
// A Rows policy with kReduce (the MoE gemm2 that sums over top_k) adds each thread's 4
// outputs into y as two pairs (Rows::add_pair, packed 16-bit atomics) instead of storing.
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
  static_assert(STAGES == 1 || STAGES == 2 || STAGES == 4, "decode stages: 1, 2 or 4");
  static_assert(!SILU || Dims::kFixed, "the fused SiLU epilogue is for kernels of one shape");
  static_assert(!(SILU && Rows::kReduce), "the fused SiLU epilogue stores h; it does not reduce");
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
  constexpr int kStep = TK * BK;  // a thread's k-steps are kStep apart
  struct Stage {
    u32x4 q[ROWS];
    GroupWords group;
  };
  Stage ring[STAGES];
  auto load_stage = [&](int k0, Stage& dst) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r) dst.q[r] = load16(qweight + (size_t)(k0 / 8 + r) * N + n);
    dst.group = load_group_words<ASYM>(scales, qzeros, N, k0 / G, n);
  };
  auto multiply = [&](const Stage& st, int k0) {
    float scale[4], base[4];
    group_params<BF16>(st.group, scale, base);
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      // Dequantise once, reuse for every row of M.
      const uint32_t qc[4] = {st.q[r].x, st.q[r].y, st.q[r].z, st.q[r].w};
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
  };

  // Fill STAGES - 1 buffers, then per step: request the step STAGES - 1 ahead into the
  // buffer the previous step freed, and multiply this one. The ring index of every
  // step is a compile-time constant (the inner loop is unrolled), so it stays in registers.
  int k_load = k_begin + tk * BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s, k_load += kStep)
    if (k_load < k_end) load_stage(k_load, ring[s]);
  for (int k0 = k_begin + tk * BK; k0 < k_end; k0 += STAGES * kStep) {
#pragma unroll
    for (int s = 0; s < STAGES; ++s, k_load += kStep) {
      if (k_load < k_end) load_stage(k_load, ring[(s + STAGES - 1) % STAGES]);
      if (k0 + s * kStep < k_end) multiply(ring[s], k0 + s * kStep);
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
  } else if constexpr (Rows::kReduce) {
    if (tk == 0 && col_ok)
#pragma unroll
      for (int m = 0; m < BM; ++m) {
        if (!rows.valid(m0 + m)) continue;
        rows.template add_pair<BF16>(y, N, m0 + m, n, acc[m][0], acc[m][1]);
        rows.template add_pair<BF16>(y, N, m0 + m, n + 2, acc[m][2], acc[m][3]);
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
