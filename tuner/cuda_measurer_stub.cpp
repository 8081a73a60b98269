// Built instead of cuda_measurer.cpp where the CUDA toolkit headers were not found:
// autotune still builds and runs with --measurer fake, and says why it cannot measure.
#include "measurer.h"

namespace kf {

std::unique_ptr<Measurer> make_cuda_measurer(const CudaOptions&) {
  throw NoGpuError("this autotune was built without the CUDA toolkit headers (cuda.h), so it cannot drive an "
                   "NVIDIA GPU; rebuild where the toolkit is installed");
}

}  // namespace kf
