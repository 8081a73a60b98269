#include "mxfp4_layer.h"

#include <algorithm>

#include "launch.h"
#include "moe_launch.h"
#include "mxfp4_launch.h"
#include "mxfp4_select.h"
#include "scratch.h"
#include "status.h"
#include "layer_routing.h"
#include "tensor_args.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {

struct Layout {
  RoutingLayout route;
  int64_t h = 0, h2 = 0, total = 0;
};

kf_status layout(const Mxfp4ShapeKey keys[2], const kf_kernel* const kernels[2], int64_t t, const char* function,
                 Layout* out) {
  Layout l;
  const int64_t top_k = keys[0].top_k, experts = keys[0].experts;
  Carver c(0);
  bool overflow = false;
  l.route.carve(kernels[0]->impl->mxfp4_config.block_m, kernels[1]->impl->mxfp4_config.block_m, t, top_k, experts, c,
                &overflow);
  const int64_t slots = checked_mul(t, top_k, &overflow);
  const int64_t hidden = keys[0].k, intermediate = keys[1].k;
  l.h = c.take(checked_mul(slots, intermediate, &overflow), 2);
  l.h2 = c.take(checked_mul(slots, hidden, &overflow), 2);
  l.total = c.end();
  if (overflow || c.overflow())
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: t = %lld tokens of this shape need more scratch than 64-bit sizes or "
                "the kernels' int indices hold", function, static_cast<long long>(t));
  *out = l;
  return KF_OK;
}

// Both GEMM keys of a layer; the layer runs only with the SwiGLU fused into gemm1 (the
// family has no separate activation kernel).
kf_status keys_of(const kf_mxfp4_moe_shape& shape, const char* function, Mxfp4ShapeKey keys[2]) {
  kf_status status = mxfp4_gemm_key(shape, 1, function, &keys[0]);
  if (status == KF_OK) status = mxfp4_gemm_key(shape, 2, function, &keys[1]);
  if (status == KF_OK && !keys[0].swiglu)
    return fail(KF_ERR_UNSUPPORTED_SHAPE, "%s: shape->swiglu = 0: a layer runs with gpt-oss's clamped SwiGLU fused "
                "into gemm1 (swiglu = 1); the mxfp4_moe family has no separate activation kernel", function);
  return status;
}

kf_status select_both(const kf_db& db, const Mxfp4ShapeKey keys[2], int64_t t, const char* function,
                      const kf_kernel* kernels[2]) {
  kf_status status = select_mxfp4(db, keys[0], t, function, &kernels[0]);
  if (status == KF_OK) status = select_mxfp4(db, keys[1], t, function, &kernels[1]);
  return status;
}

kf_status check_layer_args(const kf_mxfp4_moe_layer_args& a, const char* function, float* alpha, float* limit) {
  if (a.t < 1) return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->t = %d, must be at least 1", function, a.t);
  if (a.max_t < a.t)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->max_t = %d is below args->t = %d (max_t: the token count the "
                "scratch was sized for with kf_mxfp4_moe_scratch_bytes)", function, a.max_t, a.t);
  // What the kernels' accesses need: 16-byte copies of x, weights and scales, 16-byte
  // reads and writes of y (moe_sum), words elsewhere. The biases may be NULL.
  const TensorArg tensors[] = {{a.x, "x", 16, true},
                 {a.topk_ids, "topk_ids", 4, true},
                 {a.topk_weights, "topk_weights", 4, true},
                 {a.w1_weight, "w1_weight", 16, true},
                 {a.w1_scales, "w1_scales", 16, true},
                 {a.w1_bias, "w1_bias", 4, false},
                 {a.w2_weight, "w2_weight", 16, true},
                 {a.w2_scales, "w2_scales", 16, true},
                 {a.w2_bias, "w2_bias", 4, false},
                 {a.y, "y", 16, true},
                 {a.scratch, "scratch", 256, true}};
  if (const kf_status status = check_tensors(tensors, function, nullptr)) return status;
  return swiglu_constants(a.swiglu_alpha, a.swiglu_limit, function, nullptr, "args->swiglu_alpha",
                          "args->swiglu_limit", alpha, limit);
}

}  // namespace

kf_status mxfp4_scratch_bytes(const kf_db& db, const kf_mxfp4_moe_shape& shape, int64_t max_t, size_t* bytes) {
  const char* function = "kf_mxfp4_moe_scratch_bytes";
  Mxfp4ShapeKey keys[2];
  kf_status status = keys_of(shape, function, keys);
  const kf_kernel* kernels[2] = {};
  if (status == KF_OK) status = select_both(db, keys, 1, function, kernels);
  if (status != KF_OK) return status;
  const ShapeEntry* const entries[2] = {find_mxfp4_entry(db, keys[0]), find_mxfp4_entry(db, keys[1])};  // both selected
  return most_scratch_over_ranges(db, entries, max_t, function, [&](int64_t t, int64_t* need) {
    Layout l;
    kf_status s = select_both(db, keys, t, function, kernels);
    if (s == KF_OK) s = layout(keys, kernels, t, function, &l);
    *need = l.total;
    return s;
  }, bytes);
}

kf_status run_mxfp4_moe(const kf_db& db, const kf_mxfp4_moe_shape& shape, const kf_mxfp4_moe_layer_args& a,
                        void* stream) {
  const char* function = "kf_run_mxfp4_moe";
  Mxfp4ShapeKey keys[2];
  float alpha = 0.f, limit = 0.f;
  kf_status status = keys_of(shape, function, keys);
  if (status == KF_OK) status = check_layer_args(a, function, &alpha, &limit);
  const kf_kernel* kernels[2] = {};
  if (status == KF_OK) status = select_both(db, keys, a.t, function, kernels);
  Layout l;
  if (status == KF_OK) status = layout(keys, kernels, a.t, function, &l);
  if (status != KF_OK) return status;
  if (static_cast<uint64_t>(l.total) > a.scratch_bytes)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->scratch_bytes = %llu is too small: t = %d (max_t = %d) needs "
                "%lld bytes (kf_mxfp4_moe_scratch_bytes)", function,
                static_cast<unsigned long long>(a.scratch_bytes), a.t, a.max_t, static_cast<long long>(l.total));

  const int t = a.t, top_k = static_cast<int>(keys[0].top_k), experts = static_cast<int>(keys[0].experts);
  const int hidden = static_cast<int>(keys[0].k);
  void* const s = a.scratch;

  kf_moe_align_args align[2] = {};
  MoeLaunch align_launch[2];
  status = plan_routing(db, l.route, s, a.topk_ids, t, top_k, experts, function, align, align_launch);
  kf_mxfp4_moe_gemm_args gemm[2] = {};
  MoeLaunch gemm_launch[2];
  const uint8_t* const weight[2] = {a.w1_weight, a.w2_weight};
  const uint8_t* const scales[2] = {a.w1_scales, a.w2_scales};
  const float* const bias[2] = {a.w1_bias, a.w2_bias};
  const void* const x[2] = {a.x, at<void>(s, l.h)};
  void* const y[2] = {at<void>(s, l.h), at<void>(s, l.h2)};
  for (int g = 0; g < 2 && status == KF_OK; ++g) {
    const int slot = l.route.slot[g];
    const kf_mxfp4_moe_gemm_args args = {x[g], weight[g], scales[g], bias[g], a.topk_weights,
                                         align[slot].sorted_ids, align[slot].expert_ids, align[slot].num_padded,
                                         y[g], t, top_k, experts, static_cast<int>(keys[g].n),
                                         static_cast<int>(keys[g].k), alpha, limit};
    status = plan_mxfp4_gemm(*kernels[g]->impl, args, function, &gemm_launch[g], &gemm[g]);
  }
  const kf_moe_sum_args sum = {at<void>(s, l.h2), a.topk_ids, a.y, t, top_k, experts, hidden};
  MoeLaunch sum_launch;
  if (status == KF_OK) status = plan_moe_sum(db, /*bf16=*/true, sum, function, &sum_launch);
  if (status != KF_OK) return status;

  for (int i = 0; i < l.route.slots && status == KF_OK; ++i) status = launch_planned(align_launch[i], align[i], stream);
  if (status == KF_OK) status = launch_planned(gemm_launch[0], gemm[0], stream);
  if (status == KF_OK) status = launch_planned(gemm_launch[1], gemm[1], stream);
  if (status == KF_OK) status = launch_planned(sum_launch, sum, stream);
  return status;
}

}  // namespace rt
}  // namespace kf
