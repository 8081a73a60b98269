// The AMD measurer's public face (cli.cpp): HIP module API loaded at run time through
// runtime/hip/hip_driver, same method as the CUDA measurer (hip_measurer_detail.h).
#pragma once
#include <memory>
#include <string>

#include "measurer.h"

namespace kf {

struct HipOptions {
  int device = 0;              // ordinal, after HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES
  uint64_t seed = 0;           // inputs are drawn from this
  int host_threads = 0;        // for the float64 reference; 0 = hardware threads
  double hang_timeout_s = 60;  // a launch still running after this counts as hung
};

// Throws NoGpuError when there is no HIP runtime or no AMD GPU to measure on, kf::Error
// for a bad --device or a device kforge has no target for.
std::unique_ptr<Measurer> make_hip_measurer(const HipOptions& opt);

// The kforge arch of a HIP device from hipDeviceProp_t::gcnArchName: the code object
// target before the first feature ("gfx942:sramecc+:xnack-" -> "gfx942").
std::string hip_arch_name(const std::string& gcn_arch_name);

}  // namespace kf
