// w4a16_moe GEMM kernels: the w4a16_linear decode and prefill bodies over rows gathered
// by routing (args.h). Block row b of the grid covers sorted_ids[b * BM, (b + 1) * BM),
// all slots of one expert (moe_align pads each expert's run to whole blocks), so the
// block multiplies by that expert's weight alone:
//   gemm1: x row of slot s = token s / top_k; y row = s
//   gemm2: x row = s; y row = s, scaled by topk_weights[s]
// Padding entries (id T * top_k) are computed from row 0 and never stored; blocks past
// num_padded return before touching memory.
// SILU (gemm1 only, config suffix _silu): the epilogue writes h = silu(gate) * up
// (w4a16_linear/silu.h), so y is [T * top_k, N/2] and moe_silu_mul is not needed.
// RED (gemm2 only, config suffix _red): the epilogue adds each slot's scaled row into its
// token's row, y [T, N] (zeroed by the layer's moe_align), with packed 16-bit atomics
// (atomic_add.h), so moe_sum is not needed.
#pragma once
#include "kf_portability.h"
#include "w4a16_linear/decode.h"
#include "w4a16_linear/prefill.h"
#include "w4a16_moe/args.h"
#include "w4a16_moe/atomic_add.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace moe {

template <int GEMM, bool RED = false>
struct RoutedRows {
  static_assert(GEMM == 1 || GEMM == 2, "gemm1 (gate_up) or gemm2 (down)");
  static_assert(!RED || GEMM == 2, "the top_k reduction is gemm2's");
  static constexpr bool kReduce = RED;  // y row = the slot's token, added into
  const int32_t* sorted;
  const float* weights;
  int slots;  // T * top_k: ids at or past it are padding
  int top_k;
  int capacity;
  KF_INLINE int count() const { return capacity; }
  KF_INLINE bool valid(int i) const { return sorted[i] < slots; }
  KF_INLINE int x_row(int i) const {
    const int s = valid(i) ? sorted[i] : 0;
    return GEMM == 1 ? s / top_k : s;
  }
  KF_INLINE int y_row(int i) const { return RED ? sorted[i] / top_k : sorted[i]; }
  KF_INLINE float scale(int i) const { return GEMM == 2 ? weights[sorted[i]] : 1.f; }
  // RED: y[token, col .. col + 1] += (a, b) * routing weight (col even).
  template <bool BF16>
  KF_INLINE void add_pair(uint16_t* y, int ld, int i, int col, float a, float b) const {
    const float f = scale(i);
    atomic_add_packed<BF16>(reinterpret_cast<uint32_t*>(y + (size_t)y_row(i) * ld + col),
                            Act16<BF16>::pack2(a * f, b * f));
  }
};

// The w4a16_linear arguments of expert `e`: its slice of the stacked weights.
template <int N, int K, int G>
KF_INLINE kf_linear_args expert_args(const kf_moe_gemm_args& a, int e) {
  kf_linear_args la;
  la.x = a.x;
  la.qweight = static_cast<const uint32_t*>(a.qweight) + (size_t)e * (K / 8) * N;
  la.scales = static_cast<const uint16_t*>(a.scales) + (size_t)e * (K / G) * N;
  la.qzeros = a.qzeros ? static_cast<const uint32_t*>(a.qzeros) + (size_t)e * (K / G) * (N / 8) : nullptr;
  la.y = a.y;
  la.workspace = a.workspace;
  la.counters = a.counters;
  la.m = a.t * a.top_k;
  la.n = N;
  la.k = K;
  la.group = G;
  return la;
}

// A block's route: how many sorted entries are in use and its expert. Both loads are
// issued together (expert_ids is allocated to the capacity, so reading an entry past
// num_padded is safe, just meaningless): one memory round trip before the weight
// stream starts instead of two in a row.
struct BlockRoute {
  int num_padded, expert;
};
KF_INLINE BlockRoute block_route(const kf_moe_gemm_args& a, int block) {
  return {*a.num_padded, a.expert_ids[block]};
}

template <int GEMM, int BM, bool RED = false>
KF_INLINE RoutedRows<GEMM, RED> routed_rows(const kf_moe_gemm_args& a) {
  return {a.sorted_ids, a.topk_weights, a.t * a.top_k, a.top_k,
          (int)sorted_capacity(a.t, a.top_k, a.experts, BM)};
}

}  // namespace moe

template <int GEMM, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int THREADS, int SPLIT_K,
          int STAGES, bool SILU, bool RED>
KF_INLINE void w4a16_moe_gemm_decode(const kf_moe_gemm_args& a) {
  static_assert(w4a16::decode_valid(N, K, G, BN, BK, THREADS, SPLIT_K), "invalid decode config");
  static_assert(!SILU || (GEMM == 1 && w4a16::decode_silu_valid(N, BN)), "fused SiLU: gemm1 (gate_up) only");
  static_assert(!RED || GEMM == 2, "top_k reduction: gemm2 (down) only");
  const int m0 = block_z() * BM;
  const moe::BlockRoute r = moe::block_route(a, m0 / BM);
  if (m0 >= r.num_padded) return;  // uniform per block: before any barrier
  w4a16::decode_body<w4a16::FixedDims<N, K, G>, moe::RoutedRows<GEMM, RED>, BF16, ASYM, BM, BN, BK, THREADS,
                     SPLIT_K, STAGES, SILU>({}, moe::routed_rows<GEMM, BM, RED>(a),
                                            moe::expert_args<N, K, G>(a, r.expert));
}

template <int GEMM, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int SPLIT_K,
          int STAGES, bool SILU, bool RED>
KF_INLINE void w4a16_moe_gemm_prefill(const kf_moe_gemm_args& a) {
  static_assert(!SILU || GEMM == 1, "fused SiLU: gemm1 (gate_up) only");
  static_assert(!RED || GEMM == 2, "top_k reduction: gemm2 (down) only");
  const int m0 = block_y() * BM;
  const moe::BlockRoute r = moe::block_route(a, m0 / BM);
  if (m0 >= r.num_padded) return;
  w4a16::prefill_body<moe::RoutedRows<GEMM, RED>, N, K, G, BF16, ASYM, BM, BN, BK, WARPS, SPLIT_K, STAGES, SILU>(
      moe::routed_rows<GEMM, BM, RED>(a), moe::expert_args<N, K, G>(a, r.expert));
}

}  // namespace kf
