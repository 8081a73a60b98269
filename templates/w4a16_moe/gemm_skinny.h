// w4a16_moe GEMMs on the skinny body (w4a16_linear/skinny.h): a few routed slots per
// expert on the tensor cores, fragments built from the GPTQ words. One block covers BM
// sorted slots of one expert (moe_align pads each expert's run to whole blocks of BM:
// 16, or 8 for the swapped form); padding slots are zero rows that are never stored. The epilogues are the other
// kinds' (gemm.h): SILU (gemm1, _silu) writes h = silu(gate) * up, RED (gemm2, _red) adds
// the routing-weighted rows into y's token rows.
#pragma once
#include "w4a16_linear/skinny.h"
#include "w4a16_moe/gemm.h"

namespace kf {

template <int GEMM, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int WARPS, int SPLIT_K, int STAGES,
          bool SILU, bool RED>
KF_INLINE void w4a16_moe_gemm_skinny(const kf_moe_gemm_args& a) {
  static_assert(!SILU || GEMM == 1, "fused SiLU: gemm1 (gate_up) only");
  static_assert(!RED || GEMM == 2, "top_k reduction: gemm2 (down) only");
  // Nothing is read before the kernel before this one is done (kf_grid_dependency.h):
  // the runtime launches the skinny kind to overlap it.
  grid_dependency::wait();
  const int m0 = block_z() * BM;
  const moe::BlockRoute r = moe::block_route(a, m0 / BM);
  if (m0 >= r.num_padded) return;  // uniform per block: before any barrier
  w4a16::skinny_body<moe::RoutedRows<GEMM, RED>, N, K, G, BF16, ASYM, BM, BN, WARPS, SPLIT_K, STAGES, SILU>(
      moe::routed_rows<GEMM, BM, RED>(a), moe::expert_args<N, K, G>(a, r.expert));
}

}  // namespace kf
