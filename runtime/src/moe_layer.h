// A whole MoE layer (kf_run_moe): the scratch layout carved from the caller's buffer,
// and the launches align -> gemm1 -> silu_mul -> gemm2 -> sum, all checked before the
// first one is made; when the gemm1 winner fuses SiLU-and-mul into its epilogue (config
// _silu) it writes h itself and silu_mul is not launched; when the gemm2 winner sums over
// top_k in its epilogue (config _red) it adds into y, which the first align launch
// zeroes, and sum is not launched. No allocation, no I/O, no device sync.
//
// Scratch layout (byte offsets, every region 256-byte aligned):
//   counters                 split-K tile counters, at offset 0 and sized for max_t and
//                            every MoE shape of the pack, so the same bytes are counters
//                            in every call (they stay zero between launches; nothing else
//                            ever writes them)
//   per distinct block_m     sorted_ids [capacity], expert_ids [capacity / block_m],
//                            num_padded [1] (int32)
//   h1 | h2                  [T * top_k, max(2 I, H)] 16-bit: gemm1's output, then gemm2's
//                            (h1 is dead once silu_mul has run); [T * top_k, H] (h2
//                            alone) when gemm1 is fused, [T * top_k, 2 I] (h1 alone)
//                            when gemm2 reduces, nothing when both
//   h                        [T * top_k, I] 16-bit: silu_mul's output, or the fused gemm1's
//   workspace                split-K floats, the larger of the two GEMMs' needs
#pragma once
#include "db.h"

namespace kf {
namespace rt {

kf_status moe_scratch_bytes(const kf_db& db, const kf_moe_shape& shape, int64_t max_t, size_t* bytes);
kf_status run_moe(const kf_db& db, const kf_moe_shape& shape, const kf_moe_layer_args& args, void* stream);

}  // namespace rt
}  // namespace kf
