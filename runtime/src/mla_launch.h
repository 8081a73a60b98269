// Sparse MLA decode launches (templates/sparse_mla/args.h): every argument check that
// needs no GPU, made before anything is launched; then the decode kernel with
// sparse_mla/launch.h's grid and, for a split-KV kernel, the combine kernel on the same
// stream, the partials carved from the caller's scratch (mla_select.h). No allocation,
// no I/O, no sync: graph-capturable once the code objects are loaded (kf_prepare).
#pragma once
#include "launch.h"

namespace kf {
namespace rt {

// kf_launch_mla: `kernel` (any kernel handle; refused unless sparse_mla_decode) with args.
kf_status launch_mla(const KernelImpl& kernel, const kf_mla_decode_args& args, void* scratch, size_t scratch_bytes,
                     void* stream);
// kf_run_mla: the winner for `shape` and args.queries, then launch_mla's checks and launches.
kf_status run_mla(const kf_db& db, const kf_mla_shape& shape, const kf_mla_decode_args& args, void* scratch,
                  size_t scratch_bytes, void* stream);
// kf_check_mla_indices: every index -1 or in [0, kv_rows).
kf_status check_mla_indices(const int32_t* indices, int64_t queries, int64_t topk, int64_t kv_rows,
                            int64_t* bad_position);

}  // namespace rt
}  // namespace kf
