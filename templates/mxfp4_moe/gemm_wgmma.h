// mxfp4_moe `wgmma` kind (sm_90a only): the gather-matmul-scatter GEMMs of args.h on
// Hopper's warpgroup MMA (kf_wgmma.h), for the prefill loads where the mma kind
// (gemm.h) is bound by decoding every weight tile into shared memory.
//
// wgmma takes A from registers and B from shared memory. The MXFP4 weights are decoded
// in registers anyway, so they are A (64 weight rows per warpgroup) and the gathered x
// rows are B (block_m sorted slots, the instruction's N); the product is h^T, stored
// transposed. Fragment rows g and g + 8 of a warp are weight rows 2p and 2p + 1 of the
// block, so a thread holds adjacent output columns: one packed store per slot, and with
// the fused SwiGLU (gate and up interleaved, gpt-oss's layout) both halves of a pair.
//
// K is walked in block_k stages through a ring of STAGES slots filled by 16-byte
// cp.async copies: x 128-byte swizzled for wgmma, the raw weight bytes in row pairs
// (wgmma_tiling.h: raw_chunk_offset) and the stage's e8m0 scale rows. A byte of two
// e2m1 codes is exactly one A register's k pair: one byte-permute, a mask and two shifts
// make the pair's bf16 bits scaled by 2^-126 (exact, the subnormal code too), then two
// packed multiplies, by 2^126 and by the 32-value block's scale, give the weights
// exactly as the reference rounds them (powers of two; bf16 keeps subnormals).
// Products run asynchronously, as in the w4a16 wgmma kind: a stage's are issued back to
// back and may still run while the next stage is decoded; before the A registers are
// rebuilt, the product that last read them must be done (wait per step).
#pragma once
#include "kf_portability.h"
#include "kf_wgmma.h"
#include "mxfp4_moe/args.h"
#include "mxfp4_moe/gemm.h"  // swiglu()
#include "mxfp4_moe/wgmma_tiling.h"

namespace kf {
namespace mxfp4 {

// Weights of k pair (2t, 2t + 1) of e2m1 word w (byte t) times the block's scale.
KF_INLINE uint32_t decode_pair(uint32_t w, uint32_t select_t, uint32_t scale2) {
  const uint32_t nibbles = __byte_perm(w, w >> 4, select_t) & 0x000F000Fu;  // lo: byte t, hi: byte t >> 4
  uint32_t v = wgmma::e2m1_pair_scaled(nibbles);
  constexpr uint32_t kUp = wgmma::kTwoPow126 * 0x10001u;
  __nv_bfloat162 r = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&v), *reinterpret_cast<const __nv_bfloat162*>(&kUp));
  r = __hmul2(r, *reinterpret_cast<const __nv_bfloat162*>(&scale2));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// One block_m x block_n tile: sorted-slot block m_blk (one expert's run), weight rows
// n_blk * BN .. + BN of expert e.
template <int GEMM, int N, int K, bool SWIGLU, int BM, int BN, int BK, int WARPS, int STAGES>
KF_INLINE void mxfp4_wgmma_tile(const kf_mxfp4_moe_gemm_args& a, int n_blk, int m_blk, int e) {
  using namespace wgmma;
  static_assert(GEMM == 1 || GEMM == 2, "gemm1 (gate_up) or gemm2 (down)");
  static_assert(!SWIGLU || GEMM == 1, "the SwiGLU epilogue is gemm1's");
  static_assert(config_valid(N, K, SWIGLU, BM, BN, BK, WARPS, STAGES), "wgmma_tiling.h rules");
  constexpr int kThreads = WARPS * KF_WAVE;
  constexpr int XB = x_bytes(BM, BK), WB = w_bytes(BN, BK);
  constexpr int STAGE = stage_stride(BM, BN, BK);
  constexpr int KT = K / BK, STEPS = BK / 16, CHUNKS = BK / 32;

  // The ring starts at the first 1024-byte boundary of the dynamic shared memory
  // (smem_bytes(...), passed at launch). Offsetting the shared array itself, not a
  // round-tripped integer address, keeps the pointer's address space known, so the
  // reads below compile to shared loads (LDS) rather than generic ones.
  extern __shared__ u32x4 kf_wgmma_dynamic_shared[];
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(kf_wgmma_dynamic_shared));
  unsigned char* const smem = reinterpret_cast<unsigned char*>(kf_wgmma_dynamic_shared) + ((1024u - base % 1024u) % 1024u);
  KF_SHARED int slot_of[BM];   // the block's sorted slots, -1 = padding
  KF_SHARED int x_row_of[BM];  // the x row each slot reads, -1 = none

  const int tid = thread_id(), lane = tid % KF_WAVE, warp = tid / KF_WAVE;
  const int t = lane % 4, g = lane / 4;
  const int n0 = n_blk * BN, m0 = m_blk * BM;
  const int slots = a.t * a.top_k;
  for (int r = tid; r < BM; r += kThreads) {
    const int s = a.sorted_ids[m0 + r];
    const bool live = s >= 0 && s < slots;
    slot_of[r] = live ? s : -1;
    x_row_of[r] = live ? (GEMM == 1 ? s / a.top_k : s) : -1;
  }
  // This thread's weight rows c0 and c0 + 1 (fragment rows g and g + 8).
  const int c0 = 64 * (warp / 4) + 16 * (warp % 4) + 2 * g;
  const uint32_t select_t = wg::nibble_select(t);

  const uint16_t* x = static_cast<const uint16_t*>(a.x);
  const uint8_t* wexp = a.weight + (size_t)e * N * (K / 2);
  const uint8_t* sexp = a.scales + (size_t)e * (K / kBlock) * N;

  // Copies from fixed per-thread bases: one 16-byte column of the x tile (chunk c_x of
  // rows r_x, r_x + XR, ...) and one of the weight rows (chunk c_w of rows r_w, r_w + WR,
  // ...); passes keep the swizzles' patterns (XR % 8, WR % 16 rows). Three warpgroups
  // cover the x tile in passes of 48 or 96 rows, the last one partly.
  constexpr int CH = BK / 8, XR = kThreads / CH, XPASSES = (BM + XR - 1) / XR;
  constexpr int WR = kThreads / CHUNKS, WPASSES = BN / WR;
  constexpr int S_COPIES = BK / kBlock * (BN / 16);
  static_assert(kThreads % CH == 0 && XR % 8 == 0, "x copies: passes of whole 8-row atoms");
  static_assert(kThreads % CHUNKS == 0 && WR % 16 == 0 && BN % WR == 0, "weight copies: whole passes of 8 pairs");
  static_assert(S_COPIES <= kThreads, "one scale copy per thread at most");
  const int c_x = tid % CH, r_x = tid / CH;
  const int x_smem = wg::b_tile_offset_sw128(r_x, 8 * c_x, BM);
  const int c_w = tid % CHUNKS, r_w = tid / CHUNKS;
  const int w_smem = raw_chunk_offset(r_w, c_w, BK);
  const uint8_t* w_src = wexp + (size_t)(n0 + r_w) * (K / 2) + 16 * c_w;
  const int r_s = tid / (BN / 16), c_s = tid % (BN / 16);
  barrier();  // the row tables

  auto issue = [&](int kt) {
    unsigned char* xs = smem + kt % STAGES * STAGE;
    unsigned char* ws = xs + XB;
    unsigned char* ss = ws + WB;
    const int k0 = kt * BK;
#pragma unroll
    for (int j = 0; j < XPASSES; ++j) {
      if (BM % XR != 0 && r_x + j * XR >= BM) break;
      const int row = x_row_of[r_x + j * XR];  // padding rows read as zeros
      cp_async16(xs + x_smem + j * XR * 128, row >= 0 ? x + (size_t)row * K + k0 + 8 * c_x : x, row >= 0);
    }
#pragma unroll
    for (int j = 0; j < WPASSES; ++j)
      cp_async16(ws + w_smem + j * WR * (BK / 2), w_src + (size_t)j * WR * (K / 2) + k0 / 2, true);
    if (tid < S_COPIES) cp_async16(ss + r_s * BN + 16 * c_s, sexp + (size_t)(k0 / kBlock + r_s) * N + n0 + 16 * c_s, true);
  };

  float acc[BM / 2];
  wg::zero_operands(acc);

  // STAGES - 2 stages in flight ahead of the one being multiplied; the remaining slot is
  // the previous stage, which its products may still be reading.
  wg::issue_ahead<STAGES - 2>(KT, issue);
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 3>();
    wg::fence_proxy_async();
    barrier();  // stage kt has landed for every thread; stage kt - 2 is free
    if (kt + STAGES - 2 < KT) issue(kt + STAGES - 2);
    cp_async_commit();

    const unsigned char* xs = smem + kt % STAGES * STAGE;
    const unsigned char* ws = xs + XB;
    const unsigned char* ss = ws + WB;
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j) {
      // Rows c0, c0 + 1: 32 k each (two k16 steps), and their blocks' scales.
      const u32x4 q0 = load16(ws + raw_chunk_offset(c0, j, BK));
      const u32x4 q1 = load16(ws + raw_chunk_offset(c0 + 1, j, BK));
      const uint32_t s2 = *reinterpret_cast<const uint16_t*>(ss + j * BN + c0);
      const uint32_t scale0 = e8m0_bf16(s2 & 0xFFu) * 0x10001u, scale1 = e8m0_bf16(s2 >> 8) * 0x10001u;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int s = 2 * j + h;
        // The previous stage's product s still reads the registers `a` is about to
        // overwrite: it and the STEPS - 1 after it may run.
        wg::wait<STEPS - 1>();
        // Bytes 0-3 of the step are k 0-7 (word lo), bytes 4-7 k 8-15 (word hi).
        const uint32_t lo0 = h ? q0.z : q0.x, hi0 = h ? q0.w : q0.y;
        const uint32_t lo1 = h ? q1.z : q1.x, hi1 = h ? q1.w : q1.y;
        const uint32_t areg[4] = {decode_pair(lo0, select_t, scale0), decode_pair(lo1, select_t, scale1),
                                  decode_pair(hi0, select_t, scale0), decode_pair(hi1, select_t, scale1)};
        wg::fence();
        wg::mma_rs<BM, true>(acc, areg, wg::b_desc_sw128(xs, 16 * s, BM));
        wg::commit();
      }
    }
  }
  wg::wait<0>();
  wg::fence_operands(acc);

  // Element 4j + e: weight row c0 + e / 2, tile column (slot) 8j + 2t + e % 2
  // (kf_wgmma_layout.h).
  uint16_t* y = static_cast<uint16_t*>(a.y);
  const float b0 = a.bias ? a.bias[(size_t)e * N + n0 + c0] : 0.f;
  const float b1 = a.bias ? a.bias[(size_t)e * N + n0 + c0 + 1] : 0.f;
#pragma unroll
  for (int j = 0; j < BM / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int s = slot_of[8 * j + 2 * t + h];
      if (s < 0) continue;
      const float v0 = acc[4 * j + h] + b0, v1 = acc[4 * j + 2 + h] + b1;
      if constexpr (SWIGLU) {
        y[(size_t)s * (N / 2) + (n0 + c0) / 2] =
            static_cast<uint16_t>(f32_to_bf16(swiglu(v0, v1, a.swiglu_alpha, a.swiglu_limit)));
      } else {
        const float f = GEMM == 2 ? a.topk_weights[s] : 1.f;
        *reinterpret_cast<uint32_t*>(y + (size_t)s * N + n0 + c0) = pack2_bf16(v0 * f, v1 * f);
      }
    }
}

// PERSISTENT: the launch has a fixed number of blocks (wgmma_tiling.h: persistent_blocks,
// a few per SM), each walking the tiles of the routed blocks in turn (weight tiles of one
// slot block consecutive, so a wave shares its gathered x rows): no blocks launched for
// the sorted capacity's unused tail. Otherwise the grid is the mma kind's, one tile per
// block.
template <int GEMM, int N, int K, bool SWIGLU, int BM, int BN, int BK, int WARPS, int STAGES, bool PERSISTENT>
KF_INLINE void mxfp4_moe_gemm_wgmma(const kf_mxfp4_moe_gemm_args& a) {
  const int num_padded = *a.num_padded;
  if constexpr (PERSISTENT) {
    constexpr int kTilesN = N / BN;
    const int tiles = num_padded / BM * kTilesN;
    for (int tile = block_x(); tile < tiles; tile += gridDim.x) {  // sm_90a only: gridDim is CUDA's
      const int m_blk = tile / kTilesN, e = a.expert_ids[m_blk];
      if (e < 0 || e >= a.experts) continue;  // uniform per block
      mxfp4_wgmma_tile<GEMM, N, K, SWIGLU, BM, BN, BK, WARPS, STAGES>(a, tile % kTilesN, m_blk, e);
      barrier();  // the next tile rewrites the row tables the epilogue just read
    }
  } else {
    const int e = a.expert_ids[block_y()];
    if (block_y() * BM >= num_padded || e < 0 || e >= a.experts) return;  // uniform per block: before any barrier
    mxfp4_wgmma_tile<GEMM, N, K, SWIGLU, BM, BN, BK, WARPS, STAGES>(a, block_x(), block_y(), e);
  }
}

}  // namespace mxfp4
}  // namespace kf
