// Timing as production sees a layer: before every repetition L2 is flushed by READING
// a buffer several times its size (a write flush would leave dirty lines whose
// write-back the timed kernel pays for), then event, kernel, event. Median over reps.
// The host waits for each repetition before queueing the next. KF_BENCH_IDLE_US=N makes
// it also sleep N microseconds after each one, leaving the GPU idle between repetitions
// as autotune's polling wait does (tuner/measure_common.cpp poll_until_idle).
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <vector>

namespace kf {
namespace bench {

class ColdTimer {
 public:
  // flush_multiple: flush buffer size as a multiple of the L2 size.
  explicit ColdTimer(int flush_multiple = 4);
  ~ColdTimer();
  // Median microseconds of `launch` over `reps` cold (or warm) repetitions.
  double median_us(const std::function<void(cudaStream_t)>& launch, int reps, bool cold = true);
  // The same with `before` run, untimed, between the flush and the first event: work that
  // leaves the timed kernels' inputs in L2 as the step before them in a layer would.
  double median_us_after(const std::function<void(cudaStream_t)>& before,
                         const std::function<void(cudaStream_t)>& launch, int reps);
  // The same for several launches timed in turn within each repetition (A B A B ...), so
  // that a drift of the GPU's clocks over the run (after a heavy baseline, say) falls on
  // each alike: for rows that are compared with each other.
  std::vector<double> medians_us_alternating(const std::vector<std::function<void(cudaStream_t)>>& launches, int reps,
                                             bool cold = true,
                                             const std::function<void(cudaStream_t)>& before = nullptr);
  // Streams `bytes` from `data` once (the read floor kernel), on `stream`.
  void stream_read(const void* data, size_t bytes, cudaStream_t stream);
  // The blocks stream_read launches for `bytes`: enough to fill every SM several times over.
  unsigned stream_read_blocks(size_t bytes) const;
  void empty(cudaStream_t stream);
  cudaStream_t stream() const { return stream_; }
  size_t l2_bytes() const { return l2_bytes_; }
  int sms() const { return sms_; }
  int idle_us() const { return idle_us_; }

 private:
  void flush();
  void* flush_buf_ = nullptr;
  size_t flush_bytes_ = 0, l2_bytes_ = 0;
  int sms_ = 0;
  int idle_us_ = 0;  // KF_BENCH_IDLE_US
  unsigned int* sink_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace bench
}  // namespace kf
