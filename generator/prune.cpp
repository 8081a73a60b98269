#include "prune.h"

namespace kf {

std::string prune_reason(const Candidate& c, const ArchInfo& arch, const KernelResources& res,
                         int occupancy, int mma_count) {
  if (res.spills > 0) return "spills(" + std::to_string(res.spills) + ")";
  // Scratch without spills is a private array the compiler could not keep in
  // registers (run-time indexing): every access goes to memory.
  if (res.scratch_bytes > 0) return "scratch(" + std::to_string(res.scratch_bytes) + ")";
  // Products that wait for each other lose the overlap the warpgroup MMA kinds are built on.
  if (res.mma_serialized) return "mma_serialized";
  // The same when ptxas fenced them: a product whose accumulators are used in a branch of
  // its own made gemm1 1.4x slower (bench/NOTES.md MoE v22).
  if (res.mma_fenced) return "mma_fenced";
  if (res.lds_bytes > arch.max_lds_per_block)
    return "lds(" + std::to_string(res.lds_bytes) + ">" + std::to_string(arch.max_lds_per_block) + ")";
  if (occupancy < c.min_occupancy)
    return "occupancy(" + std::to_string(occupancy) + "<" + std::to_string(c.min_occupancy) + ")";
  // A matrix kind that compiled to scalar code is on the slow path by construction.
  if (c.needs_mma && mma_count == 0) return "no_mma";
  return "";
}

}  // namespace kf
