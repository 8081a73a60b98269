#include "select.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>

#include "mla_select.h"
#include "mxfp4_select.h"
#include "status.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {

const char* kLinearOp = "w4a16_linear";

const ShapeEntry* find_linear(const kf_db& db, const LinearShapeKey& key) {
  auto it = std::lower_bound(db.linear_shapes.begin(), db.linear_shapes.end(), key,
                             [&](uint32_t i, const LinearShapeKey& k) { return db.shapes[i].key < k; });
  return it != db.linear_shapes.end() && db.shapes[*it].key == key ? &db.shapes[*it] : nullptr;
}

int compare(const ShapeEntry& e, const char* op, const char* shape) {
  const int c = std::strcmp(e.op.c_str(), op);
  return c != 0 ? c : std::strcmp(e.shape.c_str(), shape);
}

const ShapeEntry* find_by_name(const kf_db& db, const char* op, const char* shape) {
  auto it = std::lower_bound(db.shapes.begin(), db.shapes.end(), 0,
                             [&](const ShapeEntry& e, int) { return compare(e, op, shape) < 0; });
  return it != db.shapes.end() && compare(*it, op, shape) == 0 ? &*it : nullptr;
}

uint64_t shape_hash(const LinearShapeKey& key) {
  const uint64_t fields[] = {static_cast<uint64_t>(key.n), static_cast<uint64_t>(key.k),
                             static_cast<uint64_t>(key.group), uint64_t(key.bf16) << 1 | uint64_t(key.asym)};
  return FallbackNotes::hash(0x9e3779b97f4a7c15ull, fields);
}

kf_status fallback(const kf_db& db, const LinearShapeKey& key, const kf_kernel** kernel) {
  const kf_kernel* generic = db.generic[key.bf16][key.asym];
  const bool usable = generic && generic_can_do(key);
  const bool report = usable && db.fallback_notes.first_time(shape_hash(key));
  if (usable && !report) {  // the common case after the first call: no formatting at all
    *kernel = generic;
    return KF_OK;
  }
  char shape[96];
  format_linear_shape_key(key, shape, sizeof shape);
  if (!generic)
    return fail(KF_ERR_UNSUPPORTED_SHAPE,
                "no tuned kernel for w4a16_linear %s on %s, and pack '%s' has no generic %s %s kernel to fall back on",
                shape, db.arch.c_str(), db.path.c_str(), key.bf16 ? "bf16" : "fp16", key.asym ? "asym" : "sym");
  if (!usable)
    return fail(KF_ERR_UNSUPPORTED_SHAPE,
                "no tuned kernel for w4a16_linear %s on %s, and the generic kernel cannot do it (it needs N %% 8 == 0, "
                "K %% 32 == 0 and a group size that is a multiple of 32 dividing K; N = %lld, K = %lld, group = %lld)",
                shape, db.arch.c_str(), static_cast<long long>(key.n), static_cast<long long>(key.k),
                static_cast<long long>(key.effective_group()));
  std::fprintf(stderr, "kforge: no tuned kernel for w4a16_linear %s on %s; using the generic kernel %s (slower)\n",
               shape, db.arch.c_str(), generic->impl->name.c_str());
  *kernel = generic;
  return KF_OK;
}

}  // namespace

const kf_kernel* pick(const kf_db& db, const ShapeEntry& entry, int64_t m) {
  const WinnerRange* first = db.ranges.data() + entry.first;
  const WinnerRange* last = first + entry.count;
  const WinnerRange* after = std::upper_bound(first, last, m, [](int64_t v, const WinnerRange& r) { return v < r.lo; });
  return (after == first ? first : after - 1)->kernel;
}

bool FallbackNotes::first_time(uint64_t hash) {
  for (int probe = 0; probe < kSlots; ++probe) {
    std::atomic<uint64_t>& slot = slots_[(hash + probe) % kSlots];
    uint64_t seen = slot.load(std::memory_order_acquire);
    if (seen == hash) return false;
    if (seen == 0) {
      if (slot.compare_exchange_strong(seen, hash, std::memory_order_acq_rel)) return true;
      if (seen == hash) return false;  // another thread claimed it for this shape
    }
  }
  if (!full_reported_.exchange(true))
    std::fprintf(stderr, "kforge: more than %d untuned shapes; not reporting further ones\n", kSlots);
  return false;
}

kf_status select_linear(const kf_db& db, const LinearShapeKey& key, int64_t m, const kf_kernel** kernel) {
  if (m < 1) return fail(KF_ERR_INVALID_ARGUMENT, "kf_select: m = %lld, must be at least 1", static_cast<long long>(m));
  if (key.n < 1 || key.k < 1 || key.group < 0)
    return fail(KF_ERR_INVALID_ARGUMENT, "kf_select_linear: n = %lld, k = %lld, group = %lld: must be positive "
                "(group 0 = per-channel)", static_cast<long long>(key.n), static_cast<long long>(key.k),
                static_cast<long long>(key.group));
  const ShapeEntry* entry = find_linear(db, key);
  LinearShapeKey canonical = key;
  if (key.group == key.k) {  // one group spanning K is per-channel ("gch")
    canonical.group = 0;
    if (!entry) entry = find_linear(db, canonical);
  }
  if (entry) {
    *kernel = pick(db, *entry, m);
    return KF_OK;
  }
  return fallback(db, canonical, kernel);
}

kf_status select_by_key(const kf_db& db, const char* op, const char* shape_key, int64_t m, const kf_kernel** kernel) {
  if (m < 1) return fail(KF_ERR_INVALID_ARGUMENT, "kf_select: m = %lld, must be at least 1", static_cast<long long>(m));
  if (const ShapeEntry* entry = find_by_name(db, op, shape_key)) {
    *kernel = pick(db, *entry, m);
    return KF_OK;
  }
  if (const int gemm = moe_gemm_of_op(op)) {
    MoeShapeKey key;
    key.gemm = gemm;
    if (!parse_moe_shape_key(shape_key, &key))
      return fail(KF_ERR_INVALID_ARGUMENT,
                  "kf_select: bad %s shape key '%s' (expected like e256_topk8_n1024_k2048_g128_bf16_sym)", op,
                  shape_key);
    if (const char* problem = moe_shape_problem(key))
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_select: %s shape key '%s': %s", op, shape_key, problem);
    return select_moe(db, key, m, "kf_select", kernel);
  }
  if (std::strcmp(op, kMlaOp) == 0) {  // an untuned extras bucket, or a shape never tuned
    MlaShapeKey key;
    if (!parse_mla_shape_key(shape_key, &key))
      return fail(KF_ERR_INVALID_ARGUMENT,
                  "kf_select: bad %s shape key '%s' (expected like h128_topk2048_x0_bf16)", op, shape_key);
    return select_mla(db, key, m, "kf_select", kernel);
  }
  if (const int gemm = mxfp4_gemm_of_op(op)) {
    Mxfp4ShapeKey key;
    key.gemm = gemm;
    if (!parse_mxfp4_shape_key(shape_key, &key))
      return fail(KF_ERR_INVALID_ARGUMENT,
                  "kf_select: bad %s shape key '%s' (expected like e128_topk4_n5760_k2880_swiglu)", op, shape_key);
    if (const char* problem = mxfp4_shape_problem(key))
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_select: %s shape key '%s': %s", op, shape_key, problem);
    return select_mxfp4(db, key, m, "kf_select", kernel);
  }
  if (std::strcmp(op, kLinearOp) != 0)
    return fail(KF_ERR_NOT_FOUND,
                "kf_select: op '%s' has no kernels in this runtime (it serves %s, %s, %s, %s, %s, %s)", op, kLinearOp,
                moe_op_name(1), moe_op_name(2), kMlaOp, mxfp4_op_name(1), mxfp4_op_name(2));
  LinearShapeKey key;
  if (!parse_linear_shape_key(shape_key, &key))
    return fail(KF_ERR_INVALID_ARGUMENT,
                "kf_select: bad w4a16_linear shape key '%s' (expected like n12288_k2048_g128_bf16_sym)", shape_key);
  return select_linear(db, key, m, kernel);
}

const ShapeEntry* find_moe_entry(const kf_db& db, const MoeShapeKey& key) {
  auto find = [&](const MoeShapeKey& k) -> const ShapeEntry* {
    auto it = std::lower_bound(db.moe_shapes.begin(), db.moe_shapes.end(), k,
                               [&](uint32_t i, const MoeShapeKey& v) { return db.shapes[i].moe_key < v; });
    return it != db.moe_shapes.end() && db.shapes[*it].moe_key == k ? &db.shapes[*it] : nullptr;
  };
  const ShapeEntry* entry = find(key);
  if (!entry && key.expert.group == key.expert.k) {  // one group spanning K is per-channel ("gch")
    MoeShapeKey channel = key;
    channel.expert.group = 0;
    entry = find(channel);
  }
  return entry;
}

kf_status moe_gemm_key(const kf_moe_shape& shape, int gemm, const char* function, MoeShapeKey* key) {
  const long long e = shape.experts, top_k = shape.top_k, h = shape.hidden, i = shape.intermediate;
  if (e < 1 || e > moe::kMaxExperts)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape->experts = %lld, must be in [1, %d]", function, e,
                moe::kMaxExperts);
  if (top_k < 1 || top_k > e)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape->top_k = %lld, must be in [1, experts = %lld]", function, top_k,
                e);
  if (h < 1 || i < 1 || h > INT_MAX / 2 || i > INT_MAX / 2)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape->hidden = %lld, shape->intermediate = %lld: must be positive "
                "and fit an int", function, h, i);
  MoeShapeKey out;
  out.gemm = gemm;
  out.experts = e;
  out.top_k = top_k;
  out.expert.n = gemm == 1 ? 2 * i : h;
  out.expert.k = gemm == 1 ? h : i;
  out.expert.group = shape.group;
  out.expert.bf16 = shape.bf16 != 0;
  out.expert.asym = shape.asym != 0;
  MoeShapeKey checked = out;  // a group spanning K (e.g. 2048) is per-channel: allowed
  if (checked.expert.group == checked.expert.k) checked.expert.group = 0;
  if (const char* problem = moe_shape_problem(checked)) {
    char text[128];
    format_moe_shape_key(out, text, sizeof text);
    return fail(KF_ERR_INVALID_ARGUMENT,
                "%s: the w4a16_moe family cannot do %s %s (hidden = %lld, intermediate = %lld, group = %d): %s",
                function, moe_op_name(gemm), text, h, i, shape.group, problem);
  }
  *key = out;
  return KF_OK;
}

kf_status select_moe(const kf_db& db, const MoeShapeKey& key, int64_t t, const char* function,
                     const kf_kernel** kernel) {
  if (t < 1) return fail(KF_ERR_INVALID_ARGUMENT, "%s: t = %lld, must be at least 1", function, (long long)t);
  if (const ShapeEntry* entry = find_moe_entry(db, key)) {
    *kernel = pick(db, *entry, t);
    return KF_OK;
  }
  char text[128];
  format_moe_shape_key(key, text, sizeof text);
  return fail(KF_ERR_UNSUPPORTED_SHAPE,
              "%s: no tuned kernel for %s %s on %s in pack '%s' (MoE GEMMs have no generic fallback: tune the shape)",
              function, moe_op_name(key.gemm), text, db.arch.c_str(), db.path.c_str());
}

}  // namespace rt
}  // namespace kf
