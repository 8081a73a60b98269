// HipMeasurer, part 3: the MoE GEMMs, step for step as on CUDA: the steps are
// moe_measure.h, written once for both.
#include "hip_measurer_detail.h"
#include "moe_measure.h"

namespace kf {
namespace hip_detail {

using Steps = measure::MoeSteps<HipMeasurer>;

void HipMeasurer::begin_moe_shape(const MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
  Steps::begin_shape(*this, shape, kernels);
}

void HipMeasurer::alloc_moe_shape() { Steps::alloc_shape(*this); }

void HipMeasurer::prepare_moe_problem(const MoeRouting& routing) { Steps::prepare_problem(*this, routing); }

hipFunction_t HipMeasurer::align_function() { return Steps::align_function(*this); }

void HipMeasurer::run_align(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                            int block_m, Measurement& r, int64_t zero_count) {
  Steps::run_align(*this, topk_ids, t, top_k, experts, block_m, r, zero_count);
}

Measurement HipMeasurer::measure_moe(const PackKernel& k, const MoeShape& shape, const MoeRouting& routing,
                                     bool cold, int reps) {
  return Steps::measure(*this, k, shape, routing, cold, reps);
}

}  // namespace hip_detail
}  // namespace kf
