// mxfp4_moe GEMM (args.h): gather rows by routing, multiply by one expert's MXFP4
// weight on the arch's 16x16x16 matrix instruction, add the bias, and scatter: gemm1
// (gate_up, optionally with gpt-oss's clamped SwiGLU fused) or gemm2 (down, scaled by
// the routing weight).
//
// A block covers block_m sorted slots (one expert's run: moe_align pads every run to
// whole blocks) and block_n output columns. K is walked in block_k tiles through a
// ring of STAGES shared-memory stages filled by 16-byte asynchronous copies: the
// gathered x rows, the raw weight bytes (block_n rows of block_k / 2 bytes) and the
// tile's e8m0 scale rows. Each tile's weights are then decoded once into a 16-bit B tile
// (each 16-byte chunk of a weight row is 32 values under one scale), from which the
// warps load their fragments like any 16-bit operand.
// The epilogue stages the accumulators through shared memory, block_m / SUBTILES rows
// at a time, so every output row is written by consecutive threads (and the SwiGLU pairs,
// adjacent columns, meet in one thread whatever the arch's fragment layout).
#pragma once
#include "kf_portability.h"
#include "mxfp4_moe/args.h"
#include "mxfp4_moe/tiling.h"

namespace kf {
namespace mxfp4 {

// e2m1 code (low 4 bits) -> float: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives,
// built as bf16 bits (exact) without a table.
KF_INLINE float e2m1(uint32_t code) {
  const uint32_t v = code & 7u;
  const uint32_t mag = v >= 2u ? 0x3F00u + v * 0x40u : (v ? 0x3F00u : 0u);
  return bf16_to_f32(mag | (code & 8u) << 12);
}
// e8m0 -> 2^(s - 127) exactly (s = 0 is the fp32 subnormal 2^-127); 0xFF is NaN.
KF_INLINE float e8m0(uint32_t s) {
  return s == 0xFFu ? bits_as_float(0x7FC00000u) : s == 0u ? bits_as_float(0x00400000u) : bits_as_float(s << 23);
}

// gpt-oss's clamped SwiGLU (tuner/mxfp4_reference.h).
KF_INLINE float swiglu(float gate, float up, float alpha, float limit) {
  const float g = gate < limit ? gate : limit;
  const float u = up < -limit ? -limit : (up > limit ? limit : up);
  return (u + 1.f) * g / (1.f + fast_exp(-alpha * g));
}

template <int GEMM, int N, int K, bool SWIGLU, int BM, int BN, int BK, int WARPS, int STAGES, int SUBTILES>
KF_INLINE void mxfp4_moe_gemm(const kf_mxfp4_moe_gemm_args& a) {
  static_assert(GEMM == 1 || GEMM == 2, "gemm1 (gate_up) or gemm2 (down)");
  static_assert(!SWIGLU || GEMM == 1, "the SwiGLU epilogue is gemm1's");
  static_assert(config_valid(N, K, SWIGLU, BM, BN, BK, WARPS, STAGES, SUBTILES), "tiling.h rules");
  constexpr int kThreads = WARPS * KF_WAVE;
  constexpr int WM = warps_m(BM, BN, WARPS), WN = WARPS / WM;
  constexpr int TM = BM / WM / 16, TN = BN / WN / 16;  // atoms per warp
  constexpr int LDA = BK + kSmemPad, LDW = BK + kSmemPad;
  constexpr int A_BYTES = BM * LDA * 2, RAW_BYTES = BN * BK / 2, SC_BYTES = BK / kBlock * BN;
  constexpr int STAGE = A_BYTES + RAW_BYTES + SC_BYTES;
  constexpr int ROWS = BM / SUBTILES, LDC = BN + 4;
  constexpr int SMEM = smem_bytes(BM, BN, BK, STAGES, SUBTILES);
  constexpr int KT = K / BK;
  static_assert(STAGES * STAGE + BN * LDW * 2 <= SMEM - BM * 4 - 16 && ROWS * LDC * 4 <= SMEM - BM * 4 - 16,
                "tiling.h counts the shared memory");
  static_assert(SMEM <= KF_MAX_STATIC_SHARED, "static shared memory of the target");

  alignas(16) KF_SHARED unsigned char smem[SMEM];
  int* slot_of = reinterpret_cast<int*>(smem + SMEM - BM * 4 - 16);  // the block's sorted slots
  uint16_t* ws = reinterpret_cast<uint16_t*>(smem + STAGES * STAGE);  // decoded B tile [BN][LDW]
  float* cs = reinterpret_cast<float*>(smem);                         // epilogue rows [ROWS][LDC]

  const int tid = thread_id(), lane = tid % KF_WAVE, warp = tid / KF_WAVE;
  const int wm = warp / WN, wn = warp % WN;
  const int n0 = block_x() * BN, m0 = block_y() * BM;
  // Both route loads issued together (expert_ids is allocated to the capacity, so an
  // entry past num_padded is safe to read).
  const int num_padded = *a.num_padded;
  const int e = a.expert_ids[block_y()];
  if (m0 >= num_padded || e < 0 || e >= a.experts) return;
  const int slots = a.t * a.top_k;
  for (int r = tid; r < BM; r += kThreads) slot_of[r] = a.sorted_ids[m0 + r];
  barrier();

  const uint16_t* x = static_cast<const uint16_t*>(a.x);
  const uint8_t* wexp = a.weight + (size_t)e * N * (K / 2);
  const uint8_t* sexp = a.scales + (size_t)e * (K / kBlock) * N;
  auto issue = [&](int kt, int st) {
    unsigned char* base = smem + st * STAGE;
    uint16_t* as = reinterpret_cast<uint16_t*>(base);
    unsigned char* raw = base + A_BYTES;
    unsigned char* sc = raw + RAW_BYTES;
    const int k0 = kt * BK;
    constexpr int A_CHUNKS = BK / 8, W_CHUNKS = BK / 32, S_CHUNKS = BN / 16;
    for (int i = tid; i < BM * A_CHUNKS; i += kThreads) {
      const int r = i / A_CHUNKS, c = i % A_CHUNKS;
      const int s = slot_of[r];
      const bool live = s < slots;
      const int row = live ? (GEMM == 1 ? s / a.top_k : s) : 0;
      cp_async16(as + r * LDA + c * 8, x + (size_t)row * K + k0 + c * 8, live);
    }
    for (int i = tid; i < BN * W_CHUNKS; i += kThreads) {
      const int r = i / W_CHUNKS, c = i % W_CHUNKS;
      cp_async16(raw + r * (BK / 2) + c * 16, wexp + (size_t)(n0 + r) * (K / 2) + k0 / 2 + c * 16, true);
    }
    for (int i = tid; i < BK / kBlock * S_CHUNKS; i += kThreads) {
      const int r = i / S_CHUNKS, c = i % S_CHUNKS;
      cp_async16(sc + r * BN + c * 16, sexp + (size_t)(k0 / kBlock + r) * N + n0 + c * 16, true);
    }
  };

  FragC acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
#pragma unroll
      for (int v = 0; v < MmaLayout::kCElems; ++v) acc[i][j].v[v] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) issue(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    if (kt + STAGES - 1 < KT) issue(kt + STAGES - 1, (kt + STAGES - 1) % STAGES);
    cp_async_commit();
    cp_async_wait<STAGES - 1>();
    barrier();
    const unsigned char* base = smem + (kt % STAGES) * STAGE;
    const uint16_t* as = reinterpret_cast<const uint16_t*>(base);
    const unsigned char* raw = base + A_BYTES;
    const unsigned char* sc = raw + RAW_BYTES;
    // Decode: one 16-byte chunk = 32 consecutive k of one weight row under one scale.
    for (int i = tid; i < BN * (BK / 32); i += kThreads) {
      const int r = i / (BK / 32), c = i % (BK / 32);
      const u32x4 q = load16(raw + r * (BK / 2) + c * 16);
      const float scale = e8m0(sc[c * BN + r]);
      const uint32_t words[4] = {q.x, q.y, q.z, q.w};
      uint32_t out[16];
#pragma unroll
      for (int w = 0; w < 4; ++w)
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const uint32_t byte = words[w] >> (8 * b) & 0xFFu;
          out[w * 4 + b] = pack2_bf16(e2m1(byte) * scale, e2m1(byte >> 4) * scale);
        }
      uint16_t* dst = ws + r * LDW + c * 32;
#pragma unroll
      for (int v = 0; v < 4; ++v) store16(dst + v * 8, u32x4{out[4 * v], out[4 * v + 1], out[4 * v + 2], out[4 * v + 3]});
    }
    barrier();
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      FragA fa[TM];
      FragB fb[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) load_frag_a(fa[i], as + (wm * TM + i) * 16 * LDA + kk * 16, LDA, lane);
#pragma unroll
      for (int j = 0; j < TN; ++j) load_frag_b(fb[j], ws + (wn * TN + j) * 16 * LDW + kk * 16, LDW, lane);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) mma16<true>(acc[i][j], fa[i], fb[j]);
    }
    barrier();  // the stage and the B tile are rewritten next
  }

  // ---- epilogue: ROWS rows of accumulators at a time through shared memory
  uint16_t* y = static_cast<uint16_t*>(a.y);
  const float* bias = a.bias ? a.bias + (size_t)e * N + n0 : nullptr;
  for (int p = 0; p < SUBTILES; ++p) {
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j)
#pragma unroll
        for (int v = 0; v < MmaLayout::kCElems; ++v) {
          const layout::RC rc = MmaLayout::c_elem(lane, v);
          const int row = (wm * TM + i) * 16 + rc.row - p * ROWS;
          if (row >= 0 && row < ROWS) cs[row * LDC + (wn * TN + j) * 16 + rc.col] = acc[i][j].v[v];
        }
    barrier();
    if constexpr (SWIGLU) {
      // Two outputs per thread step: columns 4c .. 4c + 3 = (gate, up) x 2.
      for (int i = tid; i < ROWS * (BN / 4); i += kThreads) {
        const int r = i / (BN / 4), c = i % (BN / 4);
        const int s = slot_of[p * ROWS + r];
        if (s >= slots) continue;
        float v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) v[u] = cs[r * LDC + 4 * c + u] + (bias ? bias[4 * c + u] : 0.f);
        const uint32_t h = pack2_bf16(swiglu(v[0], v[1], a.swiglu_alpha, a.swiglu_limit),
                                      swiglu(v[2], v[3], a.swiglu_alpha, a.swiglu_limit));
        *reinterpret_cast<uint32_t*>(y + (size_t)s * (N / 2) + n0 / 2 + 2 * c) = h;
      }
    } else {
      for (int i = tid; i < ROWS * (BN / 2); i += kThreads) {
        const int r = i / (BN / 2), c = i % (BN / 2);
        const int s = slot_of[p * ROWS + r];
        if (s >= slots) continue;
        const float f = GEMM == 2 ? a.topk_weights[s] : 1.f;
        const float v0 = cs[r * LDC + 2 * c] + (bias ? bias[2 * c] : 0.f);
        const float v1 = cs[r * LDC + 2 * c + 1] + (bias ? bias[2 * c + 1] : 0.f);
        *reinterpret_cast<uint32_t*>(y + (size_t)s * N + n0 + 2 * c) = pack2_bf16(v0 * f, v1 * f);
      }
    }
    barrier();
  }
}

}  // namespace mxfp4
}  // namespace kf
