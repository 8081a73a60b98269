// MXFP4 MoE GEMM selection (kf_select_mxfp4_moe, kf_select on ops mxfp4_moe_gemm1/2): a
// layer shape (kf_mxfp4_moe_shape) as each GEMM's key, and the tuned winner of a key for
// T tokens, by the contiguous T ranges of catalog.cpp like every other op. The family has
// no generic kernel: an untuned key is KF_ERR_UNSUPPORTED_SHAPE. No allocation, no I/O.
#pragma once
#include "db.h"

namespace kf {
namespace rt {

// gemm 1 (gate_up: N = 2 I, K = H, _swiglu when shape.swiglu) or 2 (down: N = H, K = I)
// of a layer shape; KF_ERR_INVALID_ARGUMENT naming the value (and `function`) when the
// family cannot do it.
kf_status mxfp4_gemm_key(const kf_mxfp4_moe_shape& shape, int gemm, const char* function, Mxfp4ShapeKey* key);
// The tuned T ranges of a key, or nullptr.
const ShapeEntry* find_mxfp4_entry(const kf_db& db, const Mxfp4ShapeKey& key);
// The tuned winner for T = t of a (valid) key; KF_ERR_UNSUPPORTED_SHAPE naming the op and
// shape key when it was never tuned.
kf_status select_mxfp4(const kf_db& db, const Mxfp4ShapeKey& key, int64_t t, const char* function,
                       const kf_kernel** kernel);

}  // namespace rt
}  // namespace kf
