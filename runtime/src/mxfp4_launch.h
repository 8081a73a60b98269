// MXFP4 MoE GEMM launches (templates/mxfp4_moe/args.h): every argument check that needs
// no GPU, and the geometry of templates/mxfp4_moe/tiling.h (grid (N / block_n,
// sorted_capacity / block_m, 1), the pack row's threads). Checking ("plan") is apart
// from launching so kf_run_mxfp4_moe can check a whole layer before it launches any of
// it. No allocation, no I/O.
#pragma once
#include "moe_launch.h"

namespace kf {
namespace rt {

// gpt-oss's clamped SwiGLU constants, used where the caller passes 0.
constexpr float kGptOssSwigluAlpha = 1.702f;
constexpr float kGptOssSwigluLimit = 7.0f;

// The SwiGLU alpha and limit a kernel gets: 0 means gpt-oss's value; anything else must
// be finite and positive (KF_ERR_INVALID_ARGUMENT naming `alpha_name` / `limit_name`).
kf_status swiglu_constants(float alpha, float limit, const char* function, const char* kernel_name,
                           const char* alpha_name, const char* limit_name, float* alpha_out, float* limit_out);

// Checks a launch of the mxfp4_moe GEMM `k` with `a`; fills *out and *kernel_args (a copy
// of `a` with the SwiGLU defaults filled in: what the kernel gets by value).
kf_status plan_mxfp4_gemm(const KernelImpl& k, const kf_mxfp4_moe_gemm_args& a, const char* function,
                          MoeLaunch* out, kf_mxfp4_moe_gemm_args* kernel_args);

}  // namespace rt
}  // namespace kf
