// The tuned MoE winners in vLLM's fused-MoE config format, so an engine using vLLM's
// Triton fused_moe kernels (or anything reading those files) starts from kforge's
// measurements: one JSON file per MoE layer and device,
//   E=<experts>,N=<intermediate per expert>,device_name=<device, spaces as _>,dtype=int4_w4a16.json
// mapping each tuned token count T (as a string) to the tile of the routing-robust
// w4a16_moe_gemm1 (gate_up) winner serving it: BLOCK_SIZE_M/N/K = block_m/n/k,
// GROUP_SIZE_M = 1, num_warps = warps, num_stages = stages. vLLM's N is the expert's
// intermediate size: gemm1's N / 2 (gate and up stacked) = gemm2's K.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "plan.h"

namespace kf {

// vLLM's file name for a gate_up shape on a device.
std::string vllm_config_file_name(const MoeShape& gemm1, const std::string& device);

// The file's JSON text for the robust gemm1 winners of `shape` on (arch, device, cold
// L2) in the pack at `db`: keys are the Ts with a passed row, ascending. "" when the
// shape has no winners there.
std::string vllm_config_json(const std::string& db, const std::string& arch, const std::string& device,
                             const MoeShape& gemm1, bool cold_l2);

// Writes one file per gemm1 shape of `shapes` and device with winners for `arch` into
// `dir` (created); returns the paths written. Throws kf::Error for an unwritable dir.
std::vector<std::string> export_vllm_configs(const std::string& db, const std::string& arch,
                                             const std::vector<MoeTuneShape>& shapes, bool cold_l2,
                                             const std::string& dir, std::ostream& out);

}  // namespace kf
