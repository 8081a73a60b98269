// HipMeasurer, part 2: one candidate at one M, step for step as on CUDA: verification
// and timing are linear_measure.h, written once for both; here the stream wait and the
// launches.
#include "hip_measurer_detail.h"
#include "linear_measure.h"

namespace kf {
namespace hip_detail {

using namespace measure;
using Steps = LinearSteps<HipMeasurer>;

bool HipMeasurer::wait(double timeout_s) {
  return poll_until_idle(timeout_s, [&] {
    const hipError_t rc = hip_->hipStreamQuery(stream_);
    if (rc == hipErrorNotReady) return false;
    check(rc, "kernel execution");
    return true;
  });
}

bool HipMeasurer::counters_zero() { return Steps::counters_zero(*this); }

bool HipMeasurer::zero_counters() { return Steps::zero_counters(*this); }

void HipMeasurer::launch(hipFunction_t fn, const LaunchGrid& g, int threads, void* args, const char* what) {
  void* params[] = {args};  // the argument struct, by value, is the kernel's only parameter
  check(hip_->hipModuleLaunchKernel(fn, g.x, g.y, g.z, static_cast<unsigned>(threads), 1, 1, g.shared, stream_,
                                    params, nullptr),
        what);
}

void HipMeasurer::launch_flush(hipFunction_t flush) {
  StreamReadArgs a = stream_read_args(flush_.ptr, static_cast<int64_t>(flush_.bytes), sink_.ptr, cus_);
  launch(flush, {a.blocks, 1, 1}, kStreamReadThreads, &a, "hipModuleLaunchKernel (L2 flush)");
}

void HipMeasurer::verify(hipFunction_t fn, const LaunchGrid& g, int threads, void* args, int64_t poison_elems,
                         int64_t read_elems, const Judge& judge, Measurement& r) {
  Steps::verify(*this, fn, g, threads, args, poison_elems, read_elems, judge, r);
}

void HipMeasurer::time_runs(hipFunction_t fn, const LaunchGrid& g, int threads, void* args, bool cold, int reps,
                            Measurement& r) {
  Steps::time_runs(*this, fn, g, threads, args, cold, reps, r);
}

void HipMeasurer::time_launches(const std::function<void()>& run, bool check_counters, bool cold, int reps,
                                Measurement& r) {
  Steps::time_launches(*this, run, check_counters, cold, reps, r);
}

Measurement HipMeasurer::measure(const PackKernel& k, const LinearShape& shape, int64_t m, bool cold, int reps) {
  return Steps::measure(*this, k, shape, m, cold, reps);
}

}  // namespace hip_detail
}  // namespace kf
