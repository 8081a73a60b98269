// The w4a16_moe family: the two expert GEMMs of a mixture-of-experts layer with int4
// GPTQ expert weights, over rows gathered by routing (templates/w4a16_moe/args.h):
//   w4a16_moe_gemm1 (gate_up): x rows gathered by token, one output row per routed slot;
//   w4a16_moe_gemm2 (down): one input row per slot, scaled by the slot's routing weight.
// Both come in the w4a16_linear kinds (`decode`: streaming, CUDA cores; `prefill`:
// matrix instructions) with the same config struct, block_m being also the alignment
// block of moe_align. Three shape-independent helpers go in every pack that has MoE
// kernels: moe_align (routing -> sorted slots), moe_silu_mul and moe_sum.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "arch.h"
#include "candidate.h"
#include "linear_family.h"

namespace kf {

struct MoeShape {
  int gemm = 1;  // 1 = gate_up (gathers token rows), 2 = down (slot rows x routing weight)
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t n = 0;  // per expert: W[e] is n x k
  int64_t k = 0;
  int group = 128;  // 0 = per-channel
  bool bf16 = true;
  bool asym = false;

  // One expert's weight as a w4a16_linear shape (same layout, same tiling rules).
  LinearShape expert() const { return {n, k, group, bf16, asym}; }
  // w4a16_moe_gemm1 / w4a16_moe_gemm2
  std::string op() const;
  // e256_topk8_n1024_k2048_g128_bf16_sym
  std::string key() const;
};

// Inverse of MoeShape::op() + key(); throws kf::Error naming the bad part.
MoeShape parse_moe_shape(const std::string& op, const std::string& key);

// What the family can do: the w4a16_linear rules per expert, 1 <= top_k <= E <= 1024.
// Throws kf::Error naming the layer and the bad value.
void validate_moe_shape(const MoeShape& shape, const std::string& layer);

// w4a16_moe_gemm1_<kind>_<shape key>_<config key>, e.g. ..._bm1_bn64_bk64_w4_sk1_s1_silu
// for a gemm1 with the fused SiLU-and-mul epilogue, ..._red for a gemm2 that sums over
// top_k into y.
std::string moe_kernel_name(const MoeShape& shape, const LinearConfig& cfg);

// Every config the templates accept for this shape on this arch, decode first; for
// gemm1 then the fused SiLU-and-mul twins (cfg.silu) of the decode and the prefetching
// prefill ones, for gemm2 the top_k-reducing twins (cfg.red) of the same ones. A subset of w4a16_linear's: MoE blocks see few rows per expert, so the
// space is narrower.
std::vector<LinearConfig> enumerate_moe_configs(const MoeShape& shape, const ArchInfo& arch);

Candidate make_moe_candidate(const MoeShape& shape, const LinearConfig& cfg, const ArchInfo& arch);

// The shape-independent helpers (run-time sizes): moe_align_any (one per arch; E <=
// kf::moe::kMaxExperts, block_m at run time), moe_silu_mul_any_<dtype> and
// moe_sum_any_<dtype>. Their op is the kernel's prefix: "moe_align", "moe_silu_mul", "moe_sum".
Candidate make_moe_align_candidate(const ArchInfo& arch);
// Every align of the arch: moe_align_any and, on archs with thread-block clusters,
// moe_align_cluster_any (w4a16_moe/align_cluster.h), which the runtime runs from
// kf::moe::kAlignClusterMinSlots slots.
std::vector<Candidate> make_moe_align_candidates(const ArchInfo& arch);
Candidate make_moe_silu_mul_candidate(bool bf16, const ArchInfo& arch);
Candidate make_moe_sum_candidate(bool bf16, const ArchInfo& arch);

// Split-K scratch of a launch over T tokens (capacity from w4a16_moe/launch.h).
int64_t moe_workspace_floats(const MoeShape& shape, const LinearConfig& cfg, int64_t t);
int64_t moe_counter_ints(const MoeShape& shape, const LinearConfig& cfg, int64_t t);

}  // namespace kf
