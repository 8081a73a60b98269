// Kernel selection: exact shape, then the M range covering m; shapes nobody tuned get
// the generic kernel of their dtype/quantisation when it can do them. No allocation,
// no I/O, no locks (kf_select runs on every forward of every layer).
#pragma once
#include "db.h"

namespace kf {
namespace rt {

// The winner of `entry` whose range covers m (ranges are contiguous from 1: catalog.cpp).
const kf_kernel* pick(const kf_db& db, const ShapeEntry& entry, int64_t m);

kf_status select_linear(const kf_db& db, const LinearShapeKey& key, int64_t m, const kf_kernel** kernel);
kf_status select_by_key(const kf_db& db, const char* op, const char* shape_key, int64_t m, const kf_kernel** kernel);

// gemm 1 (N = 2 I, K = H) or 2 (N = H, K = I) of a layer shape as a GEMM key (group as
// given: 0 or K for per-channel); KF_ERR_INVALID_ARGUMENT naming the value (and
// `function`) when the family cannot do it.
kf_status moe_gemm_key(const kf_moe_shape& shape, int gemm, const char* function, MoeShapeKey* key);
// The tuned T ranges of a MoE GEMM key (a group equal to K also finds the per-channel
// key, as for w4a16_linear), or nullptr.
const ShapeEntry* find_moe_entry(const kf_db& db, const MoeShapeKey& key);
// The tuned winner for T = t tokens of a (valid) MoE GEMM key; KF_ERR_UNSUPPORTED_SHAPE
// naming the op and shape key when it was never tuned (MoE has no generic fallback).
kf_status select_moe(const kf_db& db, const MoeShapeKey& key, int64_t t, const char* function,
                     const kf_kernel** kernel);

}  // namespace rt
}  // namespace kf
