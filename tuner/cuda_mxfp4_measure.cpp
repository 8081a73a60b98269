// CudaMeasurer, part 5: mxfp4_moe (see cuda_measurer.h). The steps are mxfp4_measure.h,
// written once for CUDA and HIP.
#include "cuda_measurer.h"
#include "mxfp4_measure.h"

namespace kf {
namespace cuda_detail {

using Steps = measure::Mxfp4Steps<CudaMeasurer>;

void CudaMeasurer::begin_mxfp4_shape(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
  Steps::begin_shape(*this, shape, kernels);
}

void CudaMeasurer::alloc_mxfp4_shape() { Steps::alloc_shape(*this); }

void CudaMeasurer::prepare_mxfp4_problem(const MoeRouting& routing) { Steps::prepare_problem(*this, routing); }

void CudaMeasurer::verify_mxfp4(const std::function<void()>& run, Measurement& r) { Steps::verify(*this, run, r); }

Measurement CudaMeasurer::measure_mxfp4(const PackKernel& k, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                                        bool cold, int reps) {
  return Steps::measure(*this, k, shape, routing, cold, reps);
}

}  // namespace cuda_detail
}  // namespace kf
