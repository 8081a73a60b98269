// The GPU side of autotune behind one small interface, so the tuning loop, the results
// and the winners never see a vendor API:
//   - CudaMeasurer (cuda_measurer.cpp): NVIDIA, CUDA driver API loaded at run time;
//   - HipMeasurer (hip_measurer.cpp): AMD, HIP module API loaded at run time;
//   - FakeMeasurer (fake_measurer.cpp): deterministic synthetic times, for tests and CI.
// The two GPU measurers share everything that is not a vendor call (measure_common.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "error.h"
#include "linear_family.h"
#include "mla_family.h"
#include "moe_family.h"
#include "mxfp4_family.h"
#include "pack.h"

namespace kf {

struct DeviceInfo {
  std::string arch;     // kforge target name, e.g. sm_90a
  std::string name;     // e.g. "NVIDIA H100 80GB HBM3": the `device` column of results/winners
  std::string driver;   // e.g. "13000" (cuDriverGetVersion)
  std::string runtime;  // the API the measurer speaks, e.g. "cuda-driver-api 13000"
  int64_t l2_bytes = 0;
  int compute_units = 0;  // SMs / CUs: the MLA split pruning counts blocks against them (0: unknown)
};

// One candidate at one M. `disposition` is passed, incorrect or failed (the tuning loop
// itself decides pruned).
struct Measurement {
  std::string disposition;
  double median_us = NAN, min_us = NAN;  // passed only
  int reps = 0;                          // timed repetitions behind median/min
  double max_rel_err = NAN;              // normalised error of the verification run
  std::string message;                   // why it failed or was incorrect
  // The device cannot go on (a kernel hung): the loop stores this row, then stops so
  // that a rerun (which skips what is stored) continues on a fresh process.
  bool fatal = false;
};

// A candidate that will be measured in the current shape, and the largest M it will run
// at: device buffers (workspace, counters) are sized once per shape from these.
struct PlannedKernel {
  const PackKernel* kernel = nullptr;
  int64_t max_m = 0;
};

// The routing of one MoE measurement: T tokens, each sent to top_k experts
// (moe_routing.h); the kernels are measured over the slots moe_align sorts from it.
struct MoeRouting {
  std::string archetype;          // e.g. "zipf1": the `routing` column of its rows
  int64_t t = 0;                  // tokens (the `m` column)
  std::vector<int32_t> topk_ids;  // [t, top_k]
};

class Measurer {
 public:
  virtual ~Measurer() = default;
  virtual const DeviceInfo& device() const = 0;
  // The pack's utility code object (kf_util_stream_read: the L2 flush), once per run.
  // Null when the pack has none, in which case only warm (--warm) timing is possible.
  virtual void set_util_kernel(const PackKernel* util) = 0;
  // Before the first measure() of a shape; `kernels` covers every kernel that will run.
  virtual void begin_shape(const LinearShape& shape, const std::vector<PlannedKernel>& kernels) = 0;
  // Verifies `kernel` at `m` on fresh inputs, then (if correct) times `reps` runs with
  // L2 flushed by a streaming read before each (cold_l2) or not.
  virtual Measurement measure(const PackKernel& kernel, const LinearShape& shape, int64_t m, bool cold_l2,
                              int reps) = 0;

  // MoE (w4a16_moe_gemm1/2). The pack's moe_align_any, once per run (null: the pack has
  // none, and measure_moe reports every kernel failed).
  virtual void set_moe_align_kernel(const PackKernel* align) = 0;
  // Before the first measure_moe() of a shape; max_m of each kernel is its largest T.
  virtual void begin_moe_shape(const MoeShape& shape, const std::vector<PlannedKernel>& kernels) = 0;
  // Sorts the routing's slots with moe_align for the kernel's block_m (checked against
  // the host), verifies the kernel on fresh inputs, then times it like measure(): only
  // the GEMM is timed, the sorted slots stay as align left them.
  virtual Measurement measure_moe(const PackKernel& kernel, const MoeShape& shape, const MoeRouting& routing,
                                  bool cold_l2, int reps) = 0;

  // sparse_mla_decode. The pack's sparse_mla_combine_any_<dtype> kernels, once per run
  // (null: the pack has none, and split kernels of that dtype are reported failed).
  virtual void set_mla_combine_kernels(const PackKernel* bf16, const PackKernel* fp16) = 0;
  // Before the first measure_mla() of a shape; max_m of each kernel is its largest Q.
  virtual void begin_mla_shape(const MlaShape& shape, const std::vector<PlannedKernel>& kernels) = 0;
  // Verifies `kernel` over `queries` queries on fresh inputs (mla_problem.h), then times
  // it like measure(); a split kernel is verified and timed with the combine kernel
  // after it (both launches between the events: what an engine runs).
  virtual Measurement measure_mla(const PackKernel& kernel, const MlaShape& shape, int64_t queries, bool cold_l2,
                                  int reps) = 0;

  // mxfp4_moe (mxfp4_moe_gemm1/2), sorted by the moe_align_any of set_moe_align_kernel.
  // Before the first measure_mxfp4() of a shape; max_m of each kernel is its largest T.
  virtual void begin_mxfp4_shape(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) = 0;
  // As measure_moe: the routing's slots sorted with moe_align for the kernel's block_m
  // (checked against the host), the kernel verified on the (shape, T, routing) problem
  // (mxfp4_problem.h), then the GEMM alone timed.
  virtual Measurement measure_mxfp4(const PackKernel& kernel, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                                    bool cold_l2, int reps) = 0;
};

// No usable GPU (no driver, no device, or a build without the vendor headers); autotune
// turns it into exit code 77.
struct NoGpuError : Error {
  using Error::Error;
};

struct CudaOptions {
  int device = 0;            // ordinal, after CUDA_VISIBLE_DEVICES
  uint64_t seed = 0;         // inputs are drawn from this
  int host_threads = 0;      // for the float64 reference; 0 = hardware threads
  double hang_timeout_s = 60;  // a launch still running after this counts as hung
};

// Throws NoGpuError when there is no NVIDIA GPU to measure on, kf::Error for a bad
// --device or a device kforge has no target for.
std::unique_ptr<Measurer> make_cuda_measurer(const CudaOptions& opt);
// The kforge arch of a CUDA compute capability: 9.0 -> sm_90a (the arch-specific
// target genkernels compiles for), otherwise sm_<major><minor>.
std::string cuda_arch_name(int major, int minor);

// Synthetic times: a roofline-like cost model of the kernel's config (decode and skinny
// stream the weights once per block_m rows, prefill is bounded by tile math and waves), exact
// and noise-free, so tests know the answer. `time_us` overrides the model.
using FakeTimeFn = std::function<double(const PackKernel& kernel, const LinearShape& shape, int64_t m, bool cold)>;
using FakeMoeTimeFn =
    std::function<double(const PackKernel& kernel, const MoeShape& shape, const MoeRouting& routing, bool cold)>;
using FakeMlaTimeFn =
    std::function<double(const PackKernel& kernel, const MlaShape& shape, int64_t queries, bool cold)>;
using FakeMxfp4TimeFn =
    std::function<double(const PackKernel& kernel, const Mxfp4MoeShape& shape, const MoeRouting& routing, bool cold)>;
struct FakeOptions {
  std::string arch = "sm_90a";
  std::string device = "kforge-fake-gpu";
  int compute_units = 132;  // the device's SMs (the MLA split pruning counts blocks against them)
  std::string incorrect;  // regex on kernel names: reported incorrect (max_rel_err 0.5)
  std::string failed;     // regex on kernel names: reported failed
  int die_after = -1;     // >= 0: std::_Exit(137) when measurement die_after + 1 starts (kill -9)
  int delay_ms = 0;       // sleep per measurement (concurrency and interruption tests)
  FakeTimeFn time_us;
  FakeMoeTimeFn moe_time_us;  // overrides fake_moe_time_us
  FakeMlaTimeFn mla_time_us;  // overrides fake_mla_time_us
  FakeMxfp4TimeFn mxfp4_time_us;  // overrides fake_mxfp4_time_us
};

class FakeMeasurer : public Measurer {
 public:
  explicit FakeMeasurer(FakeOptions opt);  // throws kf::Error for a bad regex
  const DeviceInfo& device() const override { return info_; }
  void set_util_kernel(const PackKernel*) override {}
  void begin_shape(const LinearShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure(const PackKernel& kernel, const LinearShape& shape, int64_t m, bool cold_l2, int reps) override;
  void set_moe_align_kernel(const PackKernel*) override {}
  void begin_moe_shape(const MoeShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure_moe(const PackKernel& kernel, const MoeShape& shape, const MoeRouting& routing, bool cold_l2,
                          int reps) override;
  void set_mla_combine_kernels(const PackKernel*, const PackKernel*) override {}
  void begin_mla_shape(const MlaShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure_mla(const PackKernel& kernel, const MlaShape& shape, int64_t queries, bool cold_l2,
                          int reps) override;
  void begin_mxfp4_shape(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure_mxfp4(const PackKernel& kernel, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                            bool cold_l2, int reps) override;
  int measurements() const { return measurements_; }
  int shapes_begun() const { return shapes_begun_; }

 private:
  // Counts one measurement (dying first when die_after says so, sleeping delay_ms);
  // true when the kernel's outcome is injected (failed / incorrect), so it needs no time.
  bool begin_measurement(const PackKernel& kernel);
  // The injected outcome (failed / incorrect) of `kernel`, or a passed row of time t.
  Measurement outcome(const PackKernel& kernel, double t, int reps);
  FakeOptions opt_;
  std::regex incorrect_, failed_;
  DeviceInfo info_;
  int measurements_ = 0, shapes_begun_ = 0;
};

// The default cost model of FakeMeasurer, in microseconds.
double fake_time_us(const PackKernel& kernel, const LinearShape& shape, int64_t m, bool cold);
// Its MoE model: per sorted block (moe_align with the kernel's block_m over the routing)
// the linear model's cost of one block_m-row tile of the expert, so padding and load
// imbalance show.
double fake_moe_time_us(const PackKernel& kernel, const MoeShape& shape, const MoeRouting& routing, bool cold);
// Its MLA model: (H / block_h) x Q x splits blocks in waves over the SMs, each gathering
// its share of the query's KV rows at one SM's share of the bandwidth or bounded by its
// tile's math, plus the combine launch and its partials for split configs.
double fake_mla_time_us(const PackKernel& kernel, const MlaShape& shape, int64_t queries, bool cold);
// Its MXFP4 model: the sorted blocks of the kernel's block_m over the routed slots (ids
// outside [0, E) route nowhere), block_n-wide tiles in waves over the SMs bounded by the
// tile's math, or the weights of every expert hit read once per block row of it.
double fake_mxfp4_time_us(const PackKernel& kernel, const Mxfp4MoeShape& shape, const MoeRouting& routing, bool cold);

}  // namespace kf
