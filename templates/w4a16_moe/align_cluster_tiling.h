// Launch geometry of moe_align's cluster form (align_cluster.h, sm_90a): shared by the
// template, the generator and the runtime. Kept out of launch.h, which every MoE GEMM
// includes, so that adding it left their builds as they were.
//   grid (cluster_align_blocks(zero_count), 1, 1), kAlignThreads threads, clusters of
//   kAlignCluster blocks along x: the first cluster sorts, the blocks after it zero the
//   optional buffer (args.h) kAlignZeroElems values each.
#pragma once
#include <stdint.h>

#include "w4a16_moe/launch.h"

namespace kf {
namespace moe {

// Workgroups that sort together. Eight is the largest cluster every sm_90 part launches
// without an opt-in.
constexpr int kAlignCluster = 8;

// Slots (T * top_k) from which the runtime sorts with the cluster form, where the
// single workgroup's passes over the slots, not its launch, set its time.
constexpr int64_t kAlignClusterMinSlots = 2048;

KF_HD constexpr int64_t cluster_align_blocks(int64_t zero_count) {
  const int64_t zeroing = align_blocks(zero_count) - 1;
  return kAlignCluster + (zeroing + kAlignCluster - 1) / kAlignCluster * kAlignCluster;
}

}  // namespace moe
}  // namespace kf
