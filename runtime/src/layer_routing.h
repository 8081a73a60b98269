// The routing part of a MoE layer run (kf_run_moe, kf_run_mxfp4_moe): one moe_align output
// per distinct block_m of the layer's two GEMMs (gemm2 reuses gemm1's when their block_m
// agree), carved out of the caller's scratch, and its checked launches; and the walk over
// both GEMMs' winner ranges that sizes a layer's scratch.
#pragma once
#include <algorithm>
#include <cstdint>

#include "db.h"
#include "moe_launch.h"
#include "scratch.h"
#include "status.h"

namespace kf {
namespace rt {

struct RoutingLayout {
  int slot[2] = {0, 0};     // alignment slot of gemm1 / gemm2
  int block_m[2] = {0, 0};  // per slot (slot 1 unused when both GEMMs share block_m)
  int slots = 1;
  int64_t sorted[2] = {}, expert_ids[2] = {}, num_padded[2] = {};  // scratch offsets

  // Takes the slots' regions from `c` for t tokens; *overflow set when a sorted capacity
  // exceeds the kernels' int indices.
  void carve(int block_m1, int block_m2, int64_t t, int64_t top_k, int64_t experts, Carver& c, bool* overflow);
};

// One align launch per slot, checked, with its arguments pointing into `scratch`; the
// first also zeroes `zero_count` 16-bit values at `zero` when that is not NULL (a
// reducing gemm2's y).
kf_status plan_routing(const kf_db& db, const RoutingLayout& l, void* scratch, const int32_t* topk_ids, int t,
                       int top_k, int experts, const char* function, kf_moe_align_args align[2],
                       MoeLaunch launch[2], void* zero = nullptr, int64_t zero_count = 0);

// kf_moe_scratch_bytes and kf_mxfp4_moe_scratch_bytes: the most scratch a layer needs
// for any t in [1, max_t] (checked here, named in errors as `function`). The pair of GEMM
// kernels changes only where a winner range of either GEMM starts (`entries`: both GEMMs'
// ranges), and each pair's needs grow with t, so the most is at the top of some range,
// cut at max_t. bytes_at(t, &bytes) selects the pair for t and lays out its scratch.
template <class BytesAt>
kf_status most_scratch_over_ranges(const kf_db& db, const ShapeEntry* const entries[2], int64_t max_t,
                                   const char* function, BytesAt bytes_at, size_t* most) {
  if (max_t < 1 || max_t > INT32_MAX)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: max_t = %lld, must be in [1, %d]", function,
                static_cast<long long>(max_t), INT32_MAX);
  int64_t top = 0;
  for (int g = 0; g < 2; ++g)
    for (uint32_t i = entries[g]->first; i < entries[g]->first + entries[g]->count; ++i) {
      const WinnerRange& r = db.ranges[i];
      if (r.lo > max_t) break;
      int64_t bytes = 0;
      if (const kf_status status = bytes_at(std::min(max_t, r.hi), &bytes)) return status;
      top = std::max(top, bytes);
    }
  *most = static_cast<size_t>(top);
  return KF_OK;
}

}  // namespace rt
}  // namespace kf
