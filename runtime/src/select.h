// Kernel selection: exact shape, then the M range covering m; shapes nobody tuned get
// the generic kernel of their dtype/quantisation when it can do them. No allocation,
// no I/O, no locks (kf_select runs on every forward of every layer).
#pragma once
#include "db.h"

namespace kf {
namespace rt {

kf_status select_linear(const kf_db& db, const LinearShapeKey& key, int64_t m, const kf_kernel** kernel);
kf_status select_by_key(const kf_db& db, const char* op, const char* shape_key, int64_t m, const kf_kernel** kernel);

}  // namespace rt
}  // namespace kf
