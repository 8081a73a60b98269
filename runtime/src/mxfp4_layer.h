// A whole MXFP4 MoE layer (kf_run_mxfp4_moe): the scratch layout carved from the
// caller's buffer, and the launches align (once per distinct block_m of the two winners)
// -> mxfp4_moe_gemm1 (bias and SwiGLU fused) -> mxfp4_moe_gemm2 (bias, routing weight)
// -> moe_sum, all checked before the first one is made. No allocation, no I/O, no device
// sync.
//
// Scratch layout (byte offsets, every region 256-byte aligned; nothing needs zeroing):
//   per distinct block_m     sorted_ids [capacity], expert_ids [capacity / block_m],
//                            num_padded [1] (int32)
//   h                        [T * top_k, I] bf16: gemm1's output, gemm2's input
//   h2                       [T * top_k, H] bf16: gemm2's output, moe_sum's input
#pragma once
#include "db.h"

namespace kf {
namespace rt {

kf_status mxfp4_scratch_bytes(const kf_db& db, const kf_mxfp4_moe_shape& shape, int64_t max_t, size_t* bytes);
kf_status run_mxfp4_moe(const kf_db& db, const kf_mxfp4_moe_shape& shape, const kf_mxfp4_moe_layer_args& args,
                        void* stream);

}  // namespace rt
}  // namespace kf
