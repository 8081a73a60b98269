// Programmatic dependent launch (NVIDIA sm_90). A kernel that calls wait() before it
// touches memory may be launched to overlap the kernel before it on the stream
// (runtime/src/backend.h, LaunchDims::overlap_previous): it is launched as that kernel's
// blocks exit rather than after the whole grid has completed and flushed, and wait()
// holds it until then. Launched without the attribute, or on other targets, wait() is a
// no-op. Measured on an H200 (bench/NOTES.md MoE v19): ~1 us saved per kernel boundary
// of a decode step. Two things that looked better were worse: letting the next kernel
// launch early (griddepcontrol.launch_dependents at the start), so that its blocks sat
// on the SMs waiting, cost 1-3 us per boundary, and issuing weight loads before wait() slowed the
// kernel by ~0.5 us when launched alone (wait() then seems to wait for them too).
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

}  // namespace grid_dependency
}  // namespace kf
