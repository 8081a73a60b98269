#include "moe_layer.h"

#include <algorithm>

#include "launch.h"
#include "moe_launch.h"
#include "scratch.h"
#include "select.h"
#include "status.h"
#include "layer_routing.h"
#include "tensor_args.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {

struct Layout {
  RoutingLayout route;
  int64_t h1 = 0, h = 0, workspace = 0, total = 0;
};

// The split-K counters region for calls with t <= max_t: the most any GEMM of any MoE
// shape of the pack can count at once (ranges ascend, and counters grow with T).
int64_t counter_region_bytes(const kf_db& db, int64_t max_t) {
  int64_t most = 0;
  for (uint32_t index : db.moe_shapes) {
    const ShapeEntry& entry = db.shapes[index];
    for (uint32_t i = entry.first; i < entry.first + entry.count; ++i) {
      const WinnerRange& r = db.ranges[i];
      if (r.lo > max_t) break;
      int64_t floats = 0, counters = 0;
      kernel_workspace(*r.kernel->impl, std::min(max_t, r.hi), &floats, &counters);
      most = std::max(most, counters);
    }
  }
  return (most * 4 + kRegionAlign - 1) / kRegionAlign * kRegionAlign;
}

kf_status layout(const MoeShapeKey keys[2], const kf_kernel* const kernels[2], int64_t t, int64_t counter_bytes,
                 const char* function, Layout* out) {
  Layout l;
  const int64_t top_k = keys[0].top_k, experts = keys[0].experts;
  Carver c(counter_bytes);
  bool overflow = false;
  l.route.carve(kernels[0]->impl->config.block_m, kernels[1]->impl->config.block_m, t, top_k, experts, c, &overflow);
  const int64_t slots = checked_mul(t, top_k, &overflow);
  const int64_t hidden = keys[0].expert.k, intermediate = keys[1].expert.k;
  // A fused gemm1 writes h itself: h1 is never there, only h2; a reducing gemm2 adds
  // into y: h2 is never there.
  const bool fused = kernels[0]->impl->config.silu, reduced = kernels[1]->impl->config.red;
  l.h1 = c.take(checked_mul(slots, std::max(fused ? 0 : 2 * intermediate, reduced ? 0 : hidden), &overflow), 2);
  l.h = c.take(checked_mul(slots, intermediate, &overflow), 2);
  int64_t floats = 0;
  for (int g = 0; g < 2; ++g) {
    int64_t f = 0, counters = 0;
    if (!overflow) kernel_workspace(*kernels[g]->impl, t, &f, &counters);
    floats = std::max(floats, f);
  }
  l.workspace = c.take(floats, 4);
  l.total = c.end();
  if (overflow || c.overflow())
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: t = %lld tokens of this shape need more scratch than 64-bit sizes or "
                "the kernels' int indices hold", function, static_cast<long long>(t));
  *out = l;
  return KF_OK;
}

kf_status select_both(const kf_db& db, const MoeShapeKey keys[2], int64_t t, const char* function,
                      const kf_kernel* kernels[2]) {
  kf_status status = select_moe(db, keys[0], t, function, &kernels[0]);
  if (status == KF_OK) status = select_moe(db, keys[1], t, function, &kernels[1]);
  return status;
}

kf_status keys_of(const kf_moe_shape& shape, const char* function, MoeShapeKey keys[2]) {
  kf_status status = moe_gemm_key(shape, 1, function, &keys[0]);
  if (status == KF_OK) status = moe_gemm_key(shape, 2, function, &keys[1]);
  return status;
}

kf_status check_layer_args(const MoeShapeKey keys[2], const kf_moe_layer_args& a, const char* function) {
  if (a.t < 1) return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->t = %d, must be at least 1", function, a.t);
  if (a.max_t < a.t)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->max_t = %d is below args->t = %d (max_t: the token count the "
                "scratch was sized for with kf_moe_scratch_bytes)", function, a.max_t, a.t);
  // What the kernels' vector loads and stores need (the qzeros only when asymmetric).
  const TensorArg tensors[] = {{a.x, "x", 16, true},
                 {a.topk_ids, "topk_ids", 4, true},
                 {a.topk_weights, "topk_weights", 4, true},
                 {a.w1_qweight, "w1_qweight", 16, true},
                 {a.w1_scales, "w1_scales", 8, true},
                 {keys[0].expert.asym ? a.w1_qzeros : nullptr, "w1_qzeros", 4, keys[0].expert.asym},
                 {a.w2_qweight, "w2_qweight", 16, true},
                 {a.w2_scales, "w2_scales", 8, true},
                 {keys[1].expert.asym ? a.w2_qzeros : nullptr, "w2_qzeros", 4, keys[1].expert.asym},
                 {a.y, "y", 16, true},
                 {a.scratch, "scratch", 256, true}};
  return check_tensors(tensors, function, nullptr);
}

}  // namespace

kf_status moe_scratch_bytes(const kf_db& db, const kf_moe_shape& shape, int64_t max_t, size_t* bytes) {
  const char* function = "kf_moe_scratch_bytes";
  MoeShapeKey keys[2];
  kf_status status = keys_of(shape, function, keys);
  const kf_kernel* kernels[2] = {};
  if (status == KF_OK) status = select_both(db, keys, 1, function, kernels);
  if (status != KF_OK) return status;
  const ShapeEntry* const entries[2] = {find_moe_entry(db, keys[0]), find_moe_entry(db, keys[1])};  // both selected
  const int64_t counter_bytes = counter_region_bytes(db, max_t);
  return most_scratch_over_ranges(db, entries, max_t, function, [&](int64_t t, int64_t* need) {
    Layout l;
    kf_status s = select_both(db, keys, t, function, kernels);
    if (s == KF_OK) s = layout(keys, kernels, t, counter_bytes, function, &l);
    *need = l.total;
    return s;
  }, bytes);
}

kf_status run_moe(const kf_db& db, const kf_moe_shape& shape, const kf_moe_layer_args& a, void* stream) {
  const char* function = "kf_run_moe";
  MoeShapeKey keys[2];
  kf_status status = keys_of(shape, function, keys);
  if (status == KF_OK) status = check_layer_args(keys, a, function);
  const kf_kernel* kernels[2] = {};
  if (status == KF_OK) status = select_both(db, keys, a.t, function, kernels);
  Layout l;
  if (status == KF_OK) status = layout(keys, kernels, a.t, counter_region_bytes(db, a.max_t), function, &l);
  if (status != KF_OK) return status;
  if (static_cast<uint64_t>(l.total) > a.scratch_bytes)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->scratch_bytes = %llu is too small: t = %d (max_t = %d) needs "
                "%lld bytes (kf_moe_scratch_bytes)", function, static_cast<unsigned long long>(a.scratch_bytes), a.t,
                a.max_t, static_cast<long long>(l.total));

  const int t = a.t, top_k = static_cast<int>(keys[0].top_k), experts = static_cast<int>(keys[0].experts);
  const int hidden = static_cast<int>(keys[0].expert.k), intermediate = static_cast<int>(keys[1].expert.k);
  const bool bf16 = keys[0].expert.bf16;
  void* const s = a.scratch;

  // gemm2 summing over top_k in its epilogue adds into y, which the first align zeroes
  // (before gemm1 reads x: the two must not overlap), and sum is skipped.
  const bool reduced = kernels[1]->impl->config.red;
  if (reduced && status == KF_OK) {
    const char* xb = static_cast<const char*>(a.x);
    const char* yb = static_cast<const char*>(a.y);
    const size_t bytes = static_cast<size_t>(t) * static_cast<size_t>(hidden) * 2;
    if (xb < yb + bytes && yb < xb + bytes)
      return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->y overlaps args->x; the gemm2 kernel %s sums over top_k into "
                  "y, which is zeroed before gemm1 reads x", function, kernels[1]->impl->name.c_str());
  }
  kf_moe_align_args align[2] = {};
  MoeLaunch align_launch[2];
  status = plan_routing(db, l.route, s, a.topk_ids, t, top_k, experts, function, align, align_launch,
                        reduced ? a.y : nullptr, static_cast<int64_t>(t) * hidden);
  kf_moe_gemm_args gemm[2] = {};
  MoeLaunch gemm_launch[2];
  const void* const qweight[2] = {a.w1_qweight, a.w2_qweight};
  const void* const scales[2] = {a.w1_scales, a.w2_scales};
  const void* const qzeros[2] = {a.w1_qzeros, a.w2_qzeros};
  const void* const x[2] = {a.x, at<void>(s, l.h)};
  // gemm1 with the fused SiLU epilogue writes h directly, and silu_mul is skipped.
  const bool fused = kernels[0]->impl->config.silu;
  void* const y[2] = {at<void>(s, fused ? l.h : l.h1), reduced ? a.y : at<void>(s, l.h1)};
  for (int g = 0; g < 2 && status == KF_OK; ++g) {
    const int slot = l.route.slot[g];
    const LinearShapeKey& e = keys[g].expert;
    gemm[g] = {x[g], qweight[g], scales[g], keys[g].expert.asym ? qzeros[g] : nullptr, a.topk_weights,
               align[slot].sorted_ids, align[slot].expert_ids, align[slot].num_padded, y[g],
               at<float>(s, l.workspace), at<int>(s, 0), t, top_k, experts,
               static_cast<int>(e.n), static_cast<int>(e.k), static_cast<int>(e.group)};
    status = plan_moe_gemm(*kernels[g]->impl, gemm[g], function, &gemm_launch[g]);
  }
  const kf_moe_silu_mul_args silu = {at<void>(s, l.h1), at<void>(s, l.h), t * top_k, intermediate};
  const kf_moe_sum_args sum = {at<void>(s, l.h1), a.topk_ids, a.y, t, top_k, experts, hidden};
  MoeLaunch silu_launch, sum_launch;
  if (status == KF_OK && !fused) status = plan_moe_silu_mul(db, bf16, silu, function, &silu_launch);
  if (status == KF_OK && !reduced) status = plan_moe_sum(db, bf16, sum, function, &sum_launch);
  if (status != KF_OK) return status;

  for (int i = 0; i < l.route.slots && status == KF_OK; ++i) status = launch_planned(align_launch[i], align[i], stream);
  if (status == KF_OK) status = launch_planned(gemm_launch[0], gemm[0], stream);
  if (status == KF_OK && !fused) status = launch_planned(silu_launch, silu, stream);
  if (status == KF_OK) status = launch_planned(gemm_launch[1], gemm[1], stream);
  if (status == KF_OK && !reduced) status = launch_planned(sum_launch, sum, stream);
  return status;
}

}  // namespace rt
}  // namespace kf
