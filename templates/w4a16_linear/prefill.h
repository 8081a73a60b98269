// w4a16_linear prefill kernel: y[M, N] = x[M, K] * dequant(W)^T for larger M, on the
// arch's 16x16x16 matrix instruction (kf::mma16: v_wmma on gfx11, v_mfma on gfx942,
// mma.sync on sm_90a).
//
// A block computes a BM x BN tile of y, walking K in BK steps. Each step stages the x
// tile and the int4 weight tile in registers (16-byte global loads, coalesced along K
// for x and along N for the weights), dequantises the weights to 16-bit while storing
// both to shared memory (W kept as Ws[n][k], the B operand's natural order), then
// WARPS warps each multiply a (BM/WM) x (BN/WN) sub-tile out of shared memory.
// STAGES == 2 issues the next step's global loads before the current step's matrix
// work, so their latency hides behind it (register double buffering). STAGES >= 3 is
// the pipelined body (prefill_pipelined_body below): a ring of shared-memory stages
// filled asynchronously, weights dequantised from the raw words into the B fragments.
// SPLIT_K > 1 gives each block a K / SPLIT_K slice (grid z): for small M the tile grid
// alone is too few blocks to keep the GPU's memory system busy.
// A Rows policy (rows.h) says which rows of x and y the tile rows are: dense here,
// gathered by routing in the MoE GEMMs (w4a16_moe/gemm.h).
// SILU = true fuses silu(gate) * up into the epilogue (silu.h): each warp's atoms along
// N are gate columns and, at the same fragment positions, their up partners.
// A Rows policy with kReduce (the MoE gemm2 that sums over top_k) adds its outputs into y
// in pairs of adjacent columns (Rows::add_pair, packed 16-bit atomics) instead of storing.
#pragma once
#include "kf_portability.h"
#include "w4a16_linear/args.h"
#include "w4a16_linear/dequant.h"
#include "w4a16_linear/rows.h"
#include "w4a16_linear/silu.h"
#include "w4a16_linear/tiling.h"

namespace kf {

namespace w4a16 {

// A thread's place in the block tile, as the bodies compute it.
struct PrefillThread {
  int tid, lane, wm, wn, m0, n0;
};

// Rows::kReduce: the accumulator elements of a tile in pairs of adjacent columns (even
// column first), each pair added into y by the Rows policy. Where the layout gives a
// thread both columns (sm_90a: elements e, e + 1) the pair is its own; where adjacent
// columns are in adjacent lanes (AMD: column = lane % 16, rows alike in lanes l, l ^ 1)
// the even lane takes its neighbour's value by a shuffle, which every lane executes.
template <class Rows, bool BF16, int TM, int TN>
KF_INLINE void prefill_add_pairs(const Rows& rows, uint16_t* y, int ld, const PrefillThread& t,
                                 const FragC (&v)[TM][TN]) {
  constexpr bool kInThread = MmaLayout::c_elem(0, 1).col == MmaLayout::c_elem(0, 0).col + 1 &&
                             MmaLayout::c_elem(0, 1).row == MmaLayout::c_elem(0, 0).row;
  static_assert(kInThread || (MmaLayout::c_elem(1, 0).col == MmaLayout::c_elem(0, 0).col + 1 &&
                              MmaLayout::c_elem(1, 0).row == MmaLayout::c_elem(0, 0).row),
                "a layout with adjacent output columns in one thread or in lanes l, l ^ 1");
  static_assert(!kInThread || MmaLayout::kCElems % 2 == 0, "element pairs");
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
#pragma unroll
      for (int e = 0; e < MmaLayout::kCElems; e += kInThread ? 2 : 1) {
        const layout::RC rc = MmaLayout::c_elem(t.lane, e);
        const int row = t.m0 + (t.wm * TM + i) * 16 + rc.row;
        const int col = t.n0 + (t.wn * TN + j) * 16 + rc.col;
        const float a = v[i][j].v[e];
        const float b = kInThread ? v[i][j].v[e + 1 < MmaLayout::kCElems ? e + 1 : e] : shuffle_xor(a, 1);
        if ((kInThread || t.lane % 2 == 0) && rows.valid(row)) rows.template add_pair<BF16>(y, ld, row, col, a, b);
      }
}

// The end of every prefill body: the block's accumulators (TM x TN atoms per warp) go
// to y, scaled by the Rows policy, directly or (SPLIT_K > 1) through the fp32 partials
// and the tile's counter. SILU: y gets silu(gate) * up of each pair of atoms j and
// j + TN/2 (silu.h), N/2 columns. Rows::kReduce: added into y (prefill_add_pairs).
template <class Rows, int N, bool BF16, int BN, int SPLIT_K, int TM, int TN, bool SILU = false>
KF_INLINE void prefill_epilogue(const Rows& rows, const kf_linear_args& args, const PrefillThread& t,
                                const FragC (&acc)[TM][TN]) {
  using T = Act16<BF16>;
  static_assert(!SILU || TN % 2 == 0, "fused SiLU: gate and up atoms in pairs");
  static_assert(!(SILU && Rows::kReduce), "the fused SiLU epilogue stores h; it does not reduce");
  const int tid = t.tid, lane = t.lane, wm = t.wm, wn = t.wn, m0 = t.m0, n0 = t.n0;

  // Every valid accumulator element's row of the block grid and column, in the arch's
  // fragment layout.
  auto for_each_element = [&](auto&& f) {
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j)
#pragma unroll
        for (int e = 0; e < MmaLayout::kCElems; ++e) {
          const layout::RC rc = MmaLayout::c_elem(lane, e);
          const int row = m0 + (wm * TM + i) * 16 + rc.row;
          const int col = n0 + (wn * TN + j) * 16 + rc.col;
          if (rows.valid(row)) f(row, col, acc[i][j].v[e]);
        }
  };
  // SILU: every valid (gate, up) pair: its row, the columns of both (as above) and the
  // output column, the gate column's place in the gate half.
  auto for_each_pair = [&](auto&& f) {
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN / 2; ++j)
#pragma unroll
        for (int e = 0; e < MmaLayout::kCElems; ++e) {
          const layout::RC rc = MmaLayout::c_elem(lane, e);
          const int row = m0 + (wm * TM + i) * 16 + rc.row;
          const int col = n0 + (wn * TN + j) * 16 + rc.col;
          const int out = block_x() * (BN / 2) + (wn * TN / 2 + j) * 16 + rc.col;
          if (rows.valid(row)) f(row, col, col + TN / 2 * 16, out, acc[i][j].v[e], acc[i][j + TN / 2].v[e]);
        }
  };
  uint16_t* y = static_cast<uint16_t*>(args.y);
  auto store = [&](int row, int col, float v) {
    y[(size_t)rows.y_row(row) * N + col] = (uint16_t)T::from_f32(v * rows.scale(row));
  };
  auto store_silu = [&](int row, int out, float g, float u) {
    const float f = rows.scale(row);
    y[(size_t)rows.y_row(row) * (N / 2) + out] = (uint16_t)T::from_f32(silu_mul(g * f, u * f));
  };
  if constexpr (SPLIT_K == 1) {
    if constexpr (Rows::kReduce)
      prefill_add_pairs<Rows, BF16>(rows, y, N, t, acc);
    else if constexpr (SILU)
      for_each_pair([&](int row, int, int, int out, float g, float u) { store_silu(row, out, g, u); });
    else
      for_each_element(store);
  } else {
    // Each slice writes an fp32 partial; the last block of the tile to arrive sums the
    // slices in fixed order (deterministic) and resets the tile's counter for the next
    // launch, as the decode kind does.
    float* ws = args.workspace;
    const size_t slice = (size_t)rows.count() * N;
    for_each_element([&](int row, int col, float v) { ws[block_z() * slice + (size_t)row * N + col] = v; });
    fence_device();
    barrier();
    KF_SHARED int last;
    int* counter = args.counters + block_y() * (N / BN) + block_x();
    if (tid == 0) last = atomic_add_device(counter, 1) == SPLIT_K - 1;
    barrier();
    if (!last) return;
    fence_device();
    auto total = [&](int row, int col) {
      float sum = 0.f;
      for (int s = 0; s < SPLIT_K; ++s) sum += load_coherent(ws + s * slice + (size_t)row * N + col);
      return sum;
    };
    if constexpr (Rows::kReduce) {
      FragC sum[TM][TN];  // the tile's totals (zero on rows that are not valid)
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j)
#pragma unroll
          for (int e = 0; e < MmaLayout::kCElems; ++e) {
            const layout::RC rc = MmaLayout::c_elem(lane, e);
            const int row = m0 + (wm * TM + i) * 16 + rc.row;
            const int col = n0 + (wn * TN + j) * 16 + rc.col;
            sum[i][j].v[e] = rows.valid(row) ? total(row, col) : 0.f;
          }
      prefill_add_pairs<Rows, BF16>(rows, y, N, t, sum);
    } else if constexpr (SILU)
      for_each_pair([&](int row, int gate, int up, int out, float, float) {
        store_silu(row, out, total(row, gate), total(row, up));
      });
    else
      for_each_element([&](int row, int col, float) { store(row, col, total(row, col)); });
    if (tid == 0) atomic_store_device(counter, 0);
  }
}

template <class Rows, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int SPLIT_K,
          int STAGES, bool SILU = false>
KF_INLINE void prefill_staged_body(const Rows rows, const kf_linear_args& args) {
  static_assert(w4a16::prefill_valid(N, K, G, BM, BN, BK, WARPS, SPLIT_K), "invalid prefill config");
  static_assert(STAGES == 1 || STAGES == 2, "stages: 1 or 2");
  static_assert(!SILU || w4a16::prefill_silu_valid(N, BM, BN, WARPS, STAGES, ASYM), "invalid fused SiLU config");
  using T = Act16<BF16>;
  constexpr int THREADS = WARPS * KF_WAVE;
  constexpr int WM = w4a16::prefill_warps_m(BM, BN, WARPS, SILU);
  constexpr int WN = WARPS / WM;
  constexpr int TM = BM / WM / 16;  // atoms per warp along M
  constexpr int TN = BN / WN / 16;  // atoms per warp along N
  constexpr int LDS = BK + w4a16::kSmemPad;
  // 16-byte vectors per k-step: x tile BM x BK halves, weight tile BK/8 x BN int32.
  constexpr int A_VECS = BM * BK / 8;
  constexpr int W_VECS = BK * BN / 32;
  constexpr int A_PER_THREAD = (A_VECS + THREADS - 1) / THREADS;
  constexpr int W_PER_THREAD = (W_VECS + THREADS - 1) / THREADS;

  KF_SHARED uint16_t As[BM * LDS];
  KF_SHARED uint16_t Ws[BN * LDS];

  const uint16_t* x = static_cast<const uint16_t*>(args.x);
  const uint32_t* qweight = static_cast<const uint32_t*>(args.qweight);
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const uint32_t* qzeros = static_cast<const uint32_t*>(args.qzeros);
  const int tid = thread_id();
  const int lane = tid % KF_WAVE;
  const int warp = tid / KF_WAVE;
  const int wm = warp / WN, wn = warp % WN;
  const int n0 = block_x() * BN;
  const int m0 = block_y() * BM;
  // The weight column of local column `local` of the tile (SILU: runs of gate and up
  // columns, silu.h).
  auto wcol = [&](int local) { return SILU ? silu_weight_col(N, BN, TN * 8, block_x(), local) : n0 + local; };

  u32x4 a_reg[A_PER_THREAD];
  u32x4 w_reg[W_PER_THREAD];

  // The x row each of this thread's A vectors comes from is the same on every k-step:
  // look it up once (a gathered row costs a load). Rows that are not valid load zeros.
  const uint16_t* a_src[A_PER_THREAD];
#pragma unroll
  for (int i = 0; i < A_PER_THREAD; ++i) {
    const int v = tid + i * THREADS;
    const int row = m0 + v / (BK / 8);
    const bool in_tile = A_VECS % THREADS == 0 || v < A_VECS;
    a_src[i] = in_tile && rows.valid(row) ? x + (size_t)rows.x_row(row) * K + (v % (BK / 8)) * 8 : nullptr;
  }

  auto load_tile = [&](int k0) {
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) a_reg[i] = a_src[i] ? load16(a_src[i] + k0) : u32x4{0, 0, 0, 0};
#pragma unroll
    for (int i = 0; i < W_PER_THREAD; ++i) {
      const int v = tid + i * THREADS;
      const int krow = v / (BN / 4), n4 = v % (BN / 4);
      if (W_VECS % THREADS == 0 || v < W_VECS)
        w_reg[i] = load16(qweight + (size_t)(k0 / 8 + krow) * N + wcol(n4 * 4));
    }
  };

  auto store_tile = [&](int k0) {
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) {
      const int v = tid + i * THREADS;
      if (A_VECS % THREADS == 0 || v < A_VECS)
        store16(As + (v / (BK / 8)) * LDS + (v % (BK / 8)) * 8, a_reg[i]);
    }
#pragma unroll
    for (int i = 0; i < W_PER_THREAD; ++i) {
      const int v = tid + i * THREADS;
      if (!(W_VECS % THREADS == 0 || v < W_VECS)) continue;
      const int krow = v / (BN / 4), n4 = v % (BN / 4);
      float scale[4], base[4];
      w4a16::load_group_params<BF16, ASYM>(scales, qzeros, N, k0 / G, wcol(n4 * 4), scale, base);
      const uint32_t qc[4] = {w_reg[i].x, w_reg[i].y, w_reg[i].z, w_reg[i].w};
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        float w[8];
        w4a16::dequant8(qc[c], scale[c], base[c], w);
        store16(Ws + (n4 * 4 + c) * LDS + krow * 8,
                u32x4{T::pack2(w[0], w[1]), T::pack2(w[2], w[3]), T::pack2(w[4], w[5]), T::pack2(w[6], w[7])});
      }
    }
  };

  FragC acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
#pragma unroll
      for (int e = 0; e < MmaLayout::kCElems; ++e) acc[i][j].v[e] = 0.f;

  // Split-K: block z multiplies one K / SPLIT_K slice of the tile.
  constexpr int KT = K / SPLIT_K / BK;
  const int k_begin = block_z() * (K / SPLIT_K);
  load_tile(k_begin);
  for (int kt = 0; kt < KT; ++kt) {
    store_tile(k_begin + kt * BK);
    barrier();
    if (STAGES == 2 && kt + 1 < KT) load_tile(k_begin + (kt + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      FragA a[TM];
      FragB b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) load_frag_a(a[i], As + (wm * TM + i) * 16 * LDS + kk, LDS, lane);
#pragma unroll
      for (int j = 0; j < TN; ++j) load_frag_b(b[j], Ws + (wn * TN + j) * 16 * LDS + kk, LDS, lane);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) mma16<BF16>(acc[i][j], a[i], b[j]);
    }
    barrier();
    if (STAGES == 1 && kt + 1 < KT) load_tile(k_begin + (kt + 1) * BK);
  }

  prefill_epilogue<Rows, N, BF16, BN, SPLIT_K, TM, TN, SILU>(rows, args, {tid, lane, wm, wn, m0, n0}, acc);
}

// STAGES >= 3: the same tiles through a ring of STAGES shared-memory stages filled by
// asynchronous 16-byte copies (cp_async16), STAGES - 1 k-tiles ahead of the matrix work.
// A stage holds the tile's x rows, its RAW int4 words (GPTQ order, [k/8][n]), its scale
// row and (asymmetric) its zero-point words; every warp dequantises the weights of its
// own B fragments straight from the raw words into registers (raw_b_pair, tiling.h), so
// there is no dequantised tile and one barrier per k-tile, before a stage is refilled.
template <class Rows, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int SPLIT_K,
          int STAGES, bool SILU = false>
KF_INLINE void prefill_pipelined_body(const Rows rows, const kf_linear_args& args) {
  static_assert(w4a16::prefill_pipelined_valid(N, K, G, BM, BN, BK, WARPS, SPLIT_K, STAGES, ASYM, KF_WAVE,
                                               KF_MAX_STATIC_SHARED),
                "invalid pipelined prefill config");
  static_assert(!SILU || w4a16::prefill_silu_valid(N, BM, BN, WARPS, STAGES, ASYM), "invalid fused SiLU config");
  using T = Act16<BF16>;
  constexpr int THREADS = WARPS * KF_WAVE;
  constexpr int WM = w4a16::prefill_warps_m(BM, BN, WARPS, SILU);
  constexpr int WN = WARPS / WM;
  constexpr int TM = BM / WM / 16;  // atoms per warp along M
  constexpr int TN = BN / WN / 16;  // atoms per warp along N
  constexpr int LDS = BK + w4a16::kSmemPad;
  // 16-byte copies per stage: x tile BM x BK halves, weight tile BK/8 x BN int32, the
  // scale row BN halves, the zero-point row BN/8 int32.
  constexpr int A_VECS = BM * BK / 8;
  constexpr int W_VECS = BK * BN / 32;
  constexpr int S_VECS = BN / 8;
  constexpr int Z_VECS = ASYM ? BN / 32 : 0;
  constexpr int A_PER_THREAD = (A_VECS + THREADS - 1) / THREADS;
  constexpr int W_PER_THREAD = (W_VECS + THREADS - 1) / THREADS;
  // Byte offsets within a stage (each part a multiple of 16 bytes).
  constexpr int A_BYTES = BM * LDS * 2;
  constexpr int W_BYTES = BK / 8 * BN * 4;
  constexpr int S_BYTES = BN * 2;
  constexpr int STAGE_BYTES = w4a16::pipelined_stage_bytes(BM, BN, BK, ASYM);
  static_assert(A_BYTES % 16 == 0 && W_BYTES % 16 == 0 && S_BYTES % 16 == 0 && STAGE_BYTES % 16 == 0,
                "stage parts 16-byte aligned");

  alignas(16) KF_SHARED unsigned char smem[STAGES * STAGE_BYTES];

  const uint16_t* x = static_cast<const uint16_t*>(args.x);
  const uint32_t* qweight = static_cast<const uint32_t*>(args.qweight);
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const uint32_t* qzeros = static_cast<const uint32_t*>(args.qzeros);
  const int tid = thread_id();
  const int lane = tid % KF_WAVE;
  const int warp = tid / KF_WAVE;
  const int wm = warp / WN, wn = warp % WN;
  const int n0 = block_x() * BN;
  const int m0 = block_y() * BM;
  // The weight column of local column `local` of the tile (SILU: runs of gate and up
  // columns, silu.h).
  auto wcol = [&](int local) { return SILU ? silu_weight_col(N, BN, TN * 8, block_x(), local) : n0 + local; };

  // The x row each of this thread's A copies comes from is the same on every k-tile:
  // look it up once. Rows that are not valid are zero-filled (their source, x itself, is
  // not read).
  const uint16_t* a_src[A_PER_THREAD];
  bool a_fill[A_PER_THREAD];
#pragma unroll
  for (int i = 0; i < A_PER_THREAD; ++i) {
    const int v = tid + i * THREADS;
    const int row = m0 + v / (BK / 8);
    const bool in_tile = A_VECS % THREADS == 0 || v < A_VECS;
    a_fill[i] = in_tile && rows.valid(row);
    a_src[i] = a_fill[i] ? x + (size_t)rows.x_row(row) * K + (v % (BK / 8)) * 8 : x;
  }

  // Split-K: block z multiplies one K / SPLIT_K slice of the tile.
  constexpr int KT = K / SPLIT_K / BK;
  const int k_begin = block_z() * (K / SPLIT_K);

  // Copies of k-tile kt into `stage`.
  auto issue = [&](int kt, int stage) {
    const int k0 = k_begin + kt * BK;
    unsigned char* st = smem + stage * STAGE_BYTES;
    uint16_t* as = reinterpret_cast<uint16_t*>(st);
    uint32_t* ws = reinterpret_cast<uint32_t*>(st + A_BYTES);
    uint16_t* ss = reinterpret_cast<uint16_t*>(st + A_BYTES + W_BYTES);
    uint32_t* zs = reinterpret_cast<uint32_t*>(st + A_BYTES + W_BYTES + S_BYTES);
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) {
      const int v = tid + i * THREADS;
      if (A_VECS % THREADS == 0 || v < A_VECS)
        cp_async16(as + (v / (BK / 8)) * LDS + (v % (BK / 8)) * 8, a_src[i] + k0, a_fill[i]);
    }
#pragma unroll
    for (int i = 0; i < W_PER_THREAD; ++i) {
      const int v = tid + i * THREADS;
      const int krow = v / (BN / 4), n4 = v % (BN / 4);
      if (W_VECS % THREADS == 0 || v < W_VECS)
        cp_async16(ws + krow * BN + n4 * 4, qweight + (size_t)(k0 / 8 + krow) * N + wcol(n4 * 4), true);
    }
    const int grp = k0 / G;  // G % BK == 0: one group per k-tile
    if (tid < S_VECS) {
      cp_async16(ss + tid * 8, scales + (size_t)grp * N + wcol(tid * 8), true);
    } else if (tid < S_VECS + Z_VECS) {
      const int c = tid - S_VECS;
      cp_async16(zs + c * 4, qzeros + (size_t)grp * (N / 8) + wcol(c * 32) / 8, true);
    }
  };

  FragC acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
#pragma unroll
      for (int e = 0; e < MmaLayout::kCElems; ++e) acc[i][j].v[e] = 0.f;

  // The matrix work of the k-tile in `stage`.
  auto compute = [&](int stage) {
    const unsigned char* st = smem + stage * STAGE_BYTES;
    const uint16_t* as = reinterpret_cast<const uint16_t*>(st);
    const uint32_t* ws = reinterpret_cast<const uint32_t*>(st + A_BYTES);
    const uint16_t* ss = reinterpret_cast<const uint16_t*>(st + A_BYTES + W_BYTES);
    const uint32_t* zs = reinterpret_cast<const uint32_t*>(st + A_BYTES + W_BYTES + S_BYTES);
    // Scale and 2^23 + zero point of the column each B register holds, for the tile.
    float scale[TN][MmaLayout::kBPairs], base[TN][MmaLayout::kBPairs];
#pragma unroll
    for (int j = 0; j < TN; ++j)
#pragma unroll
      for (int p = 0; p < MmaLayout::kBPairs; ++p) {
        const int col = (wn * TN + j) * 16 + MmaLayout::b_pair(lane, p).row;
        scale[j][p] = T::to_f32(ss[col]);
        uint32_t z = 8;  // uint4b8
        if constexpr (ASYM) z = (zs[col / 8] >> (4 * (col % 8))) & 0xfu;
        base[j][p] = bits_as_float(z | kMagicBits);
      }
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      FragA a[TM];
      FragB b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) load_frag_a(a[i], as + (wm * TM + i) * 16 * LDS + kk, LDS, lane);
#pragma unroll
      for (int j = 0; j < TN; ++j)
#pragma unroll
        for (int p = 0; p < MmaLayout::kBPairs; ++p) {
          const RawPair rp = raw_b_pair<MmaLayout>(lane, p, (wn * TN + j) * 16, kk, BN);
          const uint32_t q = ws[rp.word] >> rp.shift;
          const float w0 = (bits_as_float((q & 0xfu) | kMagicBits) - base[j][p]) * scale[j][p];
          const float w1 = (bits_as_float(((q >> 4) & 0xfu) | kMagicBits) - base[j][p]) * scale[j][p];
          b[j].r[p] = T::pack2(w0, w1);
        }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) mma16<BF16>(acc[i][j], a[i], b[j]);
    }
  };

  // Prologue: tiles 0 .. STAGES - 2 in flight. Every iteration commits one group (empty
  // past the end), so "tile kt landed" is always "at most STAGES - 2 groups pending".
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) issue(s, s);
    cp_async_commit();
  }
  int read_stage = 0, write_stage = STAGES - 1;
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();
    // Tile kt is visible to all, and every warp is done with the stage computed last
    // iteration, which is the one refilled now.
    barrier();
    if (kt + STAGES - 1 < KT) issue(kt + STAGES - 1, write_stage);
    cp_async_commit();
    compute(read_stage);
    read_stage = read_stage + 1 == STAGES ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == STAGES ? 0 : write_stage + 1;
  }
  cp_async_wait<0>();

  prefill_epilogue<Rows, N, BF16, BN, SPLIT_K, TM, TN, SILU>(rows, args, {tid, lane, wm, wn, m0, n0}, acc);
}

// Stages 1 and 2: register-staged body; 3 and more: the asynchronous ring.
template <class Rows, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int SPLIT_K,
          int STAGES, bool SILU = false>
KF_INLINE void prefill_body(const Rows rows, const kf_linear_args& args) {
  if constexpr (STAGES >= 3)
    prefill_pipelined_body<Rows, N, K, G, BF16, ASYM, BM, BN, BK, WARPS, SPLIT_K, STAGES, SILU>(rows, args);
  else
    prefill_staged_body<Rows, N, K, G, BF16, ASYM, BM, BN, BK, WARPS, SPLIT_K, STAGES, SILU>(rows, args);
}

}  // namespace w4a16

template <int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int SPLIT_K, int STAGES>
KF_INLINE void w4a16_linear_prefill(const kf_linear_args& args) {
  w4a16::prefill_body<w4a16::DenseRows, N, K, G, BF16, ASYM, BM, BN, BK, WARPS, SPLIT_K, STAGES>({args.m}, args);
}

}  // namespace kf
