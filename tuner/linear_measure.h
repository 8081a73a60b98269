// One candidate at one M, and the verification and timing every family uses, written
// once for the CUDA and HIP measurers (D: CudaMeasurer or HipMeasurer; cuda_measure.cpp
// and hip_measure.cpp forward to them and keep the stream wait, the launch and the L2
// flush launch; the linear shape's buffers and problem too, for cuda_measurer.cpp and
// hip_measurer.cpp): verify on fresh inputs against the float64 reference, then time: one
// warm-up, then per rep the flush (cold), event, kernel(s), event, all queued on one
// stream and read back once. The verdicts and statistics are measure_common's.
#pragma once
#include "measure_common.h"
#include "mla_family.h"
#include "mxfp4_family.h"

namespace kf {
namespace measure {

template <class D>
struct LinearSteps {
  using Function = typename D::Function;
  using Event = typename D::Event;

  static void begin_shape(D& d, const LinearShape& shape, const std::vector<PlannedKernel>& kernels) {
    for (typename D::Module mod : d.shape_modules_) d.unload(mod);
    d.shape_modules_.clear();
    d.functions_.clear();
    d.moe_ = false;
    d.shape_ = shape;
    d.shape_key_ = shape.key();
    d.sizes_ = plan_shape_buffers(shape, kernels);
    d.host_.invalidate();
    try {
      if (!d.ready())
        d.set_up();  // allocates the shape's buffers too
      else
        d.alloc_shape();
    } catch (const CallFailed& e) {
      throw Error("cannot set up " + d.info_.name + " for " + d.shape_key_ + ": " + e.message);
    }
  }

  static void alloc_shape(D& d) {
    const ShapeBuffers& b = d.sizes_;
    d.alloc(d.x_, b.x_elems * 2, "x");
    d.alloc(d.qw_, b.qweight_words * 4, "qweight");
    d.alloc(d.sc_, b.scales_elems * 2, "scales");
    d.alloc(d.qz_, b.qzeros_words * 4, "qzeros");
    d.alloc(d.y_, b.y_elems * 2, "y");
    d.alloc(d.ws_, b.workspace_floats * 4, "the split-K workspace");
    d.alloc(d.cnt_, b.counter_ints * 4, "the split-K counters");
    // Zeroed once: every kernel leaves the counters zero again (args.h).
    d.fill32(d.cnt_, 0, d.cnt_.bytes / 4);
    d.synchronize();
    d.host_y_.assign(b.y_elems, 0);
    d.host_counters_.assign(d.cnt_.bytes / 4, 0);
    d.uploaded_ = false;
  }

  static void prepare_problem(D& d, int64_t m) {
    if (d.host_.prepare(d.shape_, m, d.sizes_)) d.uploaded_ = false;
    if (d.uploaded_) return;
    const LinearProblem& p = d.host_.problem();
    auto up = [&](const typename D::Buf& b, const void* data, size_t bytes) {
      if (bytes) d.upload(b, 0, data, bytes);
    };
    up(d.x_, p.x.data(), p.x.size() * 2);
    up(d.qw_, p.qweight.data(), p.qweight.size() * 4);
    up(d.sc_, p.scales.data(), p.scales.size() * 2);
    up(d.qz_, p.qzeros.data(), p.qzeros.size() * 4);
    d.synchronize();  // pageable uploads may return before their DMA ends
    d.uploaded_ = true;
  }

  // The kernel's function, its module loaded once per shape (freed by the next
  // begin_*_shape).
  static Function function_of(D& d, const PackKernel& k) {
    const auto it = d.functions_.find(k.name);
    if (it != d.functions_.end()) return it->second;
    typename D::Module mod = nullptr;
    d.load(&mod, k.code_object.data(), D::kLoadCall);
    d.shape_modules_.push_back(mod);
    Function fn = nullptr;
    d.get_function(&fn, mod, k.name.c_str());
    // A skinny ring above 48 KiB and a wgmma ring are dynamic shared memory, which the
    // kernel must be allowed once before its launches pass it (LaunchGrid::shared).
    // (The MoE GEMMs' kernels come through here too: their shape is one expert's; the
    // MXFP4 ones' and sparse MLA's sizes depend on the config alone.)
    if (k.kind == "wgmma" && k.op == kMlaDecodeOp) {
      d.allow_dynamic_shared(fn, mla_dynamic_shared(parse_mla_config(k.config, k.kind)));
    } else if (k.kind == "wgmma" && (k.op == "mxfp4_moe_gemm1" || k.op == "mxfp4_moe_gemm2")) {
      d.allow_dynamic_shared(fn, mxfp4_dynamic_shared(parse_mxfp4_config(k.config, k.kind)));
    } else if (k.kind == "skinny" || k.kind == "wgmma") {
      const LinearShape shape = k.op == "w4a16_linear" ? parse_linear_shape(k.shape) : parse_moe_shape(k.op, k.shape).expert();
      if (const int bytes = linear_dynamic_shared(shape, parse_linear_config(k.kind, k.config)); bytes > 0)
        d.allow_dynamic_shared(fn, bytes);
    }
    return d.functions_[k.name] = fn;
  }

  static Function flush_function(D& d) {
    if (d.flush_fn_) return d.flush_fn_;
    if (!d.util_) throw CallFailed{"the pack has no kf_util_stream_read to flush L2 with"};
    d.load(&d.util_module_, d.util_->code_object.data(), D::kLoadFlush);
    d.get_function(&d.flush_fn_, d.util_module_, "kf_util_stream_read");
    return d.flush_fn_;
  }

  static bool counters_zero(D& d) {
    d.download(d.host_counters_.data(), d.cnt_, d.host_counters_.size() * 4);
    return all_zero(d.host_counters_);
  }

  static bool zero_counters(D& d) {
    // Every split-K kernel expects zero counters on entry.
    d.fill32_async(d.cnt_, 0, d.host_counters_.size());
    return d.wait(d.opt_.hang_timeout_s);
  }

  static void verify(D& d, Function fn, const LaunchGrid& g, int threads, void* args, int64_t poison_elems,
                     int64_t read_elems, const typename D::Judge& judge, Measurement& r) {
    if (poison_elems > 0)  // 0: the caller poisoned y itself
      d.fill16_async(d.y_, 0xffff, static_cast<size_t>(poison_elems));
    const auto start = Clock::now();
    d.launch(fn, g, threads, args, D::kLaunchCall);
    if (!d.wait(d.opt_.hang_timeout_s)) return mark_hung(r, d.opt_.hang_timeout_s);
    d.verify_seconds_ = seconds_since(start);
    d.download(d.host_y_.data(), d.y_, static_cast<size_t>(read_elems) * 2);
    judge(d.host_y_, r);
    if (!d.counters_zero()) {
      flag_incorrect(r, "split-K counters left non-zero");
      if (!d.zero_counters()) return mark_hung(r, d.opt_.hang_timeout_s);
    }
  }

  static void time_runs(D& d, Function fn, const LaunchGrid& g, int threads, void* args, bool cold, int reps,
                        Measurement& r) {
    d.time_launches([&] { d.launch(fn, g, threads, args, D::kLaunchCall); }, true, cold, reps, r);
  }

  static void time_launches(D& d, const std::function<void()>& run, bool check_counters, bool cold, int reps,
                            Measurement& r) {
    const Function flush = cold ? d.flush_function() : nullptr;
    while (d.events_.size() < static_cast<size_t>(2 * reps)) d.events_.push_back(d.create_event());
    run();  // warm-up: clocks, instruction cache
    // Each rep: the flush, then the kernel alone between its two events, then a wait for
    // it before the next rep is queued, as bench/ times. With every rep queued back to back
    // the medians came out 0.6-1.2 us higher, spread over ~1.1 us from p10 to p90 against
    // ~0.3, and near candidates swapped places from run to run (bench/NOTES.md linear v57b).
    const double timeout = timed_runs_timeout(d.opt_.hang_timeout_s, 1, d.verify_seconds_);
    for (int i = 0; i < reps; ++i) {
      if (flush) d.launch_flush(flush);
      d.record(d.events_[2 * i]);
      run();
      d.record(d.events_[2 * i + 1]);
      if (!d.wait(timeout)) return mark_hung(r, timeout);
    }
    std::vector<double> us(reps);
    for (int i = 0; i < reps; ++i) us[i] = 1000.0 * d.elapsed_ms(d.events_[2 * i], d.events_[2 * i + 1]);
    // Checked again so that a kernel which breaks its contract only sometimes is blamed
    // itself, not the next one verified.
    if (check_counters && !d.counters_zero()) {
      if (!d.zero_counters()) return mark_hung(r, d.opt_.hang_timeout_s);
      return flag_incorrect(r, "split-K counters left non-zero by the timed runs");
    }
    record_timing(us, r);
  }

  static Measurement measure(D& d, const PackKernel& k, const LinearShape& shape, int64_t m, bool cold, int reps) {
    if (d.moe_ || shape.key() != d.shape_key_)
      throw Error("internal: measure() of " + shape.key() + " before begin_shape()");
    try {
      if (!d.ready()) d.set_up();
      d.prepare_problem(m);
      if (cold) d.flush_function();
    } catch (const CallFailed& e) {
      throw Error("cannot prepare " + d.info_.name + " for " + d.shape_key_ + " at M=" + std::to_string(m) + ": " +
                  e.message);
    }
    const LaunchGrid g = linear_grid(shape, parse_linear_config(k.kind, k.config), m, d.info_.compute_units);
    kf_linear_args args = linear_args(shape, m, d.x_.raw(), d.qw_.raw(), d.sc_.raw(), d.qz_.raw(), d.y_.raw(),
                                      d.ws_.raw(), d.cnt_.raw());
    return d.guarded([&](Measurement& r) {
      const Function fn = d.function_of(k);
      const int64_t rows = checked_rows(m, d.sizes_);
      d.verify(fn, g, k.threads, &args, d.sizes_.y_elems, rows * shape.n,
               [&](const std::vector<uint16_t>& y, Measurement& v) {
                 judge_output(y, d.host_.reference(), shape, m, rows, v);
               },
               r);
      if (r.disposition.empty()) d.time_runs(fn, g, k.threads, &args, cold, reps, r);
    });
  }
};

}  // namespace measure
}  // namespace kf
