// Sparse MLA decode selection (kf_select_mla, kf_select on op sparse_mla_decode) and
// scratch sizes (kf_mla_scratch_bytes). A shape is (H, topk, extras bucket, dtype); its
// winners cover Q (queries per call) in contiguous ranges like every other op. A call
// whose extras bucket has no winners while another bucket of the same H, topk and dtype
// has is served from the nearest tuned bucket (ties: the larger), flagged as a
// fallback and reported once on stderr; with no bucket at all it is
// KF_ERR_UNSUPPORTED_SHAPE naming the H values the pack tunes. No allocation, no I/O.
#pragma once
#include "db.h"

namespace kf {
namespace rt {

constexpr const char* kMlaOp = "sparse_mla_decode";

// kf_mla_shape as a key; KF_ERR_INVALID_ARGUMENT naming the value (and `function`) when
// the family cannot do it.
kf_status mla_key(const kf_mla_shape& shape, const char* function, MlaShapeKey* key);

// The winner for Q = queries of `key` (checked here too), or the failure.
kf_status select_mla(const kf_db& db, const MlaShapeKey& key, int64_t queries, const char* function,
                     const kf_kernel** kernel);

// Byte offsets of a split launch's partials in the caller's scratch: part_o at 0, then
// part_lse, each 16-byte aligned; total 0 for an unsplit kernel.
struct MlaScratch {
  int64_t part_lse = 0;
  int64_t total = 0;
};
MlaScratch mla_scratch(int splits, int64_t queries, int64_t heads);

// The most scratch any kernel select_mla can return for 1 <= Q <= max_queries needs.
kf_status mla_scratch_bytes(const kf_db& db, const MlaShapeKey& key, int64_t max_queries, size_t* bytes);

// KF_ERR_NOT_FOUND naming the missing kernel when `kernel` splits KV and the pack has no
// combine kernel of its dtype; else KF_OK with *combine set (null when it does not split).
kf_status mla_combine_of(const KernelImpl& kernel, const char* function, const KernelImpl** combine);

}  // namespace rt
}  // namespace kf
