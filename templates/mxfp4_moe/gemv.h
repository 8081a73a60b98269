// mxfp4_moe decode kind (args.h): the same gather-matmul-scatter as gemm.h on CUDA cores,
// for few tokens per expert (T * top_k / E up to a handful), where gemm.h spends most of
// its instructions decoding weights into shared memory for 16-row matrix products with
// one real row.
//
// Same grid and row blocks as gemm.h (tiling.h gemm_grid): a block covers block_m sorted
// slots of one expert and block_n weight rows (output columns). The block's x rows are
// staged once in shared memory; then TK = threads / block_n consecutive threads stream
// one weight row: each thread takes 16-byte chunks (32 values under one e8m0 scale) at a
// stride of TK chunks, so a row's chunks are read contiguously by neighbouring threads.
// A chunk's 32 products per slot are summed exactly-scaled in fp32 (e2m1 values are exact
// floats) and multiplied by the chunk's power-of-two scale once. The TK partial sums of a
// row meet by wave shuffles; SwiGLU pairs (weight rows 2i, 2i + 1) are neighbouring thread
// groups, one more shuffle apart.
#pragma once
#include "kf_portability.h"
#include "mxfp4_moe/args.h"
#include "mxfp4_moe/decode_tiling.h"
#include "mxfp4_moe/gemm.h"  // e2m1, e8m0, swiglu
#if KF_NVIDIA
#include <cooperative_groups.h>
#endif

namespace kf {
namespace mxfp4 {

// The two fp32 values of the e2m1 codes in the low and high nibble of `byte`.
KF_INLINE void e2m1_pair(uint32_t byte, float& lo, float& hi) {
#if KF_NVIDIA
  // Byte-permute tables of the bf16 bits of the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6:
  // low bytes and high bytes, indexed by the 3 magnitude bits (the selector's fourth
  // bit would replicate the sign, so it is masked off).
  const uint32_t sel = (byte & 0x7u) | (byte & 0x70u) >> 4 << 4;
  const uint32_t lo_bytes = __byte_perm(0xC0800000u, 0xC0804000u, sel);
  const uint32_t hi_bytes = __byte_perm(0x3F3F3F00u, 0x40404040u, sel);
  const uint32_t bits_lo = (lo_bytes & 0xFFu) << 16 | (hi_bytes & 0xFFu) << 24 | (byte & 0x8u) << 28;
  const uint32_t bits_hi = (lo_bytes & 0xFF00u) << 8 | (hi_bytes & 0xFF00u) << 16 | (byte & 0x80u) << 24;
  lo = bits_as_float(bits_lo);
  hi = bits_as_float(bits_hi);
#else
  lo = e2m1(byte);
  hi = e2m1(byte >> 4);
#endif
}

// SPLIT_K > 1 (sm_90a; the kernel is compiled with cluster dims (1, 1, SPLIT_K) and
// launched with grid z = SPLIT_K): this block takes chunks [z CHUNKS / SPLIT_K, ...) of
// every row, stages only that K slice of x, and block 0 of the cluster adds the others'
// partial sums to its own in rank order before the epilogue (decode_tiling.h).
template <int GEMM, int N, int K, bool SWIGLU, int BM, int BN, int WARPS, int SPLIT_K = 1>
KF_INLINE void mxfp4_moe_gemv(const kf_mxfp4_moe_gemm_args& a) {
  static_assert(!SWIGLU || GEMM == 1, "the SwiGLU epilogue is gemm1's");
  constexpr int kThreads = WARPS * KF_WAVE;
  static_assert(decode_config_valid(N, K, SWIGLU, BM, BN, WARPS, KF_WAVE), "decode_tiling.h rules");
  static_assert(decode_split_valid(K, SPLIT_K), "split-K: whole chunks of the K slice");
#if !KF_NVIDIA
  static_assert(SPLIT_K == 1, "split-K sums through a thread-block cluster (sm_90a)");
#endif
  constexpr int TK = kThreads / BN;  // threads per weight row
  constexpr int CHUNKS = K / kBlock / SPLIT_K;  // 16-byte chunks of a row in this block's K slice
  constexpr int KS = K / SPLIT_K;               // the slice's k
  static_assert(decode_smem_bytes(BM, BN, K, SPLIT_K) <= KF_MAX_STATIC_SHARED, "static shared memory of the target");

  alignas(16) KF_SHARED uint16_t xs[BM * KS];
  KF_SHARED int slot_of[BM];
  const int k0 = SPLIT_K > 1 ? block_z() * KS : 0;  // this block's first k
  const int tid = thread_id();
  const int n0 = block_x() * BN, m0 = block_y() * BM;
  const int num_padded = *a.num_padded;
  const int e = a.expert_ids[block_y()];
  if (m0 >= num_padded || e < 0 || e >= a.experts) return;
  const int slots = a.t * a.top_k;
  if (tid < BM) slot_of[tid] = a.sorted_ids[m0 + tid];
  barrier();
  // Stage the block's x rows (16-byte pieces); padding rows are zeros.
  const uint16_t* x = static_cast<const uint16_t*>(a.x);
  for (int i = tid; i < BM * (KS / 8); i += kThreads) {
    const int r = i / (KS / 8), c = i % (KS / 8);
    const int s = slot_of[r];
    const int row = s < slots ? (GEMM == 1 ? s / a.top_k : s) : -1;
    store16(xs + r * KS + c * 8, row >= 0 ? load16(x + (size_t)row * K + k0 + c * 8) : u32x4{0, 0, 0, 0});
  }
  barrier();

  const int wrow = tid / TK, tk = tid % TK;  // this thread's weight row in the block, lane in it
  const int n = n0 + wrow;
  const uint8_t* wr = a.weight + ((size_t)e * N + n) * (K / 2) + k0 / 2;
  const uint8_t* sc = a.scales + ((size_t)e * (K / kBlock) + k0 / kBlock) * N + n;
  float acc[BM];
#pragma unroll
  for (int r = 0; r < BM; ++r) acc[r] = 0.f;
  for (int c = tk; c < CHUNKS; c += TK) {
    const u32x4 q = load16(wr + c * 16);
    const float scale = e8m0(sc[(size_t)c * N]);
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
    float part[BM];
#pragma unroll
    for (int r = 0; r < BM; ++r) part[r] = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      float v[8];
#pragma unroll
      for (int b = 0; b < 4; ++b) e2m1_pair(words[w] >> (8 * b) & 0xFFu, v[2 * b], v[2 * b + 1]);
#pragma unroll
      for (int r = 0; r < BM; ++r) {
        const u32x4 xv = load16(xs + r * KS + c * 32 + w * 8);
        const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          part[r] += bits_as_float(xw[j] << 16) * v[2 * j];
          part[r] += bits_as_float(xw[j] & 0xFFFF0000u) * v[2 * j + 1];
        }
      }
    }
#pragma unroll
    for (int r = 0; r < BM; ++r) acc[r] += part[r] * scale;
  }
  // The row's TK partial sums (neighbouring lanes of one wave).
#pragma unroll
  for (int r = 0; r < BM; ++r)
#pragma unroll
    for (int m = TK / 2; m > 0; m /= 2) acc[r] += shuffle_xor(acc[r], m);
#if KF_NVIDIA
  if constexpr (SPLIT_K > 1) {
    // Every block's partial sums into its shared memory; block 0 of the cluster adds the
    // others' in rank order; the second cluster barrier keeps them alive until it has.
    KF_SHARED float part[BM * BN];
    namespace cg = cooperative_groups;
    const cg::cluster_group cluster = cg::this_cluster();
    if (tk == 0)
#pragma unroll
      for (int r = 0; r < BM; ++r) part[r * BN + wrow] = acc[r];
    cluster.sync();
    const unsigned rank = cluster.block_rank();
    if (rank == 0 && tk == 0)
      for (int q = 1; q < SPLIT_K; ++q) {
        const float* other = cluster.map_shared_rank(part, q);
#pragma unroll
        for (int r = 0; r < BM; ++r) acc[r] += other[r * BN + wrow];
      }
    cluster.sync();
    if (rank != 0) return;
  }
#endif

  uint16_t* y = static_cast<uint16_t*>(a.y);
  const float bias = a.bias ? a.bias[(size_t)e * N + n] : 0.f;
  if constexpr (SWIGLU) {
    // Rows 2i (gate) and 2i + 1 (up) are thread groups TK lanes apart.
#pragma unroll
    for (int r = 0; r < BM; ++r) {
      const float mine = acc[r] + bias;
      const float other = shuffle_xor(mine, TK);
      const int s = slot_of[r];
      if (tk == 0 && n % 2 == 0 && s < slots)
        y[(size_t)s * (N / 2) + n / 2] =
            static_cast<uint16_t>(f32_to_bf16(swiglu(mine, other, a.swiglu_alpha, a.swiglu_limit)));
    }
  } else {
#pragma unroll
    for (int r = 0; r < BM; ++r) {
      const int s = slot_of[r];
      if (tk == 0 && s < slots) {
        const float f = GEMM == 2 ? a.topk_weights[s] : 1.f;
        y[(size_t)s * N + n] = static_cast<uint16_t>(f32_to_bf16((acc[r] + bias) * f));
      }
    }
  }
}

}  // namespace mxfp4
}  // namespace kf
