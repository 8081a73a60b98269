// CudaMeasurer, part 2: one candidate at one M (see cuda_measurer.h): verify on fresh
// inputs against the float64 reference, then time. The verdicts and statistics are
// measure_common's, shared with the HIP measurer.

#include "cuda_measurer.h"

namespace kf {
namespace cuda_detail {

using namespace measure;

bool CudaMeasurer::wait(double timeout_s) {
  return poll_until_idle(timeout_s, [&] {
    const CUresult rc = ex_->cuStreamQuery(stream_);
    if (rc == CUDA_ERROR_NOT_READY) return false;
    check(rc, "kernel execution");
    return true;
  });
}

bool CudaMeasurer::counters_zero() {
  check(cu_->cuMemcpyDtoH(host_counters_.data(), cnt_.ptr, host_counters_.size() * 4), "cuMemcpyDtoH");
  return all_zero(host_counters_);
}

bool CudaMeasurer::zero_counters() {
  // Every split-K kernel expects zero counters on entry.
  check(ex_->cuMemsetD32Async(cnt_.ptr, 0, host_counters_.size(), stream_), "cuMemsetD32Async");
  return wait(opt_.hang_timeout_s);
}

void CudaMeasurer::launch(CUfunction fn, const LaunchGrid& g, int threads, void* args, const char* what) {
  void* params[] = {args};  // the argument struct, by value, is the kernel's only parameter
  check(cu_->cuLaunchKernel(fn, g.x, g.y, g.z, static_cast<unsigned>(threads), 1, 1, 0, stream_, params, nullptr),
        what);
}

void CudaMeasurer::launch_flush(CUfunction flush) {
  StreamReadArgs a = stream_read_args(flush_.raw(), static_cast<int64_t>(flush_.bytes), sink_.raw(), sms_);
  launch(flush, {a.blocks, 1, 1}, kStreamReadThreads, &a, "cuLaunchKernel (L2 flush)");
}

void CudaMeasurer::verify(CUfunction fn, const LaunchGrid& g, int threads, void* args, int64_t poison_elems,
                          int64_t read_elems, const Judge& judge, Measurement& r) {
  if (poison_elems > 0)  // 0: the caller poisoned y itself
    check(ex_->cuMemsetD16Async(y_.ptr, 0xffff, static_cast<size_t>(poison_elems), stream_), "cuMemsetD16Async");
  const auto start = Clock::now();
  launch(fn, g, threads, args, "cuLaunchKernel");
  if (!wait(opt_.hang_timeout_s)) return mark_hung(r, opt_.hang_timeout_s);
  verify_seconds_ = seconds_since(start);
  check(cu_->cuMemcpyDtoH(host_y_.data(), y_.ptr, static_cast<size_t>(read_elems) * 2), "cuMemcpyDtoH");
  judge(host_y_, r);
  if (!counters_zero()) {
    flag_incorrect(r, "split-K counters left non-zero");
    if (!zero_counters()) return mark_hung(r, opt_.hang_timeout_s);
  }
}

void CudaMeasurer::time_runs(CUfunction fn, const LaunchGrid& g, int threads, void* args, bool cold, int reps,
                             Measurement& r) {
  time_launches([&] { launch(fn, g, threads, args, "cuLaunchKernel"); }, true, cold, reps, r);
}

void CudaMeasurer::time_launches(const std::function<void()>& run, bool check_counters, bool cold, int reps,
                                 Measurement& r) {
  const CUfunction flush = cold ? flush_function() : nullptr;
  while (events_.size() < static_cast<size_t>(2 * reps)) {
    CUevent e = nullptr;
    check(ex_->cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    events_.push_back(e);
  }
  run();  // warm-up: clocks, instruction cache
  // All reps queued back to back, each kernel alone between its two events (the flush
  // before the first event), then one wait: no host round trip inside the timings.
  for (int i = 0; i < reps; ++i) {
    if (flush) launch_flush(flush);
    check(ex_->cuEventRecord(events_[2 * i], stream_), "cuEventRecord");
    run();
    check(ex_->cuEventRecord(events_[2 * i + 1], stream_), "cuEventRecord");
  }
  const double timeout = timed_runs_timeout(opt_.hang_timeout_s, reps, verify_seconds_);
  if (!wait(timeout)) return mark_hung(r, timeout);
  std::vector<double> us(reps);
  for (int i = 0; i < reps; ++i) {
    float ms = 0;
    check(ex_->cuEventElapsedTime(&ms, events_[2 * i], events_[2 * i + 1]), "cuEventElapsedTime");
    us[i] = 1000.0 * ms;
  }
  // Checked again so that a kernel which breaks its contract only sometimes is blamed
  // itself, not the next one verified.
  if (check_counters && !counters_zero()) {
    if (!zero_counters()) return mark_hung(r, opt_.hang_timeout_s);
    return flag_incorrect(r, "split-K counters left non-zero by the timed runs");
  }
  record_timing(us, r);
}

Measurement CudaMeasurer::measure(const PackKernel& k, const LinearShape& shape, int64_t m, bool cold, int reps) {
  if (moe_ || shape.key() != shape_key_) throw Error("internal: measure() of " + shape.key() + " before begin_shape()");
  try {
    if (!ctx_ok_) setup_context();
    prepare_problem(m);
    if (cold) flush_function();
  } catch (const CallFailed& e) {
    throw Error("cannot prepare " + info_.name + " for " + shape_key_ + " at M=" + std::to_string(m) + ": " +
                e.message);
  }
  const LaunchGrid g = linear_grid(shape, parse_linear_config(k.kind, k.config), m);
  kf_linear_args args = linear_args(shape, m, x_.raw(), qw_.raw(), sc_.raw(), qz_.raw(), y_.raw(), ws_.raw(), cnt_.raw());
  return guarded([&](Measurement& r) {
    const CUfunction fn = function_of(k);
    const int64_t rows = checked_rows(m, sizes_);
    verify(fn, g, k.threads, &args, sizes_.y_elems, rows * shape.n,
           [&](const std::vector<uint16_t>& y, Measurement& v) { judge_output(y, host_.reference(), shape, m, rows, v); },
           r);
    if (r.disposition.empty()) time_runs(fn, g, k.threads, &args, cold, reps, r);
  });
}

}  // namespace cuda_detail
}  // namespace kf
