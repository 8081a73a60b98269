// CudaMeasurer, part 2: one candidate at one M (see cuda_measurer.h). Verification and
// timing are linear_measure.h, written once for CUDA and HIP; here the stream wait and
// the launches.

#include "cuda_measurer.h"
#include "linear_measure.h"

namespace kf {
namespace cuda_detail {

using namespace measure;
using Steps = LinearSteps<CudaMeasurer>;

bool CudaMeasurer::wait(double timeout_s) {
  return poll_until_idle(timeout_s, [&] {
    const CUresult rc = ex_->cuStreamQuery(stream_);
    if (rc == CUDA_ERROR_NOT_READY) return false;
    check(rc, "kernel execution");
    return true;
  });
}

bool CudaMeasurer::counters_zero() { return Steps::counters_zero(*this); }

bool CudaMeasurer::zero_counters() { return Steps::zero_counters(*this); }

void CudaMeasurer::launch(CUfunction fn, const LaunchGrid& g, int threads, void* args, const char* what) {
  void* params[] = {args};  // the argument struct, by value, is the kernel's only parameter
  check(cu_->cuLaunchKernel(fn, g.x, g.y, g.z, static_cast<unsigned>(threads), 1, 1, g.shared, stream_, params,
                            nullptr),
        what);
}

void CudaMeasurer::launch_flush(CUfunction flush) {
  StreamReadArgs a = stream_read_args(flush_.raw(), static_cast<int64_t>(flush_.bytes), sink_.raw(), sms_);
  launch(flush, {a.blocks, 1, 1}, kStreamReadThreads, &a, "cuLaunchKernel (L2 flush)");
}

void CudaMeasurer::verify(CUfunction fn, const LaunchGrid& g, int threads, void* args, int64_t poison_elems,
                          int64_t read_elems, const Judge& judge, Measurement& r) {
  Steps::verify(*this, fn, g, threads, args, poison_elems, read_elems, judge, r);
}

void CudaMeasurer::time_runs(CUfunction fn, const LaunchGrid& g, int threads, void* args, bool cold, int reps,
                             Measurement& r) {
  Steps::time_runs(*this, fn, g, threads, args, cold, reps, r);
}

void CudaMeasurer::time_launches(const std::function<void()>& run, bool check_counters, bool cold, int reps,
                                 Measurement& r) {
  Steps::time_launches(*this, run, check_counters, cold, reps, r);
}

Measurement CudaMeasurer::measure(const PackKernel& k, const LinearShape& shape, int64_t m, bool cold, int reps) {
  return Steps::measure(*this, k, shape, m, cold, reps);
}

}  // namespace cuda_detail
}  // namespace kf
