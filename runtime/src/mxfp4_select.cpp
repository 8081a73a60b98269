#include "mxfp4_select.h"

#include <algorithm>
#include <climits>

#include "select.h"
#include "status.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

kf_status mxfp4_gemm_key(const kf_mxfp4_moe_shape& shape, int gemm, const char* function, Mxfp4ShapeKey* key) {
  const int e = shape.experts, top_k = shape.top_k, h = shape.hidden, i = shape.intermediate;
  if (e < 1 || e > moe::kMaxExperts)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape->experts = %d, must be in [1, %d]", function, e, moe::kMaxExperts);
  if (top_k < 1 || top_k > e)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape->top_k = %d, must be in [1, experts = %d]", function, top_k, e);
  if (h < 1 || i < 1 || i > INT_MAX / 2)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape->hidden = %d, shape->intermediate = %d: must be positive (and "
                "2 x intermediate fit an int)", function, h, i);
  Mxfp4ShapeKey out;
  out.gemm = gemm;
  out.experts = e;
  out.top_k = top_k;
  out.n = gemm == 1 ? 2 * int64_t{i} : h;
  out.k = gemm == 1 ? h : i;
  out.swiglu = gemm == 1 && shape.swiglu != 0;
  if (const char* problem = mxfp4_shape_problem(out)) {
    char text[96];
    format_mxfp4_shape_key(out, text, sizeof text);
    return fail(KF_ERR_INVALID_ARGUMENT,
                "%s: the mxfp4_moe family cannot do %s %s (hidden = %d, intermediate = %d): %s", function,
                mxfp4_op_name(gemm), text, h, i, problem);
  }
  *key = out;
  return KF_OK;
}

const ShapeEntry* find_mxfp4_entry(const kf_db& db, const Mxfp4ShapeKey& key) {
  auto it = std::lower_bound(db.mxfp4_shapes.begin(), db.mxfp4_shapes.end(), key,
                             [&](uint32_t i, const Mxfp4ShapeKey& k) { return db.shapes[i].mxfp4_key < k; });
  return it != db.mxfp4_shapes.end() && db.shapes[*it].mxfp4_key == key ? &db.shapes[*it] : nullptr;
}

kf_status select_mxfp4(const kf_db& db, const Mxfp4ShapeKey& key, int64_t t, const char* function,
                       const kf_kernel** kernel) {
  if (t < 1) return fail(KF_ERR_INVALID_ARGUMENT, "%s: t = %lld, must be at least 1", function, (long long)t);
  if (const ShapeEntry* entry = find_mxfp4_entry(db, key)) {
    *kernel = pick(db, *entry, t);
    return KF_OK;
  }
  char text[96];
  format_mxfp4_shape_key(key, text, sizeof text);
  return fail(KF_ERR_UNSUPPORTED_SHAPE,
              "%s: no tuned kernel for %s %s on %s in pack '%s' (the mxfp4_moe family has no generic fallback: tune "
              "the shape)%s", function, mxfp4_op_name(key.gemm), text, db.arch.c_str(), db.path.c_str(),
              key.gemm == 1 && !key.swiglu ? "; gpt-oss layers fuse the SwiGLU into gemm1 (shape->swiglu = 1)" : "");
}

}  // namespace rt
}  // namespace kf
