// w4a16_moe GEMMs on the w4a16_linear wgmma tile (sm_90a only; w4a16_moe/wgmma_gathered.h):
// the prefill grid over the sorted capacity, one expert per block row (gemm.h's routed
// rows and expert slice), x rows gathered through a shared-memory table of the block's
// slots. SILU (gemm1) writes h = silu(gate) * up; RED (gemm2) adds each slot's scaled row
// into its token's row with packed atomics, as the prefill kind's epilogues do.
#pragma once
#include "w4a16_moe/gemm.h"
#include "w4a16_moe/wgmma_gathered.h"

namespace kf {

template <int GEMM, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int STAGES,
          bool SILU, bool RED>
KF_INLINE void w4a16_moe_gemm_wgmma(const kf_moe_gemm_args& a) {
  static_assert(!SILU || GEMM == 1, "fused SiLU: gemm1 (gate_up) only");
  static_assert(!RED || GEMM == 2, "top_k reduction: gemm2 (down) only");
  const int m0 = block_y() * BM;
  const moe::BlockRoute r = moe::block_route(a, m0 / BM);
  if (m0 >= r.num_padded) return;  // uniform per block: before any barrier
  w4a16::wgmma_gathered_body<moe::RoutedRows<GEMM, RED>, N, K, G, BF16, ASYM, BM, BN, BK, WARPS, STAGES, SILU>(
      moe::routed_rows<GEMM, BM, RED>(a), moe::expert_args<N, K, G>(a, r.expert));
}

}  // namespace kf
