// The MoE GEMMs' steps, written once for the CUDA and HIP measurers (D: CudaMeasurer or
// HipMeasurer; cuda_moe_measure.cpp and hip_moe_measure.cpp forward to them). Per
// kernel, moe_align sorts the routed slots for its block_m on the GPU, the host checks
// them, then the GEMM is verified against the float64 reference of the checked slots and
// timed like a linear kernel (the measurer's verify / time_runs).
// A gemm1 with the fused SiLU epilogue (_silu) is judged on its N/2-wide h against
// silu(gate) * up of the reference; the pack's moe_silu_mul, a candidate of gemm1 shapes,
// is verified and timed on its own problem (T * top_k rows of N/2). A gemm2 summing over
// top_k (_red) runs after an align that zeroes y's token rows and is judged on them
// against the sums of the reference rows; the pack's moe_sum, a candidate of gemm2
// shapes, is verified and timed on its own problem (T rows of N, the batch's routing).
#pragma once
#include "measure_common.h"
#include "w4a16_moe/args.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace measure {

template <class D>
struct MoeSteps {
  using Buf = typename D::Buf;
  using Function = typename D::Function;

  static void begin_shape(D& d, const MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
    for (typename D::Module mod : d.shape_modules_) d.unload(mod);
    d.shape_modules_.clear();
    d.functions_.clear();
    d.moe_ = true;
    d.moe_shape_ = shape;
    d.shape_key_ = shape.op() + "_" + shape.key();
    d.moe_sizes_ = plan_moe_buffers(shape, kernels);
    d.moe_host_.begin_shape(shape);
    d.weights_uploaded_ = d.uploaded_ = false;
    try {
      if (!d.ready())
        d.set_up();  // allocates the shape's buffers too
      else
        d.alloc_moe_shape();
    } catch (const CallFailed& e) {
      throw Error("cannot set up " + d.info_.name + " for " + d.shape_key_ + ": " + e.message);
    }
  }

  static void alloc_shape(D& d) {
    const MoeShapeBuffers& b = d.moe_sizes_;
    d.alloc(d.x_, b.x_elems * 2, "x");
    d.alloc(d.qw_, b.qweight_words * 4, "the expert qweights");
    d.alloc(d.sc_, b.scales_elems * 2, "the expert scales");
    d.alloc(d.qz_, b.qzeros_words * 4, "the expert qzeros");
    d.alloc(d.y_, b.y_elems * 2, "y");
    d.alloc(d.ws_, b.workspace_floats * 4, "the split-K workspace");
    d.alloc(d.cnt_, b.counter_ints * 4, "the split-K counters");
    d.alloc(d.ids_, b.slots * 4, "topk_ids");
    d.alloc(d.tw_, b.slots * 4, "topk_weights");
    d.alloc(d.sorted_, b.sorted_ids * 4, "sorted_ids");
    d.alloc(d.eids_, b.expert_ids * 4, "expert_ids");
    d.alloc(d.npad_, 4, "num_padded");
    d.fill32(d.cnt_, 0, d.cnt_.bytes / 4);
    d.synchronize();
    d.host_y_.assign(b.y_elems, 0);
    d.host_counters_.assign(d.cnt_.bytes / 4, 0);
    d.host_sorted_.assign(b.sorted_ids, 0);
    d.host_eids_.assign(b.expert_ids, 0);
    d.uploaded_ = d.weights_uploaded_ = false;
  }

  static void prepare_problem(D& d, const MoeRouting& routing) {
    if (d.moe_host_.prepare(routing, d.moe_sizes_)) d.uploaded_ = false;
    const MoeProblem& p = d.moe_host_.problem();
    auto up = [&](const Buf& b, const void* data, size_t bytes) {
      if (bytes) d.upload(b, 0, data, bytes);
    };
    if (!d.weights_uploaded_) {
      up(d.qw_, p.qweight.data(), p.qweight.size() * 4);
      up(d.sc_, p.scales.data(), p.scales.size() * 2);
      up(d.qz_, p.qzeros.data(), p.qzeros.size() * 4);
    }
    if (!d.uploaded_) {
      up(d.x_, p.x.data(), p.x.size() * 2);
      up(d.ids_, p.topk_ids.data(), p.topk_ids.size() * 4);
      up(d.tw_, p.topk_weights.data(), p.topk_weights.size() * 4);
    }
    d.synchronize();  // pageable uploads may return before their DMA ends
    d.weights_uploaded_ = d.uploaded_ = true;
  }

  static Function align_function(D& d) {
    if (d.align_fn_) return d.align_fn_;
    if (!d.align_) throw CallFailed{"the pack has no usable moe_align_any to sort the routed slots with"};
    d.load(&d.align_module_, d.align_->code_object.data(), D::kLoadAlign);
    d.get_function(&d.align_fn_, d.align_module_, d.align_->name.c_str());
    return d.align_fn_;
  }

  static void run_align(D& d, const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                        int block_m, Measurement& r, int64_t zero_count) {
    const Function fn = d.align_function();
    const int64_t cap = moe::sorted_capacity(t, top_k, experts, block_m);
    // Poisoned, so that what an earlier block_m left there cannot pass for this one's.
    d.fill32_async(d.sorted_, 0xfffffffe, d.sorted_.bytes / 4);
    d.fill32_async(d.eids_, 0xfffffffe, d.eids_.bytes / 4);
    d.fill32_async(d.npad_, 0xfffffffe, 1);
    kf_moe_align_args a{static_cast<const int32_t*>(d.ids_.raw()), static_cast<int32_t*>(d.sorted_.raw()),
                        static_cast<int32_t*>(d.eids_.raw()), static_cast<int32_t*>(d.npad_.raw()),
                        static_cast<int>(t), static_cast<int>(top_k), static_cast<int>(experts), block_m,
                        zero_count > 0 ? d.y_.raw() : nullptr, zero_count};
    d.launch(fn, {static_cast<unsigned>(moe::align_blocks(zero_count)), 1, 1}, d.align_->threads, &a, D::kLaunchAlign);
    if (!d.wait(d.opt_.hang_timeout_s)) return mark_hung(r, d.opt_.hang_timeout_s);
    int32_t num_padded = 0;
    d.download(&num_padded, d.npad_, 4);
    d.download(d.host_sorted_.data(), d.sorted_, static_cast<size_t>(cap) * 4);
    d.download(d.host_eids_.data(), d.eids_, static_cast<size_t>(cap / block_m) * 4);
    const std::vector<int32_t> sorted(d.host_sorted_.begin(), d.host_sorted_.begin() + cap);
    const std::vector<int32_t> eids(d.host_eids_.begin(), d.host_eids_.begin() + cap / block_m);
    const std::string why = check_moe_align(topk_ids, t, top_k, experts, block_m, sorted, eids, num_padded);
    if (!why.empty()) {
      r.disposition = "failed";
      r.message = "moe_align_any (block_m " + std::to_string(block_m) + ") sorted the slots wrongly: " + why;
    }
  }

  static Measurement measure(D& d, const PackKernel& k, const MoeShape& shape, const MoeRouting& routing, bool cold,
                             int reps) {
    if (!d.moe_ || shape.op() + "_" + shape.key() != d.shape_key_)
      throw Error("internal: measure_moe() of " + shape.key() + " before begin_moe_shape()");
    try {
      if (!d.ready()) d.set_up();
      d.prepare_moe_problem(routing);
      if (cold) d.flush_function();
    } catch (const CallFailed& e) {
      throw Error("cannot prepare " + d.info_.name + " for " + d.shape_key_ + " at T=" + std::to_string(routing.t) +
                  ": " + e.message);
    }
    if (k.op == "moe_silu_mul") {
      // What an unfused gemm1 is followed by in a layer: rows T * top_k, n = N/2, on its
      // own random input (SiluMulProblem), output in y.
      const int64_t rows = routing.t * shape.top_k, n = shape.n / 2;
      std::mt19937_64 rng(d.opt_.seed ^ static_cast<uint64_t>(rows));
      const SiluMulProblem sp = make_silu_mul_problem(rows, n, shape.bf16, rng);
      kf_moe_silu_mul_args args{nullptr, d.y_.raw(), static_cast<int>(rows), static_cast<int>(n)};
      const LaunchGrid g{moe::elementwise_blocks(rows, n), 1, 1};
      return d.guarded([&](Measurement& r) {
        const Function fn = d.function_of(k);
        Buf h1;
        try {
          d.alloc(h1, static_cast<int64_t>(sp.h1.size()) * 2, "moe_silu_mul's input");
        } catch (const Error& e) {
          throw CallFailed{e.what()};
        }
        d.upload(h1, 0, sp.h1.data(), sp.h1.size() * 2);
        args.x = h1.raw();
        d.verify(fn, g, k.threads, &args, d.moe_sizes_.y_elems, (rows + kGuardRows) * n,
                 [&](const std::vector<uint16_t>& y, Measurement& v) { judge_silu_mul_output(y, sp, v); }, r);
        if (r.disposition.empty()) d.time_runs(fn, g, k.threads, &args, cold, reps, r);
        if (r.fatal) h1.forget();  // a kernel still running: freeing its input would wait for it
      });
    }
    if (k.op == "moe_sum") {
      // What a gemm2 writing one row per slot is followed by in a layer: T tokens of N,
      // the batch's routing (in ids_), on its own random input (SumProblem), output in y.
      const int64_t t = routing.t, n = shape.n;
      std::mt19937_64 rng(d.opt_.seed ^ static_cast<uint64_t>(t * shape.top_k));
      const SumProblem sp =
          make_sum_problem(d.moe_host_.problem().topk_ids, t, shape.top_k, shape.experts, n, shape.bf16, rng);
      kf_moe_sum_args args{nullptr, static_cast<const int32_t*>(d.ids_.raw()), d.y_.raw(), static_cast<int>(t),
                           static_cast<int>(shape.top_k), static_cast<int>(shape.experts), static_cast<int>(n)};
      const LaunchGrid g{moe::elementwise_blocks(t, n), 1, 1};
      return d.guarded([&](Measurement& r) {
        const Function fn = d.function_of(k);
        Buf xs;
        try {
          d.alloc(xs, static_cast<int64_t>(sp.x.size()) * 2, "moe_sum's input");
        } catch (const Error& e) {
          throw CallFailed{e.what()};
        }
        d.upload(xs, 0, sp.x.data(), sp.x.size() * 2);
        args.x = xs.raw();
        d.verify(fn, g, k.threads, &args, d.moe_sizes_.y_elems, (t + kGuardRows) * n,
                 [&](const std::vector<uint16_t>& y, Measurement& v) { judge_sum_output(y, sp, v); }, r);
        if (r.disposition.empty()) d.time_runs(fn, g, k.threads, &args, cold, reps, r);
        if (r.fatal) xs.forget();  // a kernel still running: freeing its input would wait for it
      });
    }
    const LinearConfig cfg = parse_linear_config(k.kind, k.config);
    const int64_t t = routing.t;
    const int64_t cap = moe::sorted_capacity(t, shape.top_k, shape.experts, cfg.block_m);
    const w4a16::Grid grid =
        moe::gemm_grid(cfg.kind == LinearKind::prefill || cfg.kind == LinearKind::wgmma, shape.n, cap, cfg.block_m, cfg.block_n, cfg.split_k);
    const LaunchGrid g{grid.x, grid.y, grid.z, static_cast<unsigned>(linear_dynamic_shared(shape.expert(), cfg))};
    kf_moe_gemm_args args{d.x_.raw(),
                          d.qw_.raw(),
                          d.sc_.raw(),
                          shape.asym ? d.qz_.raw() : nullptr,
                          static_cast<const float*>(d.tw_.raw()),
                          static_cast<const int32_t*>(d.sorted_.raw()),
                          static_cast<const int32_t*>(d.eids_.raw()),
                          static_cast<const int32_t*>(d.npad_.raw()),
                          d.y_.raw(),
                          static_cast<float*>(d.ws_.raw()),
                          static_cast<int*>(d.cnt_.raw()),
                          static_cast<int>(t),
                          static_cast<int>(shape.top_k),
                          static_cast<int>(shape.experts),
                          static_cast<int>(shape.n),
                          static_cast<int>(shape.k),
                          shape.expert().effective_group()};
    return d.guarded([&](Measurement& r) {
      const Function fn = d.function_of(k);
      // A gemm2 summing over top_k (_red) adds into y [T, N]: y poisoned, its T token rows
      // zeroed by the align launch (as a layer runs it), then the kernel with the slots the
      // reference does not check weighted 0 (reduced_check_weights).
      if (cfg.red) d.fill16_async(d.y_, 0xffff, static_cast<size_t>(d.moe_sizes_.y_elems));
      d.run_align(d.moe_host_.problem().topk_ids, t, shape.top_k, shape.experts, cfg.block_m, r,
                  cfg.red ? t * shape.n : 0);
      if (cfg.red) {
        if (!r.disposition.empty()) return;
        const MoeProblem& p = d.moe_host_.problem();
        auto upload_weights = [&](const std::vector<float>& w) { d.upload(d.tw_, 0, w.data(), w.size() * 4); };
        if (d.moe_host_.reference().sampled) upload_weights(reduced_check_weights(p, d.moe_host_.reference()));
        if (r.disposition.empty())
          d.verify(fn, g, k.threads, &args, 0, moe_reduced_rows(t) * shape.n,
                   [&](const std::vector<uint16_t>& y, Measurement& v) {
                     judge_moe_reduced_output(y, d.moe_host_.reference(), shape, t, v);
                   },
                   r);
        if (d.moe_host_.reference().sampled && !r.fatal) upload_weights(p.topk_weights);
        if (r.disposition.empty()) d.time_runs(fn, g, k.threads, &args, cold, reps, r);
        return;
      }
      const int64_t rows = moe_checked_rows(t, shape.top_k);
      // A fused SiLU gemm1 writes h: N/2 columns.
      if (r.disposition.empty())
        d.verify(fn, g, k.threads, &args, d.moe_sizes_.y_elems, rows * (cfg.silu ? shape.n / 2 : shape.n),
                 [&](const std::vector<uint16_t>& y, Measurement& v) {
                   judge_moe_output(y, d.moe_host_.reference(), shape, t, v, cfg.silu);
                 },
                 r);
      if (r.disposition.empty()) d.time_runs(fn, g, k.threads, &args, cold, reps, r);
    });
  }
};

}  // namespace measure
}  // namespace kf
