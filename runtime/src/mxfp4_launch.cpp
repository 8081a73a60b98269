#include "mxfp4_launch.h"

#include <cmath>
#include <cstdint>

#include "mxfp4_moe/tiling.h"
#include "status.h"
#include "tensor_args.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {

}  // namespace

kf_status swiglu_constants(float alpha, float limit, const char* function, const char* kernel_name,
                           const char* alpha_name, const char* limit_name, float* alpha_out, float* limit_out) {
  const char* open = kernel_name ? "(" : "";
  const char* close = kernel_name ? ")" : "";
  const char* name = kernel_name ? kernel_name : "";
  if (!std::isfinite(alpha) || alpha < 0.f)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s%s%s%s: %s = %g, must be finite and not negative (0 means gpt-oss's %g)",
                function, open, name, close, alpha_name, static_cast<double>(alpha),
                static_cast<double>(kGptOssSwigluAlpha));
  if (!std::isfinite(limit) || limit < 0.f)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s%s%s%s: %s = %g, must be finite and not negative (0 means gpt-oss's %g)",
                function, open, name, close, limit_name, static_cast<double>(limit),
                static_cast<double>(kGptOssSwigluLimit));
  *alpha_out = alpha == 0.f ? kGptOssSwigluAlpha : alpha;
  *limit_out = limit == 0.f ? kGptOssSwigluLimit : limit;
  return KF_OK;
}

kf_status plan_mxfp4_gemm(const KernelImpl& k, const kf_mxfp4_moe_gemm_args& a, const char* function,
                          MoeLaunch* out, kf_mxfp4_moe_gemm_args* kernel_args) {
  const char* name = k.name.c_str();
  if (k.op_kind != KernelOp::mxfp4_gemm)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): a %s kernel, not an mxfp4_moe GEMM", function, name, k.op.c_str());
  const Mxfp4ShapeKey& s = k.mxfp4;
  const Mxfp4ConfigKey& c = k.mxfp4_config;
  const bool gemm2 = s.gemm == 2;
  // What the kernel reads and writes, with the alignment of its accesses: 16-byte copies
  // of x, weight and scales rows; y 16 bytes too (the layer's moe_sum reads it so); bias,
  // routing weights and the routing ints one word at a time. bias may be NULL.
  const TensorArg tensors[] = {{a.x, "x", 16, true},
                 {a.weight, "weight", 16, true},
                 {a.scales, "scales", 16, true},
                 {a.bias, "bias", 4, false},
                 {a.topk_weights, "topk_weights", 4, gemm2},
                 {a.sorted_ids, "sorted_ids", 4, true},
                 {a.expert_ids, "expert_ids", 4, true},
                 {a.num_padded, "num_padded", 4, true},
                 {a.y, "y", 16, true}};
  kf_status status = check_present(tensors, function, name);
  if (status != KF_OK) return status;
  status = check_moe_routing(function, name, a.t, a.top_k, a.experts);
  if (status != KF_OK) return status;
  if (a.experts != s.experts || a.top_k != s.top_k)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args has experts = %d, top_k = %d; the kernel is built for "
                "experts = %lld, top_k = %lld", function, name, a.experts, a.top_k,
                static_cast<long long>(s.experts), static_cast<long long>(s.top_k));
  if (a.k < 32 || a.k % mxfp4::kBlock != 0)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->k = %d is not a positive multiple of 32 (the MXFP4 block)",
                function, name, a.k);
  if (a.n != s.n || a.k != s.k)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args has n = %d, k = %d; the kernel is built for n = %lld, "
                "k = %lld%s", function, name, a.n, a.k, static_cast<long long>(s.n), static_cast<long long>(s.k),
                s.swiglu ? " (fused SwiGLU: n is gate_up's N = 2 I, and y gets n / 2 columns, [t * top_k, n / 2])"
                         : "");
  *kernel_args = a;
  if (s.swiglu &&
      (status = swiglu_constants(a.swiglu_alpha, a.swiglu_limit, function, name, "args->swiglu_alpha",
                                 "args->swiglu_limit", &kernel_args->swiglu_alpha, &kernel_args->swiglu_limit)) !=
          KF_OK)
    return status;
  if ((status = check_aligned(tensors, function, name)) != KF_OK) return status;
  const int64_t capacity = moe_capacity(function, name, a.t, a.top_k, a.experts, c.block_m);
  if (capacity < 0) return KF_ERR_INVALID_ARGUMENT;
  mxfp4::Grid g = mxfp4::gemm_grid(s.n, capacity, c.block_m, c.block_n);
  // Persistent: one block per tile planned; the launch keeps persistent_per_unit per SM.
  if (c.persistent > 0) g = {g.x * g.y, 1, 1};
  g.z *= static_cast<uint32_t>(c.split_k);  // split-K: the blocks of one cluster (gemv.h)
  if (g.y > kMaxGridYZ)
    return fail(KF_ERR_UNSUPPORTED_SHAPE, "%s(%s): t = %d needs a grid of %u x %u x %u blocks; y is limited to %u",
                function, name, a.t, g.x, g.y, g.z, kMaxGridYZ);
  *out = {&k, {{g.x, g.y, g.z}, {static_cast<unsigned>(k.threads), 1, 1}}};
  return KF_OK;
}

}  // namespace rt
}  // namespace kf
