// Static pruning: what a compiled candidate's resources say about whether it can run
// well. A pruned kernel stays in the pack with its reason, so a user sees why it lost.
#pragma once
#include <string>

#include "arch.h"
#include "candidate.h"
#include "resources.h"

namespace kf {

// "" to keep; otherwise the reason, e.g. "spills(12)", "scratch(64)", "mma_serialized", "mma_fenced",
// "lds(70000>65536)", "occupancy(1<2)", "no_mma".
std::string prune_reason(const Candidate& c, const ArchInfo& arch, const KernelResources& res,
                         int occupancy, int mma_count);

}  // namespace kf
