// CudaMeasurer, part 2: one candidate at one M (see cuda_measurer.h): verify on fresh
// inputs against the float64 reference, then time.
#include <cmath>
#include <cstdio>
#include <thread>

#include "cuda_measurer.h"

namespace kf {
namespace cuda_detail {

namespace {

using Clock = std::chrono::steady_clock;

// Host copy of kf_stream_read_args and kStreamReadThreads (templates/util/stream_read.h):
// that header includes the device portability layer and cannot be compiled on the host.
struct StreamReadArgs {
  const void* data;
  unsigned long long bytes;
  unsigned int* sink;
  unsigned int blocks;
  unsigned int reserved;
};
static_assert(sizeof(StreamReadArgs) == 32, "must match kf_stream_read_args");
constexpr int kStreamReadThreads = 256;  // its KF_LAUNCH_BOUNDS(256)

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void mark_hung(Measurement& r, double waited_s) {
  r = Measurement{};
  r.disposition = "failed";
  char msg[128];
  std::snprintf(msg, sizeof msg, "still running after %.1f s (hung); the process must exit to free the GPU", waited_s);
  r.message = msg;
  r.fatal = true;
}

}  // namespace

bool CudaMeasurer::wait(double timeout_s) {
  const auto start = Clock::now();
  for (;;) {
    const CUresult rc = ex_->cuStreamQuery(stream_);
    if (rc != CUDA_ERROR_NOT_READY) {
      check(rc, "kernel execution");
      return true;
    }
    if (seconds_since(start) > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

bool CudaMeasurer::counters_zero() {
  check(cu_->cuMemcpyDtoH(host_counters_.data(), cnt_.ptr, host_counters_.size() * 4), "cuMemcpyDtoH");
  for (int32_t c : host_counters_)
    if (c != 0) return false;
  return true;
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
  StreamReadArgs a{};
  a.data = flush_.raw();
  a.bytes = flush_.bytes;  // a multiple of 1 MiB (device_plan.h), as stream_read needs 16
  a.sink = static_cast<unsigned int*>(sink_.raw());
  a.blocks = static_cast<unsigned>(sms_) * 8;  // 8 x 256 threads fill an SM; the kernel strides by it
  launch(flush, {a.blocks, 1, 1}, kStreamReadThreads, &a, "cuLaunchKernel (L2 flush)");
}

void CudaMeasurer::verify(CUfunction fn, const LaunchGrid& g, int threads, kf_linear_args& args, int64_t m,
                          Measurement& r) {
  const int64_t n = shape_.n;
  check(ex_->cuMemsetD16Async(y_.ptr, 0xffff, static_cast<size_t>(sizes_.y_elems), stream_), "cuMemsetD16Async");
  const auto start = Clock::now();
  launch(fn, g, threads, &args, "cuLaunchKernel");
  if (!wait(opt_.hang_timeout_s)) return mark_hung(r, opt_.hang_timeout_s);
  verify_seconds_ = seconds_since(start);
  // The M rows and the guard rows after them (where a last tile written whole lands).
  const int64_t rows = std::min(m + kGuardRows, sizes_.max_m + kGuardRows);
  check(cu_->cuMemcpyDtoH(host_y_.data(), y_.ptr, static_cast<size_t>(rows * n) * 2), "cuMemcpyDtoH");
  const double err = normalised_error(host_y_, ref_, m, n, shape_.bf16);
  const double tol = linear_tolerance(shape_.bf16);
  r.max_rel_err = err;
  char why[160] = "";
  if (std::isinf(err))
    std::snprintf(why, sizeof why, "output not fully written or not finite");
  else if (!(err <= tol))
    std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", err, tol);
  for (int64_t i = m * n; i < rows * n && !why[0]; ++i)
    if (host_y_[i] != 0xffff) std::snprintf(why, sizeof why, "wrote past row M (row %lld)", static_cast<long long>(i / n));
  if (!counters_zero()) {
    if (!why[0]) std::snprintf(why, sizeof why, "split-K counters left non-zero");
    if (!zero_counters()) return mark_hung(r, opt_.hang_timeout_s);
  }
  if (why[0]) {
    r.disposition = "incorrect";
    r.message = why;
  }
}

void CudaMeasurer::time_runs(CUfunction fn, const LaunchGrid& g, int threads, kf_linear_args& args, bool cold,
                             int reps, Measurement& r) {
  const CUfunction flush = cold ? flush_function() : nullptr;
  while (events_.size() < static_cast<size_t>(2 * reps)) {
    CUevent e = nullptr;
    check(ex_->cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    events_.push_back(e);
  }
  launch(fn, g, threads, &args, "cuLaunchKernel");  // warm-up: clocks, instruction cache
  // All reps queued back to back, each kernel alone between its two events (the flush
  // before the first event), then one wait: no host round trip inside the timings.
  for (int i = 0; i < reps; ++i) {
    if (flush) launch_flush(flush);
    check(ex_->cuEventRecord(events_[2 * i], stream_), "cuEventRecord");
    launch(fn, g, threads, &args, "cuLaunchKernel");
    check(ex_->cuEventRecord(events_[2 * i + 1], stream_), "cuEventRecord");
  }
  const double timeout = opt_.hang_timeout_s + 4.0 * (reps + 1) * verify_seconds_;
  if (!wait(timeout)) return mark_hung(r, timeout);
  std::vector<double> us(reps);
  for (int i = 0; i < reps; ++i) {
    float ms = 0;
    check(ex_->cuEventElapsedTime(&ms, events_[2 * i], events_[2 * i + 1]), "cuEventElapsedTime");
    us[i] = 1000.0 * ms;
  }
  // Checked again so that a kernel which breaks its contract only sometimes is blamed
  // itself, not the next one verified.
  if (!counters_zero()) {
    if (!zero_counters()) return mark_hung(r, opt_.hang_timeout_s);
    r.disposition = "incorrect";
    r.message = "split-K counters left non-zero by the timed runs";
    return;
  }
  const TimingStats t = timing_stats(us);
  if (!(t.median > 0)) {
    r.disposition = "failed";
    r.message = "the event timer measured no time";
    return;
  }
  r.disposition = "passed";
  r.median_us = t.median;
  r.min_us = t.min;
  r.reps = reps;
}

Measurement CudaMeasurer::measure(const PackKernel& k, const LinearShape& shape, int64_t m, bool cold, int reps) {
  if (shape.key() != shape_key_) throw Error("internal: measure() of " + shape.key() + " before begin_shape()");
  try {
    if (!ctx_ok_) setup_context();
    prepare_problem(m);
    if (cold) flush_function();
  } catch (const CallFailed& e) {
    throw Error("cannot prepare " + info_.name + " for " + shape_key_ + " at M=" + std::to_string(m) + ": " +
                e.message);
  }
  const LinearConfig cfg = parse_linear_config(k.kind, k.config);
  const LaunchGrid g = linear_grid(shape, cfg, m);
  kf_linear_args args{x_.raw(), qw_.raw(), sc_.raw(), qz_.raw(), y_.raw(), static_cast<float*>(ws_.raw()),
                      static_cast<int*>(cnt_.raw()), static_cast<int>(m), static_cast<int>(shape.n),
                      static_cast<int>(shape.k), shape.effective_group()};
  Measurement r;
  try {
    const CUfunction fn = function_of(k);
    verify(fn, g, k.threads, args, m, r);
    if (r.disposition.empty()) time_runs(fn, g, k.threads, args, cold, reps, r);
  } catch (const CallFailed& e) {
    const double err = r.max_rel_err;
    r = Measurement{};
    r.disposition = "failed";
    r.message = e.message;
    r.max_rel_err = err;
    // A fault (illegal address, trap, ...) poisons the context for good; a refused
    // launch (too many resources, bad image) leaves it usable.
    if (cu_->cuCtxSynchronize() != CUDA_SUCCESS) {
      r.message += "; GPU context reset";
      drop_context(true);
    }
  }
  if (r.fatal) hung_ = true;
  return r;
}

}  // namespace cuda_detail
}  // namespace kf
