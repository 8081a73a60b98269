// sparse_mla wgmma kind (sm_90a only): the decode kind's attention (args.h) on Hopper's
// warpgroup MMA, for H a multiple of 64. One block per (64 heads, query, KV split), two
// warpgroups, shared memory as wgmma_tiling.h plans it.
//
// Q (64 heads x 576) is copied once into shared memory, 128-byte swizzled: the
// shared-memory A operand of S = Q K^T. The KV rows are gathered 64 at a time (a tile)
// into one of two stages with 16-byte asynchronous copies, in the same swizzled layout,
// and that one copy serves both products: read K-major it is the B operand of S (k = the
// 576 dims), read MN-major (kf_wgmma_forms.h) it is the B operand of O += P V (k = the
// tile's rows, n = the first 512 dims).
// Per tile, warpgroup 0 computes the scores (m64n64, 36 k16 steps: the widest product
// the tile allows, so the fewest operand bytes read from shared memory per multiply) and
// the online softmax, while warpgroup 1 issues the gather of the next tile. They meet
// once through shared memory: warpgroup 0 leaves P and each row's rescale factor there.
// P needs no layout change: the m64n64 accumulators are, pair by pair, the A registers
// of the four k16 steps of P V, and warpgroup 1 reads its counterpart thread's registers
// back from the same place. Each warpgroup then accumulates 64 x 256 output dims (128
// fp32 registers per thread). Softmax state is in the base-2 domain (scores
// pre-multiplied by scale * log2(e)) and lives in warpgroup 0, which hands the row sums
// and maxima over at the end. The gather of tile c + 1 runs while tile c is computed;
// the KV row numbers of tile c + 2 are loaded into registers a tile earlier still, so no
// copy waits on an index load.
#pragma once
#include "kf_portability.h"
#include "kf_wgmma_forms.h"
#include "sparse_mla/args.h"
#include "sparse_mla/decode_common.h"
#include "sparse_mla/launch.h"
#include "sparse_mla/wgmma_tiling.h"

namespace kf {
namespace mla {

template <int H, int TOPK, bool BF16, int SPLITS>
KF_INLINE void sparse_mla_decode_wgmma(const kf_mla_decode_args& a) {
  namespace t = wgmma;
  using Act = Act16<BF16>;
  constexpr int BH = t::kBlockH, BK = t::kBlockK, kThreads = t::kWarps * KF_WAVE;
  static_assert(t::config_valid(H, BH, BK, t::kWarps, SPLITS, t::kStages), "wgmma_tiling.h rules");
  static_assert(kThreads == 2 * wg::kThreads, "two warpgroups");
  constexpr int kChunks16 = kHeadDim / 8;  // 16-byte pieces of a 576-dim row
  constexpr int kKSteps = kHeadDim / 16;   // 36
  constexpr int kWgWarps = wg::kThreads / KF_WAVE;
  static_assert(BK == 2 * KF_WAVE, "a tile's validity is two ballots");
  static_assert(BK % kWgWarps == 0, "whole rows per gathering warp");
  static_assert(BH == BK, "Q and the KV stages share one tile layout (row_piece_offset)");

  extern __shared__ u32x4 kf_wgmma_dynamic_shared[];
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(kf_wgmma_dynamic_shared));
  unsigned char* const smem = reinterpret_cast<unsigned char*>(kf_wgmma_dynamic_shared) + ((1024u - base % 1024u) % 1024u);
  unsigned char* const q_s = smem + t::kQOffset;
  uint32_t* const p_s = reinterpret_cast<uint32_t*>(smem + t::kPOffset);
  float* const stat_s = reinterpret_cast<float*>(smem + t::kMaxOffset);  // per row: rescale, then l and m
  int* const rows_s = reinterpret_cast<int*>(smem + t::kRowsOffset);

  const int tid = thread_id(), lane = tid % KF_WAVE;
  const int w = tid / wg::kThreads, wtid = tid % wg::kThreads, warp = wtid / KF_WAVE;  // warpgroup, its thread, warp
  const int qi = block_y(), split = block_z();
  const int h0 = block_x() * BH;
  const BlockSlots bs = block_slots<TOPK, SPLITS>(a, qi, split);
  const int estart = bs.estart, lo = bs.lo, hi = bs.hi;
  const int tiles = hi > lo ? (hi - lo + BK - 1) / BK : 0;
  const uint16_t* kv = static_cast<const uint16_t*>(a.kv);
  const float scale_log2 = a.softmax_scale * 1.4426950408889634f;

  // The KV row of tile c's row r as listed (past the split: -1). It is loaded a tile
  // ahead and checked against [0, S) only when published, so no thread waits on the load.
  auto listed_row = [&](int c, int r) -> int {
    const int pos = lo + c * BK + r;
    if (pos >= hi) return -1;
    return pos < TOPK ? a.indices[(size_t)qi * TOPK + pos] : estart + (pos - TOPK);
  };
  auto checked = [&](int row) { return row >= 0 && row < a.kv_rows ? row : -1; };
  // Warpgroup 1 gathers tile c's rows (KV row numbers published in rows_s) into stage
  // c % 2: its warp v copies rows 16v .. 16v + 15, four rows per copy instruction
  // (wgmma_tiling.h gather_row: lane l takes row 4 g + l / 8 of group g and its pieces
  // l % 8 of the nine 64-dim blocks), so each row's address is formed once and every
  // piece's shared offset is a per-lane base plus a constant.
  constexpr int kRowsPerWarp = BK / kWgWarps;
  constexpr int kGroups = kRowsPerWarp / t::kGatherRows;
  static_assert(kRowsPerWarp % 8 == 0, "a warp's first row starts a swizzle atom");
  static_assert(kRowsPerWarp % t::kGatherRows == 0 && KF_WAVE == 8 * t::kGatherRows, "whole row groups per warp");
  static_assert(kHeadDim % 64 == 0, "whole 64-dim column blocks");
  const int lane_base[2] = {t::gather_lane_base(lane, 0), t::gather_lane_base(lane, 1)};
  auto issue = [&](int c) {
    const int* rows = rows_s + (c % t::kRowBuffers) * BK + warp * kRowsPerWarp;
    unsigned char* dst = smem + t::kv_offset(c % t::kStages) + warp * kRowsPerWarp * 128;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      const int row = rows[t::gather_row(lane, g)];
      const uint16_t* src = kv + (size_t)(row >= 0 ? row : 0) * kHeadDim + 8 * (lane % 8);
      unsigned char* d = dst + lane_base[g % 2];
#pragma unroll
      for (int b = 0; b < kHeadDim / 64; ++b) cp_async16(d + t::gather_step(g, b), src + 64 * b, row >= 0);
    }
  };

  // ---- prologue: Q (all threads) and tile 0 (warpgroup 1) in one copy group; tile 1's
  // row numbers in registers of warpgroup 1's first BK threads
  {
    const uint16_t* qg = static_cast<const uint16_t*>(a.q) + ((size_t)qi * H + h0) * kHeadDim;
    for (int i = tid; i < BH * kChunks16; i += kThreads) {
      const int h = i / kChunks16, piece = i % kChunks16;
      cp_async16(q_s + t::row_piece_offset(h, piece), qg + (size_t)h * kHeadDim + piece * 8, true);
    }
  }
  const bool row_loader = w == 1 && wtid < BK;
  int next_row = -1;
  if (row_loader) {
    rows_s[wtid] = checked(listed_row(0, wtid));
    next_row = listed_row(1, wtid);
  }
  barrier();
  if (w == 1 && tiles > 0) issue(0);
  cp_async_commit();

  // Accumulator element e of this thread: row g + 8 * ((e % 4) / 2) of its warp's 16, so
  // two rows per thread (half 0 and 1), shared with the other three lanes of its quad.
  const int row0 = 16 * warp + lane / 4;
  float o[128];
#pragma unroll
  for (int e = 0; e < 128; ++e) {
    o[e] = 0.f;
    wg::fence_operand(o[e]);
  }
  float m_run[2] = {neg_inf(), neg_inf()}, l_run[2] = {0.f, 0.f};  // warpgroup 0's

  for (int c = 0; c < tiles; ++c) {
    const unsigned char* stage = smem + t::kv_offset(c % t::kStages);
    // Tile c has landed; after the barrier for every thread, and the other stage (tile
    // c - 1, whose products each warpgroup waited for) is free.
    wg::wait<0>();
    cp_async_wait<0>();
    if (row_loader) rows_s[((c + 1) % t::kRowBuffers) * BK + wtid] = checked(next_row);
    wg::fence_proxy_async();
    barrier();

    uint32_t pa[4][4];  // P as the A registers of the four k16 steps of P V
    if (w == 0) {
      // ---- S = Q K^T over the whole tile
      float s[32];
#pragma unroll
      for (int e = 0; e < 32; ++e) {
        s[e] = 0.f;
        wg::fence_operand(s[e]);
      }
      wg::fence();
      // One descriptor per operand, advanced by constants (kf_wgmma_forms_layout.h).
      const uint64_t q_desc = wg::a_desc_sw128(q_s, 0), k_desc = wg::b_desc_sw128(stage, 0, BK);
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks)
        wg::mma_ss<64, BF16>(s, wg::desc_advance(q_desc, wg::b_tile_offset_sw128(0, 16 * ks, BH)),
                             wg::desc_advance(k_desc, wg::b_tile_offset_sw128(0, 16 * ks, BK)));
      wg::commit();
      // Which of the tile's rows hold a KV row: bit j of valid[h] for row 32h + j.
      const int* rows = rows_s + (c % t::kRowBuffers) * BK;
      const uint32_t valid[2] = {__ballot_sync(0xffffffffu, rows[lane] >= 0),
                                 __ballot_sync(0xffffffffu, rows[KF_WAVE + lane] >= 0)};
      wg::wait<0>();
#pragma unroll
      for (int e = 0; e < 32; ++e) wg::fence_operand(s[e]);

      // ---- online softmax over the quad's two rows. The maxima are taken on the raw
      // scores (the runtime refuses a scale that is not positive) and the scale is folded
      // into the exponent's multiply-add; rows without a KV row are masked only in tiles
      // that have one.
      if (~valid[0] | ~valid[1]) {
#pragma unroll
        for (int e = 0; e < 32; ++e) {
          // Column 8 (e / 4) + 2 (lane % 4) + e % 2: in the first ballot's rows for e < 16.
          const int col = wg::d_elem(warp, lane, e).col;
          if (!(valid[e / 16] >> (col - KF_WAVE * (e / 16)) & 1u)) s[e] = neg_inf();
        }
      }
      float mx[2] = {neg_inf(), neg_inf()};
#pragma unroll
      for (int e = 0; e < 32; ++e) {
        const int half = (e % 4) / 2;
        mx[half] = mx[half] > s[e] ? mx[half] : s[e];
      }
      float alpha[2], sum[2] = {0.f, 0.f}, neg_m[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int m = 1; m < 4; m *= 2) {
          const float other = shuffle_xor(mx[half], m);
          mx[half] = mx[half] > other ? mx[half] : other;
        }
        const float tile_max = mx[half] * scale_log2;
        const float m_new = m_run[half] > tile_max ? m_run[half] : tile_max;
        const float m_use = m_new == neg_inf() ? 0.f : m_new;  // no -inf - -inf
        alpha[half] = fast_exp2(m_run[half] - m_use);
        m_run[half] = m_new;
        neg_m[half] = -m_use;
      }
#pragma unroll
      for (int e = 0; e < 32; ++e) {
        const int half = (e % 4) / 2;
        s[e] = fast_exp2(fmaf(s[e], scale_log2, neg_m[half]));
        sum[half] += s[e];
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) l_run[half] = l_run[half] * alpha[half] + sum[half];
      if (lane % 4 == 0) {
        stat_s[row0] = alpha[0];
        stat_s[row0 + 8] = alpha[1];
      }
      // k16 step j, register p: accumulators e0, e0 + 1 (kf_wgmma_forms_layout.h); each
      // step's four registers go out as one 16-byte store.
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const int e0 = wg::acc_pair_elem(j, p);
          pa[j][p] = Act::pack2(s[e0], s[e0 + 1]);
        }
        store16(p_s + (j * wg::kThreads + wtid) * 4, u32x4{pa[j][0], pa[j][1], pa[j][2], pa[j][3]});
      }
      if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
        for (int e = 0; e < 128; ++e) o[e] *= alpha[(e % 4) / 2];
      }
      barrier();
    } else {
      if (c + 1 < tiles) issue(c + 1);
      cp_async_commit();
      if (row_loader) next_row = listed_row(c + 2, wtid);
      barrier();
      const float alpha[2] = {stat_s[row0], stat_s[row0 + 8]};
      // The output shrinks only when a row's running max moved (rarely, once a few tiles
      // are in); the warp skips the 128 multiplies when none of its rows did.
      if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
        for (int e = 0; e < 128; ++e) o[e] *= alpha[(e % 4) / 2];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const u32x4 v = load16(p_s + (j * wg::kThreads + wtid) * 4);
        pa[j][0] = v.x;
        pa[j][1] = v.y;
        pa[j][2] = v.z;
        pa[j][3] = v.w;
      }
    }

    // ---- O += P V over this warpgroup's 256 dims
#pragma unroll
    for (int e = 0; e < 128; ++e) wg::fence_operand(o[e]);
    wg::fence();
    const unsigned char* v_cols = stage + (256 * w / 64) * BK * 128;  // first 64-dim block of this half
    const uint64_t v_desc = wg::mn_desc_sw128(v_cols, 0, BK);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wg::mma_rs_mn_n256<BF16>(o, pa[kk], wg::desc_advance(v_desc, 128 * 16 * kk));
    wg::commit();
  }
  wg::wait<0>();
#pragma unroll
  for (int e = 0; e < 128; ++e) wg::fence_operand(o[e]);

  // ---- epilogue: warpgroup 0's row sums and maxima to both, o / l, lse = (m + log2 l) ln 2
  barrier();  // the last tile's rescale factors are read
  if (w == 0) {
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int m = 1; m < 4; m *= 2) l_run[half] += shuffle_xor(l_run[half], m);
    if (lane % 4 == 0)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        stat_s[row0 + 8 * half] = l_run[half];
        stat_s[BH + row0 + 8 * half] = m_run[half];
      }
  }
  barrier();
  const float l[2] = {stat_s[row0], stat_s[row0 + 8]};
  const size_t qh0 = (size_t)qi * H + h0;  // first (query, head) row of the block
#pragma unroll
  for (int e = 0; e < 128; e += 2) {
    const layout::RC rc = wg::d_elem(warp, lane, e);
    const int half = (e % 4) / 2;
    const float inv = l[half] > 0.f ? 1.f / l[half] : 0.f;
    const int dim = 256 * w + rc.col;
    if (SPLITS == 1) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(a.o) + (qh0 + rc.row) * kLatentDim + dim);
      *dst = Act::pack2(o[e] * inv, o[e + 1] * inv);
    } else {
      float* dst = a.part_o + (((size_t)split * a.queries + qi) * H + h0 + rc.row) * kLatentDim + dim;
      dst[0] = o[e] * inv;
      dst[1] = o[e + 1] * inv;
    }
  }
  if (w == 0 && lane % 4 == 0)
#pragma unroll
    for (int half = 0; half < 2; ++half) store_lse<H, SPLITS>(a, split, qh0 + row0 + 8 * half, m_run[half], l[half]);
}

}  // namespace mla
}  // namespace kf
