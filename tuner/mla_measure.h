// sparse_mla_decode's steps, written once for the CUDA and HIP measurers (D: CudaMeasurer
// or HipMeasurer; cuda_mla_measure.cpp and hip_mla_measure.cpp forward to them): per
// (shape, Q) a fresh problem and its KV cache uploaded a chunk at a time; per kernel, one
// verification run with o, lse and the split partials poisoned, judged against the
// float64 reference of the checked queries (mla_problem.h), then the decode kernel, and
// for a split config the combine kernel after it, timed together (the measurer's
// time_launches).
#pragma once
#include "measure_common.h"
#include "sparse_mla/launch.h"

namespace kf {
namespace measure {

template <class D>
struct MlaSteps {
  using Buf = typename D::Buf;
  using Function = typename D::Function;

  static void begin_shape(D& d, const MlaShape& shape, const std::vector<PlannedKernel>& kernels) {
    for (typename D::Module mod : d.shape_modules_) d.unload(mod);
    d.shape_modules_.clear();
    d.functions_.clear();
    d.moe_ = false;
    d.mla_shape_ = shape;
    d.shape_key_ = std::string(kMlaDecodeOp) + "_" + shape.key();
    d.mla_sizes_ = plan_mla_buffers(shape, kernels);
    d.mla_host_.begin_shape();
    d.uploaded_ = false;
    try {
      if (!d.ready())
        d.set_up();  // allocates the shape's buffers too
      else
        d.alloc_mla_shape();
    } catch (const CallFailed& e) {
      throw Error("cannot set up " + d.info_.name + " for " + d.shape_key_ + ": " + e.message);
    }
  }

  static void alloc_shape(D& d) {
    // Nothing of a linear, MoE or MXFP4 shape is needed here (their alloc_* allocate it again).
    for (Buf* b : {&d.x_, &d.qw_, &d.sc_, &d.qz_, &d.y_, &d.ws_, &d.cnt_, &d.ids_, &d.tw_, &d.sorted_, &d.eids_,
                   &d.npad_, &d.fw_, &d.fsc_, &d.fb_})
      b->release();
    d.host_y_.clear();
    d.host_counters_.clear();
    const MlaShapeBuffers& b = d.mla_sizes_;
    d.alloc(d.mq_, b.q_elems * 2, "q");
    d.alloc(d.mkv_, b.kv_rows * mla::kHeadDim * 2, "the KV cache");
    d.alloc(d.midx_, b.index_ints * 4, "indices");
    d.alloc(d.mxs_, b.extra_ints * 4, "extra_start");
    d.alloc(d.mxc_, b.extra_ints * 4, "extra_count");
    d.alloc(d.mo_, b.o_elems * 2, "o");
    d.alloc(d.mlse_, b.lse_floats * 4, "lse");
    d.alloc(d.mpo_, b.part_o_floats * 4, "the split partials");
    d.alloc(d.mplse_, b.part_lse_floats * 4, "the split partials' lse");
    d.host_o_.assign(b.o_elems, 0);
    d.host_lse_.assign(b.lse_floats, 0.f);
    d.uploaded_ = false;
  }

  static void prepare_problem(D& d, int64_t queries) {
    if (d.mla_host_.prepare(d.mla_shape_, queries, d.mla_sizes_)) d.uploaded_ = false;
    if (d.uploaded_) return;
    const MlaTuneProblem& p = d.mla_host_.problem();
    auto up = [&](const Buf& to, int64_t offset, const void* data, size_t bytes) {
      if (bytes) d.upload(to, static_cast<size_t>(offset), data, bytes);
    };
    up(d.mq_, 0, p.q.data(), p.q.size() * 2);
    up(d.midx_, 0, p.indices.data(), p.indices.size() * 4);
    up(d.mxs_, 0, p.extra_start.data(), p.extra_start.size() * 4);
    up(d.mxc_, 0, p.extra_count.data(), p.extra_count.size() * 4);
    // A pageable upload returns once its source is staged: the chunk can be drawn again.
    d.mla_host_.for_each_kv_chunk([&](int64_t row0, int64_t rows, const uint16_t* data) {
      up(d.mkv_, row0 * mla::kHeadDim * 2, data, static_cast<size_t>(rows * mla::kHeadDim * 2));
    });
    d.synchronize();
    d.uploaded_ = true;
  }

  static void verify(D& d, const std::function<void()>& run, int splits, Measurement& r) {
    const MlaTuneProblem& p = d.mla_host_.problem();
    const int64_t rows = (p.queries + 1) * p.shape.heads;  // with the guard query
    d.fill16_async(d.mo_, 0xffff, static_cast<size_t>(rows * mla::kLatentDim));
    d.fill32_async(d.mlse_, 0xffffffffu, static_cast<size_t>(rows));
    if (splits > 1) {  // else the combine could pass on what an earlier kernel left there
      const auto part = static_cast<size_t>(mla::part_lse_floats(splits, p.queries, p.shape.heads));
      d.fill32_async(d.mpo_, 0xffffffffu, part * mla::kLatentDim);
      d.fill32_async(d.mplse_, 0xffffffffu, part);
    }
    const auto start = Clock::now();
    run();
    if (!d.wait(d.opt_.hang_timeout_s)) return mark_hung(r, d.opt_.hang_timeout_s);
    d.verify_seconds_ = seconds_since(start);
    d.download(d.host_o_.data(), d.mo_, static_cast<size_t>(rows * mla::kLatentDim) * 2);
    d.download(d.host_lse_.data(), d.mlse_, static_cast<size_t>(rows) * 4);
    judge_mla_output(d.host_o_, d.host_lse_, d.mla_host_.reference(), p, r);
  }

  static Measurement measure(D& d, const PackKernel& k, const MlaShape& shape, int64_t queries, bool cold, int reps) {
    if (!d.mla_active() || std::string(kMlaDecodeOp) + "_" + shape.key() != d.shape_key_)
      throw Error("internal: measure_mla() of " + shape.key() + " before begin_mla_shape()");
    try {
      if (!d.ready()) d.set_up();
      d.prepare_mla_problem(queries);
      if (cold) d.flush_function();
    } catch (const CallFailed& e) {
      throw Error("cannot prepare " + d.info_.name + " for " + d.shape_key_ + " at Q=" + std::to_string(queries) +
                  ": " + e.message);
    }
    const MlaTuneProblem& p = d.mla_host_.problem();
    const MlaConfig cfg = parse_mla_config(k.config, k.kind);
    const mla::Grid dg = mla::decode_grid(shape.heads, queries, cfg.block_h, cfg.splits);
    const mla::Grid cg = mla::combine_grid(queries, shape.heads);
    kf_mla_decode_args args = mla_decode_args(p, d.mq_.raw(), d.mkv_.raw(), d.midx_.raw(), d.mxs_.raw(),
                                              d.mxc_.raw(), d.mo_.raw(), d.mlse_.raw(), d.mpo_.raw(), d.mplse_.raw());
    kf_mla_combine_args cargs =
        mla_combine_args(p, cfg.splits, d.mpo_.raw(), d.mplse_.raw(), d.mo_.raw(), d.mlse_.raw());
    const PackKernel* combine = d.combine_[shape.bf16];
    return d.guarded([&](Measurement& r) {
      const Function fn = d.function_of(k);
      Function cfn = nullptr;
      if (cfg.splits > 1) {
        if (!combine)
          throw CallFailed{std::string("the pack has no usable sparse_mla_combine_any_") +
                           (shape.bf16 ? "bf16" : "fp16") + " to merge the split partials with"};
        cfn = d.function_of(*combine);
      }
      const auto run = [&] {
        d.launch(fn, {dg.x, dg.y, dg.z, static_cast<unsigned>(mla_dynamic_shared(cfg))}, k.threads, &args,
                 D::kLaunchCall);
        if (cfn) d.launch(cfn, {cg.x, cg.y, cg.z}, combine->threads, &cargs, D::kLaunchCombine);
      };
      d.verify_mla(run, cfg.splits, r);
      if (r.disposition.empty()) d.time_launches(run, false, cold, reps, r);
    });
  }
};

}  // namespace measure
}  // namespace kf
