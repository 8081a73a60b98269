#include "device_plan.h"

#include <algorithm>

#include "mla_problem.h"
#include "sparse_mla/launch.h"
#include "w4a16_moe/launch.h"

namespace kf {

ShapeBuffers plan_shape_buffers(const LinearShape& s, const std::vector<PlannedKernel>& kernels) {
  ShapeBuffers b;
  for (const auto& pk : kernels) {
    b.max_m = std::max(b.max_m, pk.max_m);
    const LinearConfig cfg = parse_linear_config(pk.kernel->kind, pk.kernel->config);
    b.workspace_floats = std::max(b.workspace_floats, linear_workspace_floats(s, cfg, pk.max_m));
    b.counter_ints = std::max(b.counter_ints, linear_counter_ints(s, cfg, pk.max_m));
  }
  const int64_t groups = s.k / s.effective_group();
  b.x_elems = b.max_m * s.k;
  b.qweight_words = s.k / 8 * s.n;
  b.scales_elems = groups * s.n;
  b.qzeros_words = s.asym ? groups * s.n / 8 : 0;
  b.y_elems = (b.max_m + kGuardRows) * s.n;
  return b;
}

MoeShapeBuffers plan_moe_buffers(const MoeShape& s, const std::vector<PlannedKernel>& kernels) {
  MoeShapeBuffers b;
  for (const auto& pk : kernels) b.max_t = std::max(b.max_t, pk.max_m);
  for (const auto& pk : kernels) {
    // gemm1's moe_silu_mul and gemm2's moe_sum (timed with their candidates) need no more
    // than y: n/2 columns, T rows (their inputs are their own).
    if (pk.kernel->op == "moe_silu_mul" || pk.kernel->op == "moe_sum") continue;
    const LinearConfig cfg = parse_linear_config(pk.kernel->kind, pk.kernel->config);
    b.sorted_ids = std::max(b.sorted_ids, moe::sorted_capacity(b.max_t, s.top_k, s.experts, cfg.block_m));
    b.expert_ids = std::max(b.expert_ids, moe::sorted_capacity(b.max_t, s.top_k, s.experts, cfg.block_m) / cfg.block_m);
    b.workspace_floats = std::max(b.workspace_floats, moe_workspace_floats(s, cfg, pk.max_m));
    b.counter_ints = std::max(b.counter_ints, moe_counter_ints(s, cfg, pk.max_m));
  }
  const int64_t groups = s.k / s.expert().effective_group();
  b.slots = b.max_t * s.top_k;
  b.x_elems = (s.gemm == 1 ? b.max_t : b.slots) * s.k;
  b.qweight_words = s.experts * (s.k / 8) * s.n;
  b.scales_elems = s.experts * groups * s.n;
  b.qzeros_words = s.asym ? s.experts * groups * s.n / 8 : 0;
  b.y_elems = (b.slots + kGuardRows) * s.n;
  return b;
}

MlaShapeBuffers plan_mla_buffers(const MlaShape& s, const std::vector<PlannedKernel>& kernels) {
  MlaShapeBuffers b;
  for (const auto& pk : kernels) {
    b.max_q = std::max(b.max_q, pk.max_m);
    const MlaConfig cfg = parse_mla_config(pk.kernel->config, pk.kernel->kind);
    b.part_o_floats = std::max(b.part_o_floats, mla::part_o_floats(cfg.splits, pk.max_m, s.heads));
    b.part_lse_floats = std::max(b.part_lse_floats, mla::part_lse_floats(cfg.splits, pk.max_m, s.heads));
  }
  if (b.max_q == 0) return b;
  b.q_elems = b.max_q * s.heads * mla::kHeadDim;
  b.kv_rows = mla_kv_rows_bound(s, b.max_q);
  b.index_ints = b.max_q * s.topk;
  b.extra_ints = s.extras > 0 ? b.max_q : 0;
  b.o_elems = (b.max_q + 1) * s.heads * mla::kLatentDim;
  b.lse_floats = (b.max_q + 1) * s.heads;
  return b;
}

Mxfp4ShapeBuffers plan_mxfp4_buffers(const Mxfp4MoeShape& s, const std::vector<PlannedKernel>& kernels) {
  Mxfp4ShapeBuffers b;
  for (const auto& pk : kernels) b.max_t = std::max(b.max_t, pk.max_m);
  for (const auto& pk : kernels) {
    const int block_m = parse_mxfp4_config(pk.kernel->config).block_m;
    const int64_t cap = moe::sorted_capacity(b.max_t, s.top_k, s.experts, block_m);
    b.sorted_ids = std::max(b.sorted_ids, cap);
    b.expert_ids = std::max(b.expert_ids, cap / block_m);
  }
  b.slots = b.max_t * s.top_k;
  b.x_elems = (s.gemm == 1 ? b.max_t : b.slots) * s.k;
  b.weight_bytes = s.experts * s.n * (s.k / 2);
  b.scale_bytes = s.experts * (s.k / 32) * s.n;
  b.bias_floats = s.experts * s.n;
  b.y_elems = (b.slots + kGuardRows) * (s.swiglu ? s.n / 2 : s.n);
  return b;
}

int64_t flush_bytes(int64_t l2_bytes) {
  constexpr int64_t kMiB = 1 << 20;
  const int64_t want = std::max<int64_t>(4 * std::max<int64_t>(l2_bytes, 0), 64 * kMiB);
  return (want + kMiB - 1) / kMiB * kMiB;
}

TimingStats timing_stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  TimingStats t;
  t.min = v.front();
  t.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return t;
}

}  // namespace kf

namespace kf {

std::string cuda_arch_name(int major, int minor) {
  // 9.0 runs the arch-specific sm_90a code (wgmma, setmaxnreg) genkernels builds.
  return "sm_" + std::to_string(major) + std::to_string(minor) + (major == 9 && minor == 0 ? "a" : "");
}

}  // namespace kf
