// Launching: argument checks against the kernel's shape and config, the launch
// geometry (templates/w4a16_linear/launch.h), code objects loaded once per device, and
// split-K workspace sizes (w4a16_linear, and MoE GEMMs with m = T). The MoE launches
// are in moe_launch.h.
#pragma once
#include "db.h"

namespace kf {
namespace rt {

kf_status launch(const kf_kernel& kernel, const kf_linear_args& args, void* stream);
// The one way every kernel is launched, once its arguments are checked: binds the
// backend, loads the code object on the calling thread's device if needed, and launches
// with `args` (a pointer to the kernel's argument struct) as its only parameter.
kf_status launch_kernel(const KernelImpl& kernel, const LaunchDims& dims, void* args, void* stream);
kf_status prepare(const kf_db& db);
void unload_all(const kf_db& db);

void kernel_workspace(const KernelImpl& kernel, int64_t m, int64_t* floats, int64_t* counters);
void max_workspace(const kf_db& db, int64_t max_m, int64_t* floats, int64_t* counters);

}  // namespace rt
}  // namespace kf
