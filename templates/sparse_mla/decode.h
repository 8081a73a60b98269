// sparse_mla decode kernel (args.h): one block per (BH heads, query, KV split), on the
// arch's 16x16x16 matrix instruction.
//
// The KV rows a query attends are shared by all its heads, so a block gathers BK of them
// at a time into shared memory (asynchronous 16-byte copies, STAGES deep) and runs every
// head of its tile against them: scores S = Q . K^T, an online softmax, O += P . V.
// A head tile is 16 heads (one atom row); the block's warps are MT = BH / 16 head tiles
// times WD d-slices. The d-slices split both products by dimension: for S each warp sums
// its share of the 36 16-wide k-steps of the 576 dims (its Q fragments stay in
// registers for the whole kernel) and the WD partial scores meet in shared memory; for
// O each warp owns 512 / WD output dims, so no warp holds all 512 accumulators.
// The softmax runs on all threads, TPR of them per head row (wave shuffles reduce the
// row max and sum); running max and sum live in those threads' registers, in the
// base-2 domain (scores pre-multiplied by scale * log2(e)).
#pragma once
#include "kf_portability.h"
#include "sparse_mla/args.h"
#include "sparse_mla/decode_common.h"
#include "sparse_mla/launch.h"

namespace kf {
namespace mla {

template <int BH, int BK, int WARPS, int STAGES>
struct DecodeTile {
  static constexpr int kMT = BH / 16;     // head tiles
  static constexpr int kWD = WARPS / kMT;  // d-slices per head tile
  static constexpr int kLd = kHeadDim + 8;  // KV row stride: 1168 bytes, ldmatrix rows hit distinct banks
  static constexpr int kPLd = BK + 8;
  static constexpr int kKSteps = kHeadDim / 16;                // 36
  static constexpr int kQSteps = (kKSteps + kWD - 1) / kWD;   // k-steps per warp
  static constexpr int kOTiles = kLatentDim / 16 / kWD;       // 16-wide output tiles per warp
  static constexpr int kChunks16 = kHeadDim / 8;              // 16-byte pieces of a row
  static_assert(BH % 16 == 0 && WARPS % kMT == 0, "warps = head tiles x d-slices");
  static_assert((kLatentDim / 16) % kWD == 0, "d-slices split the 512 output dims evenly");
  static_assert(BK % 16 == 0 && STAGES >= 1, "BK: whole atoms");
};

// Slot positions whose KV rows the block holds at a time. The rows of the next window are
// loaded into registers while the current one is in use, so a gather never waits on the
// index load before it (a dependent load per step would add a memory round trip to each).
constexpr int kIndexWindow = 256;

template <int BH, int BK, int WARPS, int STAGES>
struct alignas(16) DecodeSmem {
  using T = DecodeTile<BH, BK, WARPS, STAGES>;
  uint16_t kv[STAGES][BK * T::kLd];
  float part_s[T::kWD][BH][BK];  // each d-slice's partial scores
  uint16_t p[BH * T::kPLd];      // softmax numerators, 16-bit: the A operand of P . V
  float alpha[BH];               // how much the running output shrinks this step
  float row_m[BH], row_l[BH];    // final running max and sum
  int valid[STAGES][BK];         // the slot holds a row in [0, S)
  int rows[2][kIndexWindow];     // KV rows of two windows of slot positions (-1 = none)
};


template <int H, int TOPK, bool BF16, int BH, int BK, int WARPS, int SPLITS, int STAGES>
KF_INLINE void sparse_mla_decode(const kf_mla_decode_args& a) {
  using Tile = DecodeTile<BH, BK, WARPS, STAGES>;
  using Act = Act16<BF16>;
  static_assert(H % BH == 0, "head tiles cover H");
  static_assert(SPLITS >= 1 && SPLITS <= kMaxSplits, "KV splits");
  constexpr int kThreads = WARPS * KF_WAVE;
  constexpr int WD = Tile::kWD, LD = Tile::kLd;
  // Softmax mapping: E consecutive scores of one row per thread, TPR threads per row.
  constexpr int E = BH * BK / kThreads > 0 ? BH * BK / kThreads : 1;
  constexpr int TPR = BK / E;
  static_assert(TPR <= KF_WAVE && (TPR & (TPR - 1)) == 0, "a row's threads sit in one wave");

  static_assert(sizeof(DecodeSmem<BH, BK, WARPS, STAGES>) <= decode_smem_bytes(BH, BK, WARPS, STAGES),
                "launch.h's bound, which the generator prunes by");
  KF_SHARED DecodeSmem<BH, BK, WARPS, STAGES> sm;
  const int tid = thread_id(), lane = tid % KF_WAVE, warp = tid / KF_WAVE;
  const int mt = warp / WD, wd = warp % WD;
  const int qi = block_y(), split = block_z();
  const int h0 = block_x() * BH;
  const BlockSlots bs = block_slots<TOPK, SPLITS>(a, qi, split);
  const int estart = bs.estart, lo = bs.lo, hi = bs.hi;
  const uint16_t* kv = static_cast<const uint16_t*>(a.kv);
  const float scale_log2 = a.softmax_scale * 1.4426950408889634f;

  // The KV row of slot position pos, or -1 (unused, or outside [0, S)).
  auto slot_row = [&](int pos) -> int {
    const int r = pos < TOPK ? a.indices[(size_t)qi * TOPK + pos] : estart + (pos - TOPK);
    return r >= 0 && r < a.kv_rows ? r : -1;
  };
  // Index windows: window w covers slot positions lo + w * kIndexWindow ..; this thread
  // loads entries tid, tid + kThreads, ... of each (into registers, ahead of use).
  static_assert(kIndexWindow % BK == 0, "a step's slots sit in one window");
  constexpr int kPerThread = (kIndexWindow + kThreads - 1) / kThreads;
  int next_rows[kPerThread];
  auto load_window = [&](int w) {
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int i = tid + j * kThreads, pos = lo + w * kIndexWindow + i;
      next_rows[j] = i < kIndexWindow && pos < hi ? slot_row(pos) : -1;
    }
  };
  auto store_window = [&](int w) {
#pragma unroll
    for (int j = 0; j < kPerThread; ++j)
      if (tid + j * kThreads < kIndexWindow) sm.rows[w % 2][tid + j * kThreads] = next_rows[j];
  };
  // Gather chunk c's BK rows into stage st; slots past hi or without a row read zeros.
  auto issue = [&](int c, int st) {
    const int* rows = sm.rows[(c * BK / kIndexWindow) % 2] + c * BK % kIndexWindow;
    for (int i = tid; i < BK * Tile::kChunks16; i += kThreads) {
      const int r = i / Tile::kChunks16, piece = i % Tile::kChunks16;
      const int row = rows[r];
      cp_async16(&sm.kv[st][r * LD + piece * 8], kv + (size_t)(row >= 0 ? row : 0) * kHeadDim + piece * 8, row >= 0);
      if (piece == 0) sm.valid[st][r] = row >= 0;
    }
  };
  // Before chunk c is issued: when it opens a window, publish that window (loaded a
  // window earlier) and start loading the next. Every thread takes the same branch.
  auto enter_window = [&](int c) {
    if (c * BK % kIndexWindow != 0) return;
    const int w = c * BK / kIndexWindow;
    store_window(w);
    barrier();
    load_window(w + 1);
  };

  // This warp's Q fragments: head tile mt, k-steps wd, wd + WD, ...
  FragA qf[Tile::kQSteps];
  {
    const uint16_t* qt = static_cast<const uint16_t*>(a.q) + ((size_t)qi * H + h0 + mt * 16) * kHeadDim;
#pragma unroll
    for (int i = 0; i < Tile::kQSteps; ++i) {
      const int ks = wd + i * WD;
#pragma unroll
      for (int p = 0; p < MmaLayout::kAPairs; ++p) {
        const layout::RC rc = MmaLayout::a_pair(lane, p);
        qf[i].r[p] = ks < Tile::kKSteps ? *reinterpret_cast<const uint32_t*>(qt + rc.row * kHeadDim + ks * 16 + rc.col) : 0u;
      }
    }
  }
  FragC o[Tile::kOTiles];
#pragma unroll
  for (int t = 0; t < Tile::kOTiles; ++t)
#pragma unroll
    for (int e = 0; e < MmaLayout::kCElems; ++e) o[t].v[e] = 0.f;

  const int srow = tid / TPR, scol = (tid % TPR) * E;  // softmax row and first column
  const bool srow_live = srow < BH;
  float m_run = neg_inf(), l_run = 0.f;

  const int chunks = hi > lo ? (hi - lo + BK - 1) / BK : 0;
  // Prologue: STAGES - 1 chunks in flight; then one group committed per step (maybe
  // empty), so "all but the newest STAGES - 1 groups done" means chunk c has landed.
  load_window(0);
#pragma unroll
  for (int c = 0; c < STAGES - 1; ++c) {
    if (c < chunks) {
      enter_window(c);
      issue(c, c);
    }
    cp_async_commit();
  }
  for (int c = 0; c < chunks; ++c) {
    const int st = c % STAGES;
    if (c + STAGES - 1 < chunks) {
      enter_window(c + STAGES - 1);
      issue(c + STAGES - 1, (c + STAGES - 1) % STAGES);
    }
    cp_async_commit();
    cp_async_wait<STAGES - 1>();
    barrier();
    const uint16_t* kvs = sm.kv[st];

    // ---- partial scores of head tile mt over this warp's d-slice
#pragma unroll
    for (int nt = 0; nt < BK / 16; ++nt) {
      FragC s;
#pragma unroll
      for (int e = 0; e < MmaLayout::kCElems; ++e) s.v[e] = 0.f;
#pragma unroll
      for (int i = 0; i < Tile::kQSteps; ++i) {
        const int ks = wd + i * WD;
        if (ks < Tile::kKSteps) {
          FragB b;
          load_frag_b(b, kvs + nt * 16 * LD + ks * 16, LD, lane);
          mma16<BF16>(s, qf[i], b);
        }
      }
#pragma unroll
      for (int e = 0; e < MmaLayout::kCElems; ++e) {
        const layout::RC rc = MmaLayout::c_elem(lane, e);
        sm.part_s[wd][mt * 16 + rc.row][nt * 16 + rc.col] = s.v[e];
      }
    }
    barrier();

    // ---- online softmax: all threads take part in the shuffles, live rows store
    {
      float sc[E];
      float mx = neg_inf();
#pragma unroll
      for (int e = 0; e < E; ++e) {
        float v = 0.f;
        if (srow_live) {
#pragma unroll
          for (int w = 0; w < WD; ++w) v += sm.part_s[w][srow][scol + e];
        }
        sc[e] = srow_live && sm.valid[st][scol + e] ? v * scale_log2 : neg_inf();
        mx = mx > sc[e] ? mx : sc[e];
      }
#pragma unroll
      for (int m = TPR / 2; m > 0; m /= 2) {
        const float other = shuffle_xor(mx, m);
        mx = mx > other ? mx : other;
      }
      const float m_new = m_run > mx ? m_run : mx;
      const float m_use = m_new == neg_inf() ? 0.f : m_new;  // no -inf - -inf
      const float alpha = fast_exp2(m_run - m_use);
      float sum = 0.f;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const float p = fast_exp2(sc[e] - m_use);
        sum += p;
        if (srow_live) sm.p[srow * Tile::kPLd + scol + e] = static_cast<uint16_t>(Act::from_f32(p));
      }
#pragma unroll
      for (int m = TPR / 2; m > 0; m /= 2) sum += shuffle_xor(sum, m);
      l_run = l_run * alpha + sum;
      m_run = m_new;
      if (srow_live && tid % TPR == 0) sm.alpha[srow] = alpha;
    }
    barrier();

    // ---- O = O * alpha + P . V over this warp's output dims
#pragma unroll
    for (int t = 0; t < Tile::kOTiles; ++t)
#pragma unroll
      for (int e = 0; e < MmaLayout::kCElems; ++e) o[t].v[e] *= sm.alpha[mt * 16 + MmaLayout::c_elem(lane, e).row];
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      FragA pa;
      load_frag_a(pa, sm.p + mt * 16 * Tile::kPLd + kk * 16, Tile::kPLd, lane);
#pragma unroll
      for (int t = 0; t < Tile::kOTiles; ++t) {
        FragB vb;
        load_frag_b_kn(vb, kvs + kk * 16 * LD + (wd * Tile::kOTiles + t) * 16, LD, lane);
        mma16<BF16>(o[t], pa, vb);
      }
    }
    barrier();  // stage st and the score buffers are rewritten next step
  }

  // ---- epilogue: o / l, and lse = ln(sum exp(logit)) = (m + log2 l) * ln 2
  if (srow_live && tid % TPR == 0) {
    sm.row_m[srow] = m_run;
    sm.row_l[srow] = l_run;
  }
  barrier();
  const size_t qh0 = (size_t)qi * H + h0;  // first (query, head) row of the block
#pragma unroll
  for (int t = 0; t < Tile::kOTiles; ++t)
#pragma unroll
    for (int e = 0; e < MmaLayout::kCElems; ++e) {
      const layout::RC rc = MmaLayout::c_elem(lane, e);
      const int hrow = mt * 16 + rc.row;
      const int dim = (wd * Tile::kOTiles + t) * 16 + rc.col;
      const float l = sm.row_l[hrow];
      const float v = l > 0.f ? o[t].v[e] / l : 0.f;
      if (SPLITS == 1)
        static_cast<uint16_t*>(a.o)[(qh0 + hrow) * kLatentDim + dim] = static_cast<uint16_t>(Act::from_f32(v));
      else
        a.part_o[(((size_t)split * a.queries + qi) * H + h0 + hrow) * kLatentDim + dim] = v;
    }
  if (tid < BH) store_lse<H, SPLITS>(a, split, qh0 + tid, sm.row_m[tid], sm.row_l[tid]);
}

}  // namespace mla
}  // namespace kf
