// Programmatic dependent launch (NVIDIA sm_90). A kernel that calls wait() before it
// touches memory may be launched to overlap the kernel before it on the stream
// (runtime/src/backend.h, LaunchDims::overlap_previous): its blocks get their SMs, set
// up and reach wait() while that kernel finishes, instead of after. launch_dependents()
// lets the next such kernel start that early; without it, the next one starts as this
// one's blocks exit. Launched without the attribute, or on other targets, both are
// no-ops. Measured: issuing this kernel's weight loads before wait() (copies or L2
// prefetches) gained nothing more and slowed it by ~0.5 us when launched alone, since
// wait() then seems to wait for them too (bench/NOTES.md MoE v19).
#pragma once
#include "kf_portability.h"

namespace kf {
namespace grid_dependency {

// Returns once the previous kernel on the stream has finished and its writes are visible.
KF_INLINE void wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// This block no longer holds back the launch of the next kernel on the stream.
KF_INLINE void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace grid_dependency
}  // namespace kf
