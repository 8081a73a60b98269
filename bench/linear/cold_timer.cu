#include "cold_timer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "util/stream_read.h"

namespace kf {
namespace bench {

namespace {

__global__ void __launch_bounds__(kStreamReadThreads) stream_read_kernel(kf_stream_read_args a) { kf::stream_read(a); }
__global__ void empty_kernel() {}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

}  // namespace

ColdTimer::ColdTimer(int flush_multiple) {
  int dev = 0, l2 = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "L2 size");
  check(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, dev), "SM count");
  l2_bytes_ = static_cast<size_t>(l2);
  if (const char* idle = std::getenv("KF_BENCH_IDLE_US")) idle_us_ = std::max(0, std::atoi(idle));
  flush_bytes_ = l2_bytes_ * flush_multiple;
  check(cudaMalloc(&flush_buf_, flush_bytes_), "flush buffer");
  check(cudaMemset(flush_buf_, 0x5a, flush_bytes_), "flush fill");
  check(cudaMalloc(&sink_, sizeof(unsigned)), "sink");
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
  check(cudaEventCreate(&start_), "event");
  check(cudaEventCreate(&stop_), "event");
}

ColdTimer::~ColdTimer() {
  cudaEventDestroy(start_);
  cudaEventDestroy(stop_);
  cudaStreamDestroy(stream_);
  cudaFree(sink_);
  cudaFree(flush_buf_);
}

unsigned ColdTimer::stream_read_blocks(size_t bytes) const {
  return static_cast<unsigned>(std::min<size_t>(sms_ * 8, (bytes / 16 + 255) / 256 + 1));
}

void ColdTimer::stream_read(const void* data, size_t bytes, cudaStream_t stream) {
  // Each block streams a grid-strided slice.
  const unsigned blocks = stream_read_blocks(bytes);
  kf_stream_read_args a{data, bytes / 16 * 16, sink_, blocks, 0};
  stream_read_kernel<<<blocks, kStreamReadThreads, 0, stream>>>(a);
}

void ColdTimer::empty(cudaStream_t stream) { empty_kernel<<<1, 32, 0, stream>>>(); }

void ColdTimer::flush() { stream_read(flush_buf_, flush_bytes_, stream_); }

double ColdTimer::median_us(const std::function<void(cudaStream_t)>& launch, int reps, bool cold) {
  return medians_us_alternating({launch}, reps, cold)[0];
}

double ColdTimer::median_us_after(const std::function<void(cudaStream_t)>& before,
                                  const std::function<void(cudaStream_t)>& launch, int reps) {
  return medians_us_alternating({launch}, reps, true, before)[0];
}

std::vector<double> ColdTimer::medians_us_alternating(const std::vector<std::function<void(cudaStream_t)>>& launches,
                                                      int reps, bool cold,
                                                      const std::function<void(cudaStream_t)>& before) {
  for (const auto& launch : launches) launch(stream_);  // warm-up: module load, first-touch, library heuristics
  check(cudaStreamSynchronize(stream_), "warm-up");
  std::vector<std::vector<float>> times(launches.size());
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < launches.size(); ++i) {
      if (cold) flush();
      if (before) before(stream_);
      check(cudaEventRecord(start_, stream_), "record");
      launches[i](stream_);
      check(cudaEventRecord(stop_, stream_), "record");
      check(cudaEventSynchronize(stop_), "sync");
      if (idle_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(idle_us_));
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start_, stop_), "elapsed");
      times[i].push_back(ms * 1000.f);
    }
  check(cudaGetLastError(), "launch");
  std::vector<double> medians;
  for (auto& t : times) {
    std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

}  // namespace bench
}  // namespace kf
