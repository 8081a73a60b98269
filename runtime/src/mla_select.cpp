#include "mla_select.h"

#include <algorithm>
#include <climits>
#include <cstdio>

#include "select.h"
#include "sparse_mla/launch.h"
#include "status.h"

namespace kf {
namespace rt {

namespace {

// Where `key` would sit in db.mla_shapes (sorted by H, topk, dtype, then extras).
const uint32_t* lower_bound_mla(const kf_db& db, const MlaShapeKey& key) {
  return std::lower_bound(db.mla_shapes.data(), db.mla_shapes.data() + db.mla_shapes.size(), key,
                          [&](uint32_t i, const MlaShapeKey& k) { return db.shapes[i].mla_key < k; });
}

// The entry serving `key`: its own, else the nearest extras bucket of the same H, topk
// and dtype (a tie goes to the larger bucket), then *fallback is set; null when none.
const ShapeEntry* find_mla_entry(const kf_db& db, const MlaShapeKey& key, bool* fallback) {
  const uint32_t* begin = db.mla_shapes.data();
  const uint32_t* end = begin + db.mla_shapes.size();
  const uint32_t* at = lower_bound_mla(db, key);
  *fallback = false;
  if (at != end && db.shapes[*at].mla_key == key) return &db.shapes[*at];
  const ShapeEntry* above = at != end && same_mla_family(db.shapes[*at].mla_key, key) ? &db.shapes[*at] : nullptr;
  const ShapeEntry* below =
      at != begin && same_mla_family(db.shapes[at[-1]].mla_key, key) ? &db.shapes[at[-1]] : nullptr;
  const ShapeEntry* nearest = above;
  if (below && (!above || key.extras - below->mla_key.extras < above->mla_key.extras - key.extras)) nearest = below;
  *fallback = nearest != nullptr;
  return nearest;
}

uint64_t mla_hash(const MlaShapeKey& key) {
  const uint64_t fields[] = {static_cast<uint64_t>(key.heads), static_cast<uint64_t>(key.topk),
                             static_cast<uint64_t>(key.extras), uint64_t(key.bf16)};
  return FallbackNotes::hash(0x6d6c615f6b657973ull, fields);  // a seed of its own: no collision with linear shapes
}

// "H = 128 (topk 2048, bf16), H = 64 (topk 512, fp16)": each tuned (H, topk, dtype) once.
void tuned_families(const kf_db& db, char* buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  const MlaShapeKey* last = nullptr;
  for (uint32_t i : db.mla_shapes) {
    const MlaShapeKey& k = db.shapes[i].mla_key;
    if (last && same_mla_family(*last, k)) continue;
    last = &k;
    const int n = std::snprintf(buf + used, size - used, "%sH = %lld (topk %lld, %s)", used ? ", " : "",
                                static_cast<long long>(k.heads), static_cast<long long>(k.topk),
                                k.bf16 ? "bf16" : "fp16");
    if (n < 0 || static_cast<size_t>(n) >= size - used) break;  // cut off: the message says enough
    used += static_cast<size_t>(n);
  }
  if (!used) std::snprintf(buf, size, "none");
}

kf_status unsupported(const kf_db& db, const MlaShapeKey& key, const char* function) {
  char text[64], tuned[512];
  format_mla_shape_key(key, text, sizeof text);
  tuned_families(db, tuned, sizeof tuned);
  return fail(KF_ERR_UNSUPPORTED_SHAPE,
              "%s: no tuned %s kernel for H = %lld, topk = %lld, %s (%s) on %s in pack '%s' (sparse MLA has no "
              "generic fallback: tune the shape); tuned there: %s",
              function, kMlaOp, static_cast<long long>(key.heads), static_cast<long long>(key.topk),
              key.bf16 ? "bf16" : "fp16", text, db.arch.c_str(), db.path.c_str(), tuned);
}

kf_status check_key(const MlaShapeKey& key, const char* function) {
  const char* problem = mla_shape_problem(key);
  if (!problem) return KF_OK;
  char text[64];
  format_mla_shape_key(key, text, sizeof text);
  return fail(KF_ERR_INVALID_ARGUMENT, "%s: the %s family cannot do %s (H = %lld, topk = %lld, extras = %lld): %s",
              function, kMlaOp, text, static_cast<long long>(key.heads), static_cast<long long>(key.topk),
              static_cast<long long>(key.extras), problem);
}

}  // namespace

kf_status mla_key(const kf_mla_shape& shape, const char* function, MlaShapeKey* key) {
  MlaShapeKey out;
  out.heads = shape.heads;
  out.topk = shape.topk;
  out.extras = shape.extras;
  out.bf16 = shape.bf16 != 0;
  const kf_status status = check_key(out, function);
  if (status == KF_OK) *key = out;
  return status;
}

kf_status select_mla(const kf_db& db, const MlaShapeKey& key, int64_t queries, const char* function,
                     const kf_kernel** kernel) {
  kf_status status = check_key(key, function);
  if (status != KF_OK) return status;
  if (queries < 1)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: queries = %lld, must be at least 1", function,
                static_cast<long long>(queries));
  bool fallback = false;
  const ShapeEntry* entry = find_mla_entry(db, key, &fallback);
  if (!entry) return unsupported(db, key, function);
  const kf_kernel* tuned = pick(db, *entry, queries);
  if (!fallback) {
    *kernel = tuned;
    return KF_OK;
  }
  if (db.fallback_notes.first_time(mla_hash(key))) {  // once per requested shape
    char text[64];
    format_mla_shape_key(key, text, sizeof text);
    std::fprintf(stderr, "kforge: no tuned %s kernel for %s on %s; using the tuned extras bucket %s (x%lld)\n",
                 kMlaOp, text, db.arch.c_str(), entry->shape.c_str(), static_cast<long long>(entry->mla_key.extras));
  }
  *kernel = tuned->impl->fallback_handle;
  return KF_OK;
}

MlaScratch mla_scratch(int splits, int64_t queries, int64_t heads) {
  auto aligned16 = [](int64_t bytes) { return (bytes + 15) / 16 * 16; };
  MlaScratch s;
  s.part_lse = aligned16(mla::part_o_floats(splits, queries, heads) * 4);
  s.total = s.part_lse + aligned16(mla::part_lse_floats(splits, queries, heads) * 4);
  return s;
}

kf_status mla_combine_of(const KernelImpl& k, const char* function, const KernelImpl** combine) {
  *combine = nullptr;
  if (k.mla_config.splits <= 1) return KF_OK;
  const kf_kernel* handle = k.db->mla_combine[k.mla.bf16];
  if (!handle)
    return fail(KF_ERR_NOT_FOUND, "%s(%s): the kernel splits KV (sp%d) and pack '%s' has no sparse_mla_combine_any_%s "
                "kernel for %s to merge its partials (packs with split %s kernels carry one; regenerate the pack "
                "with genkernels)", function, k.name.c_str(), k.mla_config.splits, k.db->path.c_str(),
                k.mla.bf16 ? "bf16" : "fp16", k.db->arch.c_str(), kMlaOp);
  *combine = handle->impl;
  return KF_OK;
}

kf_status mla_scratch_bytes(const kf_db& db, const MlaShapeKey& key, int64_t max_queries, size_t* bytes) {
  const char* function = "kf_mla_scratch_bytes";
  kf_status status = check_key(key, function);
  if (status != KF_OK) return status;
  if (max_queries < 1 || max_queries > INT_MAX)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: max_queries = %lld, must be in [1, %d]", function,
                static_cast<long long>(max_queries), INT_MAX);
  bool fallback = false;
  const ShapeEntry* entry = find_mla_entry(db, key, &fallback);
  if (!entry) return unsupported(db, key, function);
  // A kernel's partials grow with Q: each range's most is at its top (cut at max_queries).
  int64_t most = 0;
  for (uint32_t i = entry->first; i < entry->first + entry->count; ++i) {
    const WinnerRange& r = db.ranges[i];
    if (r.lo > max_queries) break;
    const KernelImpl& k = *r.kernel->impl;
    const KernelImpl* combine = nullptr;
    if ((status = mla_combine_of(k, function, &combine)) != KF_OK) return status;
    most = std::max(most, mla_scratch(k.mla_config.splits, std::min(max_queries, r.hi), key.heads).total);
  }
  *bytes = static_cast<size_t>(most);
  return KF_OK;
}

}  // namespace rt
}  // namespace kf
