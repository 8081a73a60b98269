// mxfp4_moe's steps, written once for the CUDA and HIP measurers (D: CudaMeasurer or
// HipMeasurer; cuda_mxfp4_measure.cpp and hip_mxfp4_measure.cpp forward to them): per
// (shape, T, routing) a fresh problem (mxfp4_problem.h), its weights and scales uploaded
// a chunk at a time; per kernel, moe_align_any sorts the routed slots for its block_m on
// the GPU (checked on the host, as for the w4a16 MoE GEMMs), the GEMM is verified
// against the float64 reference of the checked slots with y poisoned, then timed alone
// (the measurer's time_launches; the sorted slots stay as align left them).
#pragma once
#include "measure_common.h"
#include "mxfp4_moe/args.h"
#include "mxfp4_moe/tiling.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace measure {

template <class D>
struct Mxfp4Steps {
  using Buf = typename D::Buf;
  using Function = typename D::Function;

  static void begin_shape(D& d, const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
    for (typename D::Module mod : d.shape_modules_) d.unload(mod);
    d.shape_modules_.clear();
    d.functions_.clear();
    d.moe_ = false;
    d.mx_shape_ = shape;
    d.shape_key_ = shape.op() + "_" + shape.key();
    d.mx_sizes_ = plan_mxfp4_buffers(shape, kernels);
    d.mx_host_.begin_shape(shape);
    d.uploaded_ = false;
    try {
      if (!d.ready())
        d.set_up();  // allocates the shape's buffers too
      else
        d.alloc_mxfp4_shape();
    } catch (const CallFailed& e) {
      throw Error("cannot set up " + d.info_.name + " for " + d.shape_key_ + ": " + e.message);
    }
  }

  static void alloc_shape(D& d) {
    // What only linear, MoE or MLA shapes use is freed (their alloc_* allocate it again).
    for (Buf* b : {&d.qw_, &d.sc_, &d.qz_, &d.ws_, &d.cnt_, &d.mq_, &d.mkv_, &d.midx_, &d.mxs_, &d.mxc_, &d.mo_,
                   &d.mlse_, &d.mpo_, &d.mplse_})
      b->release();
    d.host_counters_.clear();
    d.host_o_.clear();
    d.host_lse_.clear();
    const Mxfp4ShapeBuffers& b = d.mx_sizes_;
    d.alloc(d.x_, b.x_elems * 2, "x");
    d.alloc(d.fw_, b.weight_bytes, "the MXFP4 expert weights");
    d.alloc(d.fsc_, b.scale_bytes, "the MXFP4 scales");
    d.alloc(d.fb_, b.bias_floats * 4, "the expert bias");
    d.alloc(d.y_, b.y_elems * 2, "y");
    d.alloc(d.ids_, b.slots * 4, "topk_ids");
    d.alloc(d.tw_, b.slots * 4, "topk_weights");
    d.alloc(d.sorted_, b.sorted_ids * 4, "sorted_ids");
    d.alloc(d.eids_, b.expert_ids * 4, "expert_ids");
    d.alloc(d.npad_, 4, "num_padded");
    d.host_y_.assign(b.y_elems, 0);
    d.host_sorted_.assign(b.sorted_ids, 0);
    d.host_eids_.assign(b.expert_ids, 0);
    d.uploaded_ = false;
  }

  static void prepare_problem(D& d, const MoeRouting& routing) {
    if (d.mx_host_.prepare(routing, d.mx_sizes_)) d.uploaded_ = false;
    if (d.uploaded_) return;
    const Mxfp4TuneProblem& p = d.mx_host_.problem();
    auto up = [&](const Buf& to, int64_t offset, const void* data, size_t bytes) {
      if (bytes) d.upload(to, static_cast<size_t>(offset), data, bytes);
    };
    up(d.x_, 0, p.x.data(), p.x.size() * 2);
    up(d.fb_, 0, p.bias.data(), p.bias.size() * 4);
    up(d.ids_, 0, p.topk_ids.data(), p.topk_ids.size() * 4);
    up(d.tw_, 0, p.topk_weights.data(), p.topk_weights.size() * 4);
    // A pageable upload returns once its source is staged: the chunk can be drawn again.
    for (const bool scales : {false, true})
      d.mx_host_.for_each_chunk(scales, [&](int64_t first, int64_t bytes, const uint8_t* data) {
        up(scales ? d.fsc_ : d.fw_, first, data, static_cast<size_t>(bytes));
      });
    d.synchronize();
    d.uploaded_ = true;
  }

  static void verify(D& d, const std::function<void()>& run, Measurement& r) {
    const Mxfp4TuneProblem& p = d.mx_host_.problem();
    const auto elems = static_cast<size_t>(moe_checked_rows(p.t, p.shape.top_k) * p.out_cols());
    d.fill16_async(d.y_, 0xffff, elems);
    const auto start = Clock::now();
    run();
    if (!d.wait(d.opt_.hang_timeout_s)) return mark_hung(r, d.opt_.hang_timeout_s);
    d.verify_seconds_ = seconds_since(start);
    d.download(d.host_y_.data(), d.y_, elems * 2);
    judge_mxfp4_output(d.host_y_, d.mx_host_.reference(), p, r);
  }

  static Measurement measure(D& d, const PackKernel& k, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                             bool cold, int reps) {
    if (!d.mxfp4_active() || shape.op() + "_" + shape.key() != d.shape_key_)
      throw Error("internal: measure_mxfp4() of " + shape.key() + " before begin_mxfp4_shape()");
    try {
      if (!d.ready()) d.set_up();
      d.prepare_mxfp4_problem(routing);
      if (cold) d.flush_function();
    } catch (const CallFailed& e) {
      throw Error("cannot prepare " + d.info_.name + " for " + d.shape_key_ + " at T=" + std::to_string(routing.t) +
                  ": " + e.message);
    }
    const Mxfp4TuneProblem& p = d.mx_host_.problem();
    const Mxfp4Config cfg = parse_mxfp4_config(k.config, k.kind);
    const int64_t cap = moe::sorted_capacity(p.t, shape.top_k, shape.experts, cfg.block_m);
    const LaunchGrid g = mxfp4_grid(shape, cfg, cap, d.info_.compute_units);
    kf_mxfp4_moe_gemm_args args{};
    args.x = d.x_.raw();
    args.weight = static_cast<const uint8_t*>(d.fw_.raw());
    args.scales = static_cast<const uint8_t*>(d.fsc_.raw());
    args.bias = static_cast<const float*>(d.fb_.raw());
    args.topk_weights = static_cast<const float*>(d.tw_.raw());
    args.sorted_ids = static_cast<const int32_t*>(d.sorted_.raw());
    args.expert_ids = static_cast<const int32_t*>(d.eids_.raw());
    args.num_padded = static_cast<const int32_t*>(d.npad_.raw());
    args.y = d.y_.raw();
    args.t = static_cast<int>(p.t);
    args.top_k = static_cast<int>(shape.top_k);
    args.experts = static_cast<int>(shape.experts);
    args.n = static_cast<int>(shape.n);
    args.k = static_cast<int>(shape.k);
    args.swiglu_alpha = kMxfp4SwigluAlpha;
    args.swiglu_limit = kMxfp4SwigluLimit;
    return d.guarded([&](Measurement& r) {
      const Function fn = d.function_of(k);
      const auto run = [&] { d.launch(fn, g, k.threads, &args, D::kLaunchCall); };
      d.run_align(p.topk_ids, p.t, shape.top_k, shape.experts, cfg.block_m, r);
      if (r.disposition.empty()) d.verify_mxfp4(run, r);
      if (r.disposition.empty()) d.time_launches(run, false, cold, reps, r);
    });
  }
};

}  // namespace measure
}  // namespace kf
