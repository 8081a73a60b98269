// w4a16_moe GEMMs' warpgroup-MMA body (sm_90a only): the w4a16_linear wgmma kind's tile
// (w4a16_linear/wgmma.h: weights as the A operand, x as B, the same unpacking and
// products) over gathered rows, with every thread issuing its share of a stage's copies.
#pragma once
#include "w4a16_linear/silu.h"
#include "w4a16_linear/wgmma.h"
#include "w4a16_moe/atomic_add.h"

namespace kf {
namespace w4a16 {
namespace wgmma {

// Runs run(Width<w>) with w = product_width(W, rows) (wgmma_tiling.h).
template <int W, class Run>
KF_INLINE void with_product_width(int rows, Run&& run) {
  if constexpr (W > 16) {
    if (product_width(W, rows) < W) {
      with_product_width<W / 2>(rows, run);
      return;
    }
  }
  run(Width<W>{});
}

}  // namespace wgmma

// Whether a Rows policy gathers its rows of x (the MoE GEMMs): then the block's x row
// numbers are looked up once into shared memory; dense rows are plain arithmetic.
template <class Rows>
struct GathersRows {
  static constexpr bool value = true;
};
template <>
struct GathersRows<DenseRows> {
  static constexpr bool value = false;
};

// The kind's body over gathered rows (the MoE GEMMs' routed rows, rows.h), whose every
// thread issues its share of a stage's copies: the routed tiles keep the pipeline the
// dense kind had before its producer warpgroup (wgmma.h), because the MoE GEMMs' best
// tiles at large T are four warpgroups wide, and a fifth, producing one leaves them too
// few registers (bench/NOTES.md linear v48).
// SILU (gemm1's fused epilogue, silu.h): block b covers gate columns [b BN/2, (b + 1)
// BN/2) and their up partners N/2 further; a warp's fragment rows g and g + 8 are gate
// column 8 warp + g of the block and its up partner, so each thread holds both sums of
// its pairs and writes h = silu(gate) * up (y has N/2 columns).
template <class Rows, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int STAGES,
          bool SILU>
KF_INLINE void wgmma_gathered_body(const Rows& rows, const kf_linear_args& args) {
  using namespace wgmma;
  static_assert(GathersRows<Rows>::value, "gathered rows; dense rows take wgmma_body");
  static_assert(valid_gathered(N, K, G, BM, BN, BK, WARPS, STAGES, ASYM), "wgmma_tiling.h rules");
  static_assert(!SILU || !Rows::kReduce, "the fused SiLU epilogue stores h; it does not reduce");
  constexpr int kThreads = gathered_block_threads(WARPS);
  constexpr int XB = x_bytes(BM, BK), WB = w_bytes(BN, BK), SB = s_bytes(BN);
  constexpr int STAGE = stage_stride(BM, BN, BK, ASYM);
  constexpr int KT = K / BK, STEPS = BK / 16;  // stages of the block's K

  // The ring starts at the first 1024-byte boundary of the dynamic shared memory
  // (smem_bytes(...), passed at launch). Offsetting the shared array itself, not a
  // round-tripped integer address, keeps the pointer's address space known, so the
  // stage reads compile to shared loads (LDS) rather than generic ones.
  extern __shared__ u32x4 kf_wgmma_dynamic_shared[];
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(kf_wgmma_dynamic_shared));
  unsigned char* const smem = reinterpret_cast<unsigned char*>(kf_wgmma_dynamic_shared) + ((1024u - base % 1024u) % 1024u);
  KF_SHARED int x_row_of[BM];  // the x row of each tile row, -1 = none
  // ... and the y row and factor of each, read once per tile: through the Rows policy the
  // epilogue waited, row after row, on the sorted id and then on its routing weight (two
  // dependent global loads), a fifth of gemm2's stall samples at T = 4096.
  KF_SHARED int y_row_of[BM];
  KF_SHARED float scale_of[BM];

  const int tid = thread_id(), lane = tid % KF_WAVE, warp = tid / KF_WAVE;
  const int t = lane % 4, g = lane / 4;
  const int m0 = block_y() * BM;  // the tile's first row (the block walks all of K)
  // The block's shared-memory columns of this thread's fragment rows g and g + 8: weight
  // rows col, col + 1 side by side, or (SILU) a gate column and its up partner.
  const int c0 = SILU ? 8 * warp + g : 64 * (warp / 4) + 16 * (warp % 4) + 2 * g;
  const int c1 = SILU ? BN / 2 + c0 : c0 + 1;
  // The weight row (global column) of shared column c.
  const int n0 = block_x() * (SILU ? BN / 2 : BN);
  auto global_col = [&](int c) { return SILU && c >= BN / 2 ? N / 2 + n0 + (c - BN / 2) : n0 + c; };
  const uint32_t select_t = wg::nibble_select(t);

  const uint16_t* x = static_cast<const uint16_t*>(args.x);
  const uint32_t* qweight = static_cast<const uint32_t*>(args.qweight);
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const uint32_t* qzeros = static_cast<const uint32_t*>(args.qzeros);

  // Copies: each thread keeps one 16-byte column of the x tile (chunk c_x of rows r_x,
  // r_x + XR, ...) and of the weight words (column c_w of word rows kb_w, kb_w + WR, ...),
  // so a stage's addresses are this thread's fixed bases plus constants.
  // Three warpgroups (384 threads) copy 48 or 24 rows per pass: the last pass of a tile
  // is partial then, and its threads past the tile's rows copy nothing.
  constexpr int CH = BK / 8;                                     // 16-byte chunks of an x row
  constexpr int XR = kThreads / CH, XPASSES = (BM + XR - 1) / XR;  // rows per pass; XR % 8 == 0 keeps r % 8
  constexpr int WC = BN / 4, WR = kThreads / WC, WPASSES = CH / WR;
  static_assert(kThreads % CH == 0 && XR % 8 == 0, "x copies: passes of whole 8-row atoms");
  static_assert(kThreads % WC == 0 && CH % WR == 0, "weight copies: whole passes");
  static_assert(BN / 8 <= kThreads, "one scale chunk per thread at most");
  const int c_x = tid % CH, r_x = tid / CH;
  const int x_smem = wg::b_tile_offset_sw128(r_x, 8 * c_x, BM);
  const int c_w = tid % WC, kb_w = tid / WC;
  const int w_smem = (kb_w * BN + 4 * c_w) * 4;
  // This thread's weight copy base in the tile at n0.
  const uint32_t* const w_src = qweight + (size_t)kb_w * N + global_col(4 * c_w);
  // Gathered rows: 1 + the last tile row that holds a slot. Padding closes each expert's
  // run, so at large T about a third of a block_m 128 tile is padding (half the experts
  // spill into a mostly empty second block); the products then run only as wide as this.
  int width_rows = BM;  // uniform across the block
  {
    KF_SHARED int rows_held;
    if (tid == 0) rows_held = 0;
    barrier();
    int last = 0;
    for (int r = tid; r < BM; r += kThreads) {
      const bool live = rows.valid(m0 + r);
      x_row_of[r] = live ? rows.x_row(m0 + r) : -1;
      y_row_of[r] = live ? rows.y_row(m0 + r) : -1;
      if (live) last = r + 1;
    }
    last = __reduce_max_sync(0xFFFFFFFFu, last);
    if (lane == 0 && last > 0) atomicMax(&rows_held, last);
    barrier();
    width_rows = rows_held;
  }

  auto issue = [&](int kt) {  // kt: the stage number
    unsigned char* xs = smem + kt % STAGES * STAGE;
    unsigned char* ws = xs + XB;
    unsigned char* ss = ws + WB;
    unsigned char* zs = ss + SB;
    const int k0 = kt * BK, grp = k0 / G;
#pragma unroll
    for (int j = 0; j < XPASSES; ++j) {
      if (BM % XR != 0 && r_x + j * XR >= BM) break;
      const int row = x_row_of[r_x + j * XR];  // rows without a slot read as zeros
      cp_async16(xs + x_smem + j * XR * 128, row >= 0 ? x + (size_t)row * K + k0 + 8 * c_x : x, row >= 0);
    }
#pragma unroll
    for (int j = 0; j < WPASSES; ++j)
      cp_async16(ws + w_smem + j * WR * BN * 4, w_src + (size_t)(k0 / 8 + j * WR) * N, true);
    if (tid < BN / 8) cp_async16(ss + 16 * tid, scales + (size_t)grp * N + global_col(8 * tid), true);
    if constexpr (ASYM)
      if (tid < BN / 32) cp_async16(zs + 16 * tid, qzeros + (size_t)grp * (N / 8) + global_col(32 * tid) / 8, true);
  };

  // From here on the tile's products are W rows wide: the first rows holding slots
  // (with_product_width), reading the first W rows of the same x tile. Each width is a
  // whole copy of the pipeline with its own accumulators: chosen per product inside one
  // loop, the width made ptxas fence the accumulators around every product and serialise
  // them (bench/NOTES.md MoE v22).
  auto tile = [&](auto width) {
    constexpr int W = decltype(width)::value;
    static_assert(W <= BM, "products at most a tile wide");
    float acc[W / 2];
    wg::zero_operands(acc);

    // STAGES - 2 stages in flight ahead of the one being multiplied; the remaining slot is
    // the previous stage, which its products may still be reading.
    wg::issue_ahead<STAGES - 2>(KT, issue);
    // The factors' loads wait on the sorted ids, so they go out behind the first stages;
    // the main loop's barriers publish them before the epilogue reads them.
    for (int r = tid; r < BM; r += kThreads) scale_of[r] = y_row_of[r] >= 0 ? rows.scale(m0 + r) : 0.f;
    for (int kt = 0; kt < KT; ++kt) {
      cp_async_wait<STAGES - 3>();
      wg::fence_proxy_async();
      wg::wait<STEPS>();  // only the previous stage's products may still run
      barrier();          // stage kt has landed for every thread; stage kt - 2 is free

      const unsigned char* xs = smem + kt % STAGES * STAGE;
      const unsigned char* ws = xs + XB;
      const unsigned char* ss = ws + WB;
      const unsigned char* zs = ss + SB;
      // Words of word row kb for fragment rows g and g + 8 (one 8-byte load when adjacent).
      auto words = [&](int kb) -> u32x2 {
        if constexpr (SILU) {
          const uint32_t* w = reinterpret_cast<const uint32_t*>(ws) + kb * BN;
          return {w[c0], w[c1]};
        } else {
          return load8(ws + (kb * BN + c0) * 4);
        }
      };
      // The words of the first AHEAD products, read before the stage's copies are issued
      // (their latency hides behind them), then each product's words AHEAD products early.
      // Read where they are used, each product's shared loads sat behind the previous
      // product's wgmma fence and wait (memory clobbers), so every product waited for a
      // shared-memory round trip and then its unpacking chain; with products 64 or 128
      // tokens wide that latency, not the tensor core, set the pace (bench/NOTES.md v37).
      // Two ahead: a shared load's latency is about one product's unpacking, and 16-warp
      // blocks (128 registers a thread) have room for two products' words, not four.
      constexpr int AHEAD = STEPS < 2 ? STEPS : 2;
      u32x2 ahead_lo[AHEAD], ahead_hi[AHEAD];  // product s's words in slot s % AHEAD
#pragma unroll
      for (int s = 0; s < AHEAD; ++s) {
        ahead_lo[s] = words(2 * s);
        ahead_hi[s] = words(2 * s + 1);
      }
      if (kt + STAGES - 2 < KT) issue(kt + STAGES - 2);
      cp_async_commit();
      const StageConsts q = stage_consts<BF16, ASYM>(ss, zs, c0, c1);
#pragma unroll
      for (int s = 0; s < STEPS; ++s) {
        // The previous stage's product s still reads the registers `a` is about to
        // overwrite (the same registers every stage): it and the STEPS - 1 after it may run.
        wg::wait<STEPS - 1>();
        // Words of k 16s .. 16s + 7 and 16s + 8 .. 16s + 15; the slot takes product s + AHEAD's.
        const u32x2 lo = ahead_lo[s % AHEAD], hi = ahead_hi[s % AHEAD];
        if (s + AHEAD < STEPS) {
          ahead_lo[s % AHEAD] = words(2 * (s + AHEAD));
          ahead_hi[s % AHEAD] = words(2 * (s + AHEAD) + 1);
        }
        uint32_t a[4];
        a_fragment<BF16>(a, lo, hi, select_t, q);
        wg::fence();
        wg::mma_rs<W, BF16>(acc, a, wg::b_desc_sw128(xs, 16 * s, BM));
        wg::commit();
      }
    }
    wg::wait<0>();
    wg::fence_operands(acc);

    // Element 4j + e: fragment row g + 8 (e / 2) (column c0 or c1), tile row 8j + 2t + e % 2
    // (kf_wgmma_layout.h).
    uint16_t* y = static_cast<uint16_t*>(args.y);
#pragma unroll
    for (int j = 0; j < W / 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 8 * j + 2 * t + h;
        const int y_row = y_row_of[r];
        if (y_row < 0) continue;
        const float f = scale_of[r];
        const float v0 = acc[4 * j + h], v1 = acc[4 * j + 2 + h];
        if constexpr (SILU) {
          y[(size_t)y_row * (N / 2) + n0 + c0] = static_cast<uint16_t>(Act16<BF16>::from_f32(silu_mul(v0, v1) * f));
        } else if constexpr (Rows::kReduce) {  // as Rows::add_pair, from the cached row and factor
          moe::atomic_add_packed<BF16>(reinterpret_cast<uint32_t*>(y + (size_t)y_row * N + n0 + c0),
                                       Act16<BF16>::pack2(v0 * f, v1 * f));
        } else {
          *reinterpret_cast<uint32_t*>(y + (size_t)y_row * N + n0 + c0) = Act16<BF16>::pack2(v0 * f, v1 * f);
        }
      }
  };
  with_product_width<BM>(width_rows, tile);
}

}  // namespace w4a16
}  // namespace kf
