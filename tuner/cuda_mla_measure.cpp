// CudaMeasurer, part 4: sparse_mla_decode (see cuda_measurer.h). The steps are
// mla_measure.h, written once for CUDA and HIP.
#include "cuda_measurer.h"
#include "mla_measure.h"

namespace kf {
namespace cuda_detail {

using Steps = measure::MlaSteps<CudaMeasurer>;

void CudaMeasurer::begin_mla_shape(const MlaShape& shape, const std::vector<PlannedKernel>& kernels) {
  Steps::begin_shape(*this, shape, kernels);
}

void CudaMeasurer::alloc_mla_shape() { Steps::alloc_shape(*this); }

void CudaMeasurer::prepare_mla_problem(int64_t queries) { Steps::prepare_problem(*this, queries); }

void CudaMeasurer::verify_mla(const std::function<void()>& run, int splits, Measurement& r) {
  Steps::verify(*this, run, splits, r);
}

Measurement CudaMeasurer::measure_mla(const PackKernel& k, const MlaShape& shape, int64_t queries, bool cold,
                                      int reps) {
  return Steps::measure(*this, k, shape, queries, cold, reps);
}

}  // namespace cuda_detail
}  // namespace kf
