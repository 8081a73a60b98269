// HipMeasurer, part 5: mxfp4_moe, step for step as on CUDA: the steps are
// mxfp4_measure.h, written once for both.
#include "hip_measurer_detail.h"
#include "mxfp4_measure.h"

namespace kf {
namespace hip_detail {

using Steps = measure::Mxfp4Steps<HipMeasurer>;

void HipMeasurer::begin_mxfp4_shape(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
  Steps::begin_shape(*this, shape, kernels);
}

void HipMeasurer::alloc_mxfp4_shape() { Steps::alloc_shape(*this); }

void HipMeasurer::prepare_mxfp4_problem(const MoeRouting& routing) { Steps::prepare_problem(*this, routing); }

void HipMeasurer::verify_mxfp4(const std::function<void()>& run, Measurement& r) { Steps::verify(*this, run, r); }

Measurement HipMeasurer::measure_mxfp4(const PackKernel& k, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                                       bool cold, int reps) {
  return Steps::measure(*this, k, shape, routing, cold, reps);
}

}  // namespace hip_detail
}  // namespace kf
