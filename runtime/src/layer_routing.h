// The routing part of a MoE layer run (kf_run_moe, kf_run_mxfp4_moe): one moe_align output
// per distinct block_m of the layer's two GEMMs (gemm2 reuses gemm1's when their block_m
// agree), carved out of the caller's scratch, and its checked launches.
#pragma once
#include <cstdint>

#include "moe_launch.h"
#include "scratch.h"

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

}  // namespace rt
}  // namespace kf
