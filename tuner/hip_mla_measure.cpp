// HipMeasurer, part 4: sparse_mla_decode, step for step as on CUDA: the steps are
// mla_measure.h, written once for both.
#include "hip_measurer_detail.h"
#include "mla_measure.h"

namespace kf {
namespace hip_detail {

using Steps = measure::MlaSteps<HipMeasurer>;

void HipMeasurer::begin_mla_shape(const MlaShape& shape, const std::vector<PlannedKernel>& kernels) {
  Steps::begin_shape(*this, shape, kernels);
}

void HipMeasurer::alloc_mla_shape() { Steps::alloc_shape(*this); }

void HipMeasurer::prepare_mla_problem(int64_t queries) { Steps::prepare_problem(*this, queries); }

void HipMeasurer::verify_mla(const std::function<void()>& run, int splits, Measurement& r) {
  Steps::verify(*this, run, splits, r);
}

Measurement HipMeasurer::measure_mla(const PackKernel& k, const MlaShape& shape, int64_t queries, bool cold, int reps) {
  return Steps::measure(*this, k, shape, queries, cold, reps);
}

}  // namespace hip_detail
}  // namespace kf
