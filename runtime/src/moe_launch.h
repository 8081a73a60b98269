// The MoE kernels' launches (templates/w4a16_moe/args.h): every argument check that
// needs no GPU, and the geometry of templates/w4a16_moe/launch.h. Checking ("plan") is
// apart from launching so kf_run_moe can check a whole layer before it launches any of
// it. No allocation, no I/O: messages go to the thread's fixed error buffer.
#pragma once
#include "launch.h"

namespace kf {
namespace rt {

// A checked launch: which kernel, with which grid and block.
struct MoeLaunch {
  const KernelImpl* kernel = nullptr;
  LaunchDims dims = {};
};

// The rules every MoE piece shares (w4a16_moe and mxfp4_moe): t >= 1, 1 <= top_k <=
// experts <= kMaxExperts, and T * top_k slots that fit the kernels' int indices.
// Messages read "<function>(<name>): ...".
kf_status check_moe_routing(const char* function, const char* name, int t, int top_k, int experts);
// Entries of sorted_ids for block_m (w4a16_moe/launch.h's sorted_capacity), or -1 with
// the message set (KF_ERR_INVALID_ARGUMENT) when they overflow an int.
int64_t moe_capacity(const char* function, const char* name, int t, int top_k, int experts, int block_m);

// `function` names the caller in messages ("kf_launch_moe_align", "kf_run_moe").
kf_status plan_moe_align(const kf_db& db, const kf_moe_align_args& a, const char* function, MoeLaunch* out);
kf_status plan_moe_gemm(const KernelImpl& k, const kf_moe_gemm_args& a, const char* function, MoeLaunch* out);
kf_status plan_moe_silu_mul(const kf_db& db, bool bf16, const kf_moe_silu_mul_args& a, const char* function,
                            MoeLaunch* out);
kf_status plan_moe_sum(const kf_db& db, bool bf16, const kf_moe_sum_args& a, const char* function, MoeLaunch* out);

// Launches a planned kernel with its argument struct passed by value.
template <class Args>
kf_status launch_planned(const MoeLaunch& launch, const Args& args, void* stream) {
  Args copy = args;
  return launch_kernel(*launch.kernel, launch.dims, &copy, stream);
}

}  // namespace rt
}  // namespace kf
