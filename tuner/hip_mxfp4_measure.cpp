// HipMeasurer, part 5: mxfp4_moe, step for step as cuda_mxfp4_measure.cpp: a fresh
// problem per (shape, T, routing) with its weights and scales uploaded a chunk at a time;
// per kernel, moe_align_any sorts the slots for its block_m (checked on the host), y is
// poisoned, one verification run judged against the float64 reference of the checked
// slots, then the GEMM timed alone.
#include "hip_measurer_detail.h"
#include "mxfp4_moe/args.h"
#include "mxfp4_moe/tiling.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace hip_detail {

using namespace measure;

void HipMeasurer::begin_mxfp4_shape(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
  for (hipModule_t mod : shape_modules_) (void)hip_->hipModuleUnload(mod);
  shape_modules_.clear();
  functions_.clear();
  moe_ = false;
  mx_shape_ = shape;
  shape_key_ = shape.op() + "_" + shape.key();
  mx_sizes_ = plan_mxfp4_buffers(shape, kernels);
  mx_host_.begin_shape(shape);
  uploaded_ = false;
  try {
    if (!dev_ok_)
      setup_device();  // allocates the shape's buffers too
    else
      alloc_mxfp4_shape();
  } catch (const CallFailed& e) {
    throw Error("cannot set up " + info_.name + " for " + shape_key_ + ": " + e.message);
  }
}

void HipMeasurer::alloc_mxfp4_shape() {
  // What only linear, MoE or MLA shapes use is freed (their alloc_* allocate it again).
  for (DevBuf* b : {&qw_, &sc_, &qz_, &ws_, &cnt_, &mq_, &mkv_, &midx_, &mxs_, &mxc_, &mo_, &mlse_, &mpo_, &mplse_})
    b->release();
  host_counters_.clear();
  host_o_.clear();
  host_lse_.clear();
  const Mxfp4ShapeBuffers& b = mx_sizes_;
  x_.alloc(hip_, b.x_elems * 2, "x");
  fw_.alloc(hip_, b.weight_bytes, "the MXFP4 expert weights");
  fsc_.alloc(hip_, b.scale_bytes, "the MXFP4 scales");
  fb_.alloc(hip_, b.bias_floats * 4, "the expert bias");
  y_.alloc(hip_, b.y_elems * 2, "y");
  ids_.alloc(hip_, b.slots * 4, "topk_ids");
  tw_.alloc(hip_, b.slots * 4, "topk_weights");
  sorted_.alloc(hip_, b.sorted_ids * 4, "sorted_ids");
  eids_.alloc(hip_, b.expert_ids * 4, "expert_ids");
  npad_.alloc(hip_, 4, "num_padded");
  host_y_.assign(b.y_elems, 0);
  host_sorted_.assign(b.sorted_ids, 0);
  host_eids_.assign(b.expert_ids, 0);
  uploaded_ = false;
}

void HipMeasurer::prepare_mxfp4_problem(const MoeRouting& routing) {
  if (mx_host_.prepare(routing, mx_sizes_)) uploaded_ = false;
  if (uploaded_) return;
  const Mxfp4TuneProblem& p = mx_host_.problem();
  auto up = [&](void* to, const void* data, size_t bytes) {
    if (bytes) check(hip_->hipMemcpy(to, data, bytes, hipMemcpyHostToDevice), "hipMemcpy (to the GPU)");
  };
  up(x_.ptr, p.x.data(), p.x.size() * 2);
  up(fb_.ptr, p.bias.data(), p.bias.size() * 4);
  up(ids_.ptr, p.topk_ids.data(), p.topk_ids.size() * 4);
  up(tw_.ptr, p.topk_weights.data(), p.topk_weights.size() * 4);
  for (const bool scales : {false, true})
    mx_host_.for_each_chunk(scales, [&](int64_t first, int64_t bytes, const uint8_t* data) {
      up(static_cast<char*>((scales ? fsc_ : fw_).ptr) + first, data, static_cast<size_t>(bytes));
    });
  check(hip_->hipDeviceSynchronize(), "hipDeviceSynchronize");
  uploaded_ = true;
}

void HipMeasurer::verify_mxfp4(const std::function<void()>& run, Measurement& r) {
  const Mxfp4TuneProblem& p = mx_host_.problem();
  const auto elems = static_cast<size_t>(moe_checked_rows(p.t, p.shape.top_k) * p.out_cols());
  check(hip_->hipMemsetD16Async(y_.ptr, 0xffff, elems, stream_), "hipMemsetD16Async");
  const auto start = Clock::now();
  run();
  if (!wait(opt_.hang_timeout_s)) return mark_hung(r, opt_.hang_timeout_s);
  verify_seconds_ = seconds_since(start);
  check(hip_->hipMemcpy(host_y_.data(), y_.ptr, elems * 2, hipMemcpyDeviceToHost), "hipMemcpy (from the GPU)");
  judge_mxfp4_output(host_y_, mx_host_.reference(), p, r);
}

Measurement HipMeasurer::measure_mxfp4(const PackKernel& k, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                                       bool cold, int reps) {
  if (!mxfp4_active() || shape.op() + "_" + shape.key() != shape_key_)
    throw Error("internal: measure_mxfp4() of " + shape.key() + " before begin_mxfp4_shape()");
  try {
    if (!dev_ok_) setup_device();
    prepare_mxfp4_problem(routing);
    if (cold) flush_function();
  } catch (const CallFailed& e) {
    throw Error("cannot prepare " + info_.name + " for " + shape_key_ + " at T=" + std::to_string(routing.t) + ": " +
                e.message);
  }
  const Mxfp4TuneProblem& p = mx_host_.problem();
  const Mxfp4Config cfg = parse_mxfp4_config(k.config);
  const int64_t cap = moe::sorted_capacity(p.t, shape.top_k, shape.experts, cfg.block_m);
  const mxfp4::Grid g = mxfp4::gemm_grid(shape.n, cap, cfg.block_m, cfg.block_n);
  kf_mxfp4_moe_gemm_args args{};
  args.x = x_.ptr;
  args.weight = static_cast<const uint8_t*>(fw_.ptr);
  args.scales = static_cast<const uint8_t*>(fsc_.ptr);
  args.bias = static_cast<const float*>(fb_.ptr);
  args.topk_weights = static_cast<const float*>(tw_.ptr);
  args.sorted_ids = static_cast<const int32_t*>(sorted_.ptr);
  args.expert_ids = static_cast<const int32_t*>(eids_.ptr);
  args.num_padded = static_cast<const int32_t*>(npad_.ptr);
  args.y = y_.ptr;
  args.t = static_cast<int>(p.t);
  args.top_k = static_cast<int>(shape.top_k);
  args.experts = static_cast<int>(shape.experts);
  args.n = static_cast<int>(shape.n);
  args.k = static_cast<int>(shape.k);
  args.swiglu_alpha = kMxfp4SwigluAlpha;
  args.swiglu_limit = kMxfp4SwigluLimit;
  return guarded([&](Measurement& r) {
    const hipFunction_t fn = function_of(k);
    const auto run = [&] { launch(fn, {g.x, g.y, g.z}, k.threads, &args, "hipModuleLaunchKernel"); };
    run_align(p.topk_ids, p.t, shape.top_k, shape.experts, cfg.block_m, r);
    if (r.disposition.empty()) verify_mxfp4(run, r);
    if (r.disposition.empty()) time_launches(run, false, cold, reps, r);
  });
}

}  // namespace hip_detail
}  // namespace kf
