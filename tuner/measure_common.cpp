#include "measure_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "arch.h"
#include "sparse_mla/launch.h"

namespace kf {
namespace measure {

void check_device(const DeviceInfo& info) {
  const auto archs = supported_archs();
  if (std::find(archs.begin(), archs.end(), info.arch) == archs.end())
    throw Error(info.name + " is " + info.arch + ", which kforge does not generate kernels for (" +
                supported_archs_text() + ")");
  if (info.l2_bytes <= 0) throw Error("cannot read the L2 size of " + info.name);
}

StreamReadArgs stream_read_args(const void* data, int64_t bytes, void* sink, int compute_units) {
  StreamReadArgs a{};
  a.data = data;
  a.bytes = static_cast<unsigned long long>(bytes);
  a.sink = static_cast<unsigned int*>(sink);
  a.blocks = static_cast<unsigned>(std::max(1, compute_units)) * 8;
  return a;
}

HostProblem::HostProblem(uint64_t seed, int host_threads) : rng_(seed) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  threads_ = std::max(1, host_threads > 0 ? host_threads : hw);
}

bool HostProblem::prepare(const LinearShape& shape, int64_t m, const ShapeBuffers& sizes) {
  if (m > sizes.max_m) throw Error("internal: M=" + std::to_string(m) + " above the shape's planned maximum");
  if (m_ == m) return false;
  prob_ = make_linear_problem(shape, m, rng_);
  ref_ = linear_reference(prob_, threads_);
  m_ = m;
  return true;
}

MoeHostProblem::MoeHostProblem(uint64_t seed, int host_threads) : rng_(seed ^ 0x6d6f65ull) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  threads_ = std::max(1, host_threads > 0 ? host_threads : hw);
}

void MoeHostProblem::begin_shape(const MoeShape& shape) {
  make_moe_weights(prob_, shape, rng_);
  current_.clear();
}

bool MoeHostProblem::prepare(const MoeRouting& routing, const MoeShapeBuffers& sizes) {
  if (routing.t > sizes.max_t)
    throw Error("internal: T=" + std::to_string(routing.t) + " above the shape's planned maximum");
  const std::string id = routing.archetype + " " + std::to_string(routing.t);
  if (id == current_) return false;
  make_moe_activations(prob_, routing, rng_);
  ref_ = moe_reference(prob_, moe_checked_slots(prob_.topk_ids, prob_.shape.experts, kMoeCheckedSlots, rng_),
                       threads_);
  current_ = id;
  return true;
}

MlaHostProblem::MlaHostProblem(uint64_t seed, int host_threads) : rng_(seed ^ 0x6d6c61ull) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  threads_ = std::max(1, host_threads > 0 ? host_threads : hw);
}

bool MlaHostProblem::prepare(const MlaShape& shape, int64_t queries, const MlaShapeBuffers& sizes) {
  if (queries > sizes.max_q)
    throw Error("internal: Q=" + std::to_string(queries) + " above the shape's planned maximum");
  if (queries == queries_ && prob_.shape.key() == shape.key()) return false;
  prob_ = make_mla_problem(shape, queries, rng_);
  ref_ = mla_check_reference(prob_, threads_);
  queries_ = queries;
  return true;
}

void MlaHostProblem::for_each_kv_chunk(const std::function<void(int64_t, int64_t, const uint16_t*)>& put) {
  constexpr int64_t kChunkRows = 16384;  // 18 MiB
  chunk_.resize(kChunkRows * mla::kHeadDim);
  for (int64_t row0 = 0; row0 < prob_.kv_rows; row0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, prob_.kv_rows - row0);
    const int64_t per = (rows + threads_ - 1) / threads_;
    std::vector<std::thread> pool;
    for (int64_t r = 0; r < rows; r += per)
      pool.emplace_back([&, r] { mla_kv_fill(prob_, row0 + r, std::min(per, rows - r), &chunk_[r * mla::kHeadDim]); });
    for (auto& t : pool) t.join();
    put(row0, rows, chunk_.data());
  }
}

Mxfp4HostProblem::Mxfp4HostProblem(uint64_t seed, int host_threads) : rng_(seed ^ 0x6d78667034ull) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  threads_ = std::max(1, host_threads > 0 ? host_threads : hw);
}

void Mxfp4HostProblem::begin_shape(const Mxfp4MoeShape& shape) {
  shape_ = shape;
  current_.clear();
}

bool Mxfp4HostProblem::prepare(const MoeRouting& routing, const Mxfp4ShapeBuffers& sizes) {
  if (routing.t > sizes.max_t)
    throw Error("internal: T=" + std::to_string(routing.t) + " above the shape's planned maximum");
  const std::string id = routing.archetype + " " + std::to_string(routing.t);
  if (id == current_) return false;
  prob_ = make_mxfp4_problem(shape_, routing, rng_);
  ref_ = mxfp4_check_reference(prob_, mxfp4_checked_slots(prob_.topk_ids, shape_.experts, rng_), threads_);
  current_ = id;
  return true;
}

void Mxfp4HostProblem::for_each_chunk(bool scales,
                                      const std::function<void(int64_t, int64_t, const uint8_t*)>& put) {
  constexpr int64_t kChunkBytes = 64 << 20;
  const int64_t total = scales ? mxfp4_scale_bytes(prob_.shape) : mxfp4_weight_bytes(prob_.shape);
  chunk_.resize(static_cast<size_t>(std::min(kChunkBytes, total)));
  for (int64_t first = 0; first < total; first += kChunkBytes) {
    const int64_t bytes = std::min(kChunkBytes, total - first);
    const int64_t per = (bytes / threads_ + 4095) / 4096 * 4096;  // whole 8-byte words per thread
    std::vector<std::thread> pool;
    for (int64_t at = 0; at < bytes; at += per)
      pool.emplace_back([&, at] {
        const int64_t n = std::min(per, bytes - at);
        scales ? mxfp4_scale_fill(prob_, first + at, n, &chunk_[at]) : mxfp4_weight_fill(prob_, first + at, n, &chunk_[at]);
      });
    for (auto& t : pool) t.join();
    put(first, bytes, chunk_.data());
  }
}

kf_mla_decode_args mla_decode_args(const MlaTuneProblem& p, const void* q, const void* kv, const void* indices,
                                   const void* extra_start, const void* extra_count, void* o, void* lse,
                                   void* part_o, void* part_lse) {
  const bool extras = !p.extra_count.empty();
  kf_mla_decode_args a{};
  a.q = q;
  a.kv = kv;
  a.indices = static_cast<const int32_t*>(indices);
  a.extra_start = extras ? static_cast<const int32_t*>(extra_start) : nullptr;
  a.extra_count = extras ? static_cast<const int32_t*>(extra_count) : nullptr;
  a.o = o;
  a.lse = static_cast<float*>(lse);
  a.part_o = static_cast<float*>(part_o);
  a.part_lse = static_cast<float*>(part_lse);
  a.queries = static_cast<int>(p.queries);
  a.kv_rows = static_cast<int>(p.kv_rows);
  a.heads = static_cast<int>(p.shape.heads);
  a.topk = static_cast<int>(p.shape.topk);
  a.softmax_scale = p.softmax_scale;
  return a;
}

kf_mla_combine_args mla_combine_args(const MlaTuneProblem& p, int splits, const void* part_o, const void* part_lse,
                                     void* o, void* lse) {
  return kf_mla_combine_args{static_cast<const float*>(part_o), static_cast<const float*>(part_lse), o,
                             static_cast<float*>(lse), static_cast<int>(p.queries),
                             static_cast<int>(p.shape.heads), splits};
}

kf_linear_args linear_args(const LinearShape& s, int64_t m, void* x, void* qweight, void* scales, void* qzeros,
                           void* y, void* workspace, void* counters) {
  return kf_linear_args{x,
                        qweight,
                        scales,
                        qzeros,
                        y,
                        static_cast<float*>(workspace),
                        static_cast<int*>(counters),
                        static_cast<int>(m),
                        static_cast<int>(s.n),
                        static_cast<int>(s.k),
                        s.effective_group()};
}

int64_t checked_rows(int64_t m, const ShapeBuffers& sizes) {
  return std::min(m + kGuardRows, sizes.max_m + kGuardRows);
}

void judge_output(const std::vector<uint16_t>& y, const std::vector<double>& ref, const LinearShape& s, int64_t m,
                  int64_t rows, Measurement& r) {
  const int64_t n = s.n;
  const double err = normalised_error(y, ref, m, n, s.bf16);
  const double tol = linear_tolerance(s.bf16);
  r.max_rel_err = err;
  char why[160] = "";
  if (std::isinf(err))
    std::snprintf(why, sizeof why, "output not fully written or not finite");
  else if (!(err <= tol))
    std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", err, tol);
  for (int64_t i = m * n; i < rows * n && !why[0]; ++i)
    if (y[i] != 0xffff) std::snprintf(why, sizeof why, "wrote past row M (row %lld)", static_cast<long long>(i / n));
  if (why[0]) flag_incorrect(r, why);
}

bool all_zero(const std::vector<int32_t>& v) {
  return std::all_of(v.begin(), v.end(), [](int32_t c) { return c == 0; });
}

void flag_incorrect(Measurement& r, const std::string& why) {
  if (!r.disposition.empty()) return;
  r.disposition = "incorrect";
  r.message = why;
}

void mark_hung(Measurement& r, double waited_s) {
  r = Measurement{};
  r.disposition = "failed";
  char msg[128];
  std::snprintf(msg, sizeof msg, "still running after %.1f s (hung); the process must exit to free the GPU", waited_s);
  r.message = msg;
  r.fatal = true;
}

void mark_failed(Measurement& r, const std::string& message) {
  const double err = r.max_rel_err;
  r = Measurement{};
  r.disposition = "failed";
  r.message = message;
  r.max_rel_err = err;
}

double timed_runs_timeout(double hang_timeout_s, int reps, double verify_seconds) {
  return hang_timeout_s + 4.0 * (reps + 1) * verify_seconds;
}

void record_timing(const std::vector<double>& us, Measurement& r) {
  const TimingStats t = timing_stats(us);
  if (!(t.median > 0)) {
    r.disposition = "failed";
    r.message = "the event timer measured no time";
    return;
  }
  r.disposition = "passed";
  r.median_us = t.median;
  r.min_us = t.min;
  r.reps = static_cast<int>(us.size());
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool poll_until_idle(double timeout_s, const std::function<bool()>& idle) {
  const auto start = Clock::now();
  for (;;) {
    if (idle()) return true;
    if (seconds_since(start) > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace measure
}  // namespace kf
