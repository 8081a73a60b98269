#include "layer_routing.h"

#include <climits>

#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

void RoutingLayout::carve(int block_m1, int block_m2, int64_t t, int64_t top_k, int64_t experts, Carver& c,
                          bool* overflow) {
  block_m[0] = block_m1;
  slot[1] = block_m2 == block_m1 ? 0 : 1;
  block_m[slot[1]] = block_m2;
  slots = slot[1] + 1;
  for (int s = 0; s < slots; ++s) {
    const int64_t capacity = moe::sorted_capacity(t, top_k, experts, block_m[s]);
    if (capacity > INT_MAX) *overflow = true;
    sorted[s] = c.take(capacity, 4);
    expert_ids[s] = c.take(capacity / block_m[s], 4);
    num_padded[s] = c.take(1, 4);
  }
}

kf_status plan_routing(const kf_db& db, const RoutingLayout& l, void* scratch, const int32_t* topk_ids, int t,
                       int top_k, int experts, const char* function, kf_moe_align_args align[2],
                       MoeLaunch launch[2], void* zero, int64_t zero_count) {
  kf_status status = KF_OK;
  for (int i = 0; i < l.slots && status == KF_OK; ++i) {
    align[i] = {topk_ids, at<int32_t>(scratch, l.sorted[i]), at<int32_t>(scratch, l.expert_ids[i]),
                at<int32_t>(scratch, l.num_padded[i]), t, top_k, experts, l.block_m[i],
                i == 0 ? zero : nullptr, i == 0 && zero ? zero_count : 0};
    status = plan_moe_align(db, align[i], function, &launch[i]);
  }
  return status;
}

}  // namespace rt
}  // namespace kf
