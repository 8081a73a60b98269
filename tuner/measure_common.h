// The vendor-neutral half of the device measurers (cuda_*.cpp, hip_*.cpp): everything
// between "the kernel ran" and "here is the row" that needs no GPU API, so both judge
// and time kernels by one rule: the host problem and its float64 reference, the kernel
// arguments, the verdict on a verification run's output, the L2-flush launch, the hang
// timeouts, and event times turned into median/min. The steps of each family that do
// call the GPU are templates over the measurer (linear_measure.h, moe_measure.h,
// mla_measure.h, mxfp4_measure.h); each measurer keeps only the calls of its own API
// (see cuda_measurer.h for the method).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "device_plan.h"
#include "linear_reference.h"
#include "measurer.h"
#include "mla_problem.h"
#include "moe_reference.h"
#include "mxfp4_problem.h"
#include "sparse_mla/args.h"
#include "util/stream_read_args.h"
#include "w4a16_linear/args.h"

namespace kf {
namespace measure {

// A GPU call that failed during a measurement: the candidate is recorded as failed.
struct CallFailed {
  std::string message;
};

// A measurer's opening checks of the device it found: an arch kforge generates kernels
// for and a readable L2 size (the flush is sized by it). Throws kf::Error naming both.
void check_device(const DeviceInfo& info);

// Runs a measurer's device setup; when it fails, drop() undoes what it did (a throwing
// constructor runs no destructor) and a failed call becomes an error naming the device.
template <class Setup, class Drop>
void set_up_device(const std::string& name, Setup setup, Drop drop) {
  try {
    setup();
  } catch (const CallFailed& e) {
    drop();
    throw Error("cannot set up " + name + ": " + e.message);
  } catch (...) {
    drop();
    throw;
  }
}

// The family steps written once over either device measurer (D: CudaMeasurer or
// HipMeasurer, which befriend them and give them a thin vendor layer of calls).
template <class D>
struct LinearSteps;  // linear_measure.h
template <class D>
struct MoeSteps;  // moe_measure.h
template <class D>
struct Mxfp4Steps;  // mxfp4_measure.h
template <class D>
struct MlaSteps;  // mla_measure.h

// The L2 flush kernel's arguments (templates/util/stream_read_args.h).
using StreamReadArgs = kf_stream_read_args;
constexpr int kStreamReadThreads = KF_STREAM_READ_THREADS;

// The flush over `bytes` (flush_bytes(): a multiple of 16) with 8 blocks of 256 threads
// per SM / CU, enough to fill it; the kernel strides by the grid.
StreamReadArgs stream_read_args(const void* data, int64_t bytes, void* sink, int compute_units);

// The inputs and float64 reference of the current (shape, M), drawn fresh whenever M
// changes and after invalidate() (a new shape).
class HostProblem {
 public:
  HostProblem(uint64_t seed, int host_threads);  // host_threads 0: hardware threads
  void invalidate() { m_ = 0; }
  // True when new inputs were drawn (to be uploaded). Throws kf::Error for an M above
  // the shape's planned maximum (its device buffers would be too small).
  bool prepare(const LinearShape& shape, int64_t m, const ShapeBuffers& sizes);
  const LinearProblem& problem() const { return prob_; }
  const std::vector<double>& reference() const { return ref_; }

 private:
  std::mt19937_64 rng_;
  int threads_;
  int64_t m_ = 0;
  LinearProblem prob_;
  std::vector<double> ref_;
};

// The MoE counterpart: weights drawn per shape (begin_shape), activations, routing
// weights and the float64 reference of the checked slots per (T, routing).
class MoeHostProblem {
 public:
  MoeHostProblem(uint64_t seed, int host_threads);  // host_threads 0: hardware threads
  void begin_shape(const MoeShape& shape);
  // True when new activations were drawn (to be uploaded). Throws kf::Error for a T
  // above the shape's planned maximum.
  bool prepare(const MoeRouting& routing, const MoeShapeBuffers& sizes);
  const MoeProblem& problem() const { return prob_; }
  const MoeReference& reference() const { return ref_; }

 private:
  std::mt19937_64 rng_;
  int threads_;
  std::string current_;  // archetype and T of the problem drawn
  MoeProblem prob_;
  MoeReference ref_;
};

// The MLA counterpart (mla_problem.h): inputs and the float64 reference of the checked
// queries per (shape, Q), drawn fresh when Q changes and after begin_shape.
class MlaHostProblem {
 public:
  MlaHostProblem(uint64_t seed, int host_threads);  // host_threads 0: hardware threads
  void begin_shape() { queries_ = 0; }
  // True when a new problem was drawn (to be uploaded). Throws kf::Error for a Q above the
  // shape's planned maximum.
  bool prepare(const MlaShape& shape, int64_t queries, const MlaShapeBuffers& sizes);
  const MlaTuneProblem& problem() const { return prob_; }
  const MlaCheckReference& reference() const { return ref_; }
  // The problem's KV cache, drawn on the host threads a chunk of rows at a time, each
  // chunk handed to `put` (row0, rows, [rows, 576] 16-bit) before the next is drawn.
  void for_each_kv_chunk(const std::function<void(int64_t row0, int64_t rows, const uint16_t* data)>& put);

 private:
  std::mt19937_64 rng_;
  int threads_;
  int64_t queries_ = 0;
  MlaTuneProblem prob_;
  MlaCheckReference ref_;
  std::vector<uint16_t> chunk_;
};

// The mxfp4_moe counterpart (mxfp4_problem.h): a fresh problem and the float64 reference
// of its checked slots per (T, routing), drawn when either changes and after begin_shape.
class Mxfp4HostProblem {
 public:
  Mxfp4HostProblem(uint64_t seed, int host_threads);  // host_threads 0: hardware threads
  void begin_shape(const Mxfp4MoeShape& shape);
  // True when a new problem was drawn (to be uploaded). Throws kf::Error for a T above the
  // shape's planned maximum.
  bool prepare(const MoeRouting& routing, const Mxfp4ShapeBuffers& sizes);
  const Mxfp4TuneProblem& problem() const { return prob_; }
  const Mxfp4CheckReference& reference() const { return ref_; }
  // The problem's weights ([E, N, K/2]) or scales ([E, K/32, N]), drawn on the host
  // threads a chunk at a time, each chunk handed to `put` (first byte, bytes, data)
  // before the next is drawn.
  void for_each_chunk(bool scales, const std::function<void(int64_t first, int64_t bytes, const uint8_t* data)>& put);

 private:
  std::mt19937_64 rng_;
  int threads_;
  Mxfp4MoeShape shape_;
  std::string current_;  // archetype and T of the problem drawn
  Mxfp4TuneProblem prob_;
  Mxfp4CheckReference ref_;
  std::vector<uint8_t> chunk_;
};

kf_linear_args linear_args(const LinearShape& s, int64_t m, void* x, void* qweight, void* scales, void* qzeros,
                           void* y, void* workspace, void* counters);

// The decode kernel's arguments over the problem (null extras without them; o and lse
// always given: unsplit kernels write them, split kernels their partials), and the
// combine kernel's.
kf_mla_decode_args mla_decode_args(const MlaTuneProblem& p, const void* q, const void* kv, const void* indices,
                                   const void* extra_start, const void* extra_count, void* o, void* lse,
                                   void* part_o, void* part_lse);
kf_mla_combine_args mla_combine_args(const MlaTuneProblem& p, int splits, const void* part_o, const void* part_lse,
                                     void* o, void* lse);

// Rows of y read back after a verification run: the M rows and the guard rows after
// them (where a last tile written whole lands).
int64_t checked_rows(int64_t m, const ShapeBuffers& sizes);
// The verdict on y (checked_rows(m) rows, poisoned with 0xFFFF before the run): sets
// r.max_rel_err, and incorrect with the reason when the error is not finite or above
// linear_tolerance, or a guard row past M was written.
void judge_output(const std::vector<uint16_t>& y, const std::vector<double>& ref, const LinearShape& s, int64_t m,
                  int64_t rows, Measurement& r);
bool all_zero(const std::vector<int32_t>& v);
// Incorrect for `why` unless an earlier reason already stands.
void flag_incorrect(Measurement& r, const std::string& why);
// A kernel still running after `waited_s`: failed and fatal (the process must exit).
void mark_hung(Measurement& r, double waited_s);
// A failed call: failed with `message`, keeping the verification error if measured.
void mark_failed(Measurement& r, const std::string& message);
// How long the queued timed runs may take before they count as hung: the hang timeout
// plus generous slack for the reps (and their flushes) at the verification run's pace.
double timed_runs_timeout(double hang_timeout_s, int reps, double verify_seconds);
// Event times (us) of the timed runs -> passed with median and min, or failed when the
// timer measured nothing.
void record_timing(const std::vector<double>& us, Measurement& r);

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t);
// Polls `idle` (which throws CallFailed on an execution error) every 50 us; false when
// still busy after `timeout_s`.
bool poll_until_idle(double timeout_s, const std::function<bool()>& idle);

}  // namespace measure
}  // namespace kf
