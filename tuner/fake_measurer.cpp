// FakeMeasurer: what autotune's tests and CI measure with. Times come from a simple,
// exact cost model of the config (no noise: a test knows every answer), verification
// outcomes from regexes on the kernel name, and a die-after-N hook exits the process
// the way kill -9 would (no unwinding, no commit) to test resuming.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <thread>

#include "measurer.h"
#include "moe_routing.h"

namespace kf {

namespace {

// Rough H100 figures; only the shape of the curves matters.
constexpr double kBytesPerUs = 3.0e6;     // HBM bandwidth
constexpr double kFlopsPerUsPerSm = 3.0e6;  // 16-bit tensor throughput per SM
constexpr double kSms = 132;
constexpr double kLaunchUs = 3;
constexpr double kL2Bytes = 50.0 * (1 << 20);

double weight_bytes(const LinearShape& s) {
  const double groups = static_cast<double>(s.k / s.effective_group());
  return s.n * s.k / 2.0 + groups * s.n * 2.0 + (s.asym ? groups * s.n / 2.0 : 0);
}

}  // namespace

double fake_time_us(const PackKernel& k, const LinearShape& s, int64_t m, bool cold) {
  const LinearConfig c = parse_linear_config(k.kind, k.config);
  // Warm runs find the weights in L2 when they fit.
  const double bytes = weight_bytes(s) * (!cold && weight_bytes(s) < kL2Bytes ? 0.5 : 1.0);
  const double m_blocks = static_cast<double>((m + c.block_m - 1) / c.block_m);
  const double knobs = (c.warps == 8 ? 1.0 : 0.93) * (c.block_k == 64 ? 1.0 : 0.96);
  if (c.kind == LinearKind::decode || c.kind == LinearKind::skinny) {
    const double blocks = static_cast<double>(s.n / c.block_n) * c.split_k;
    const double eff = 0.85 * knobs * std::min(1.0, blocks / kSms) * (c.block_n == 128 ? 1.0 : 0.92);
    const double par = std::min(1.0, blocks * m_blocks / kSms);
    // decode on the CUDA cores; skinny streams the same way with the math on the tensor cores.
    const double cores = c.kind == LinearKind::skinny ? 1.0 : 8.0;
    const double compute = 2.0 * m * s.n * s.k / (kFlopsPerUsPerSm * kSms / cores * par);
    return kLaunchUs + (c.split_k > 1 ? 1.0 : 0.0) + m_blocks * bytes / (kBytesPerUs * eff) + compute;
  }
  if (c.kind == LinearKind::prefill || c.kind == LinearKind::wgmma) {
    const double tiles = static_cast<double>(s.n / c.block_n) * m_blocks;
    const double waves = std::ceil(tiles / kSms);
    // The warpgroup MMA issues at about twice mma.sync's rate (bench/NOTES.md, linear v13).
    const double eff = knobs * (c.stages == 2 ? 1.0 : 0.85) * (c.block_m * c.block_n >= 8192 ? 1.0 : 0.8) *
                       (c.kind == LinearKind::wgmma ? 1.6 : 1.0);
    const double compute = waves * 2.0 * c.block_m * c.block_n * s.k / (kFlopsPerUsPerSm * eff);
    const double memory = bytes * std::max(1.0, m_blocks / 8) / (kBytesPerUs * 0.8);
    return kLaunchUs + 2.0 + std::max(compute, memory);
  }
  // generic: run-time shape, small tiles, no matrix instructions.
  const double compute = 2.0 * m * s.n * s.k / (kFlopsPerUsPerSm * kSms / 16);
  return kLaunchUs + 1.5 + static_cast<double>((m + 3) / 4) * bytes / (kBytesPerUs * 0.45) + compute;
}

double fake_moe_time_us(const PackKernel& k, const MoeShape& s, const MoeRouting& routing, bool cold) {
  if (k.op == "moe_silu_mul") {
    // Elementwise over T * top_k slots: reads 2 I and writes I 16-bit values per slot.
    const double bytes = static_cast<double>(routing.t * s.top_k) * 3.0 * static_cast<double>(s.n / 2) * 2.0;
    return kLaunchUs + bytes / (kBytesPerUs * 0.8);
  }
  if (k.op == "moe_sum") {
    // Elementwise over T tokens: reads top_k rows and writes one of N 16-bit values each.
    const double bytes = static_cast<double>(routing.t) * static_cast<double>(s.top_k + 1) * static_cast<double>(s.n) * 2.0;
    return kLaunchUs + bytes / (kBytesPerUs * 0.8);
  }
  const LinearConfig c = parse_linear_config(k.kind, k.config);
  const RoutingStats st = routing_stats(routing.topk_ids, routing.t, static_cast<int>(s.experts),
                                        static_cast<int>(s.top_k), c.block_m);
  const LinearShape e = s.expert();
  // Decode streams an expert's weights once per block; prefill tiles share the GPU:
  // the blocks run in waves, the weights of every expert hit are read at least once.
  const double one_block = fake_time_us(k, e, c.block_m, cold) - kLaunchUs;
  // A fused SiLU epilogue costs a little in the kernel (the pairs exchanged, the exp); the
  // top_k reduction its atomics, more where many slots meet (a token's top_k rows).
  const double epilogue = c.silu ? 0.5 : c.red ? 0.3 + 1e-4 * static_cast<double>(routing.t * s.top_k) : 0.0;
  if (c.kind == LinearKind::decode) return kLaunchUs + epilogue + static_cast<double>(st.blocks) * one_block / 4;
  const double tiles = static_cast<double>(st.blocks * (s.n / c.block_n));
  const double compute = std::ceil(tiles / kSms) * 2.0 * c.block_m * c.block_n * s.k / kFlopsPerUsPerSm;
  const double memory = st.experts_hit * weight_bytes(e) / (kBytesPerUs * 0.8);
  return kLaunchUs + 2.0 + epilogue + std::max(compute, memory) + 0.01 * one_block;
}

double fake_mla_time_us(const PackKernel& k, const MlaShape& s, int64_t queries, bool cold) {
  const MlaConfig c = parse_mla_config(k.config, k.kind);
  const double q = static_cast<double>(queries);
  const double blocks = static_cast<double>(s.heads / c.block_h) * q * c.splits;
  const double rows = static_cast<double>(s.topk + s.extras) / c.splits;  // KV rows per block
  const double knobs = (c.stages == 2 ? 1.0 : 0.85) * (c.block_k == 32 ? 1.0 : 0.93) * (c.warps == 8 ? 1.0 : 0.95);
  // One SM's share of HBM (each query's rows are its own: warm runs find them in L2 at
  // twice the rate), or the block's math: scores and P . V for block_h heads per row.
  const double memory = rows * 576 * 2 / (kBytesPerUs / kSms * (cold ? 1.0 : 2.0) * knobs);
  const double compute = rows * c.block_h * (576 + 512) * 2 / (kFlopsPerUsPerSm * knobs) /
                         (c.kind == MlaKind::wgmma ? 3.0 : 1.0);  // the warpgroup MMA's rate
  const double combine = c.splits > 1 ? kLaunchUs + c.splits * q * s.heads * 512 * 4.0 * 2 / kBytesPerUs : 0;
  return kLaunchUs + std::ceil(blocks / kSms) * std::max(memory, compute) + combine;
}

double fake_mxfp4_time_us(const PackKernel& k, const Mxfp4MoeShape& s, const MoeRouting& routing, bool cold) {
  const Mxfp4Config c = parse_mxfp4_config(k.config, k.kind);
  std::vector<int64_t> load(s.experts, 0);
  for (int32_t e : routing.topk_ids)
    if (e >= 0 && e < s.experts) ++load[e];
  double blocks = 0;
  for (int64_t l : load) blocks += static_cast<double>((l + c.block_m - 1) / c.block_m);
  const double knobs = (c.stages >= 3 ? 1.0 : 0.9) * (c.block_k == 32 ? 0.9 : 1.0) * (c.warps == 8 ? 1.0 : 0.95) *
                       (c.subtiles == 1 ? 1.0 : 0.97) * (c.block_m * c.block_n >= 4096 ? 1.0 : 0.75) *
                       (c.kind == Mxfp4Kind::wgmma ? 1.6 : 1.0);
  // Tiles in waves, each block_m x block_n x K of math; every block row reads its
  // expert's weights (e2m1 and scales) once, warm runs at 1.5x the rate.
  const double tiles = blocks * static_cast<double>(s.n / c.block_n);
  const double compute = std::ceil(tiles / kSms) * 2.0 * c.block_m * c.block_n * s.k / (kFlopsPerUsPerSm * knobs);
  const double weight_bytes = static_cast<double>(s.n * s.k) * (0.5 + 1.0 / 32);
  const double memory = blocks * weight_bytes / (kBytesPerUs * 0.8 * (cold ? 1.0 : 1.5));
  return kLaunchUs + 2.0 + std::max(compute, memory);
}

FakeMeasurer::FakeMeasurer(FakeOptions opt) : opt_(std::move(opt)) {
  try {
    incorrect_ = std::regex(opt_.incorrect.empty() ? "$^" : opt_.incorrect);
    failed_ = std::regex(opt_.failed.empty() ? "$^" : opt_.failed);
  } catch (const std::regex_error& e) {
    throw Error(std::string("bad --fake-incorrect / --fake-failed regex: ") + e.what());
  }
  info_.arch = opt_.arch;
  info_.name = opt_.device;
  info_.driver = "0";
  info_.runtime = "kforge-fake-measurer 1";
  info_.l2_bytes = static_cast<int64_t>(kL2Bytes);
  info_.compute_units = opt_.compute_units;
}

void FakeMeasurer::begin_shape(const LinearShape&, const std::vector<PlannedKernel>&) { ++shapes_begun_; }

void FakeMeasurer::begin_moe_shape(const MoeShape&, const std::vector<PlannedKernel>&) { ++shapes_begun_; }

void FakeMeasurer::begin_mla_shape(const MlaShape&, const std::vector<PlannedKernel>&) { ++shapes_begun_; }

void FakeMeasurer::begin_mxfp4_shape(const Mxfp4MoeShape&, const std::vector<PlannedKernel>&) { ++shapes_begun_; }

Measurement FakeMeasurer::outcome(const PackKernel& kernel, double t, int reps) {
  Measurement r;
  if (!opt_.failed.empty() && std::regex_search(kernel.name, failed_)) {
    r.disposition = "failed";
    r.message = "fake: launch failed (injected)";
    return r;
  }
  if (!opt_.incorrect.empty() && std::regex_search(kernel.name, incorrect_)) {
    r.disposition = "incorrect";
    r.max_rel_err = 0.5;
    r.message = "fake: normalised error 0.5 above tolerance (injected)";
    return r;
  }
  r.disposition = "passed";
  r.median_us = t;
  r.min_us = t * 0.98;
  r.reps = reps;
  r.max_rel_err = 1e-4;
  return r;
}

bool FakeMeasurer::begin_measurement(const PackKernel& kernel) {
  if (opt_.die_after >= 0 && measurements_ >= opt_.die_after) std::_Exit(137);
  ++measurements_;
  if (opt_.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.delay_ms));
  return std::regex_search(kernel.name, failed_) || std::regex_search(kernel.name, incorrect_);
}

Measurement FakeMeasurer::measure(const PackKernel& kernel, const LinearShape& shape, int64_t m, bool cold_l2,
                                  int reps) {
  const bool injected = begin_measurement(kernel);
  const double t = injected      ? 0
                   : opt_.time_us ? opt_.time_us(kernel, shape, m, cold_l2)
                                  : fake_time_us(kernel, shape, m, cold_l2);
  return outcome(kernel, t, reps);
}

Measurement FakeMeasurer::measure_moe(const PackKernel& kernel, const MoeShape& shape, const MoeRouting& routing,
                                      bool cold_l2, int reps) {
  const bool injected = begin_measurement(kernel);
  const double t = injected          ? 0
                   : opt_.moe_time_us ? opt_.moe_time_us(kernel, shape, routing, cold_l2)
                                      : fake_moe_time_us(kernel, shape, routing, cold_l2);
  return outcome(kernel, t, reps);
}

Measurement FakeMeasurer::measure_mla(const PackKernel& kernel, const MlaShape& shape, int64_t queries, bool cold_l2,
                                      int reps) {
  const bool injected = begin_measurement(kernel);
  const double t = injected          ? 0
                   : opt_.mla_time_us ? opt_.mla_time_us(kernel, shape, queries, cold_l2)
                                      : fake_mla_time_us(kernel, shape, queries, cold_l2);
  return outcome(kernel, t, reps);
}

Measurement FakeMeasurer::measure_mxfp4(const PackKernel& kernel, const Mxfp4MoeShape& shape,
                                        const MoeRouting& routing, bool cold_l2, int reps) {
  const bool injected = begin_measurement(kernel);
  const double t = injected            ? 0
                   : opt_.mxfp4_time_us ? opt_.mxfp4_time_us(kernel, shape, routing, cold_l2)
                                        : fake_mxfp4_time_us(kernel, shape, routing, cold_l2);
  return outcome(kernel, t, reps);
}

}  // namespace kf
