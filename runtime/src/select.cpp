#include "select.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "status.h"

namespace kf {
namespace rt {

namespace {

const char* kLinearOp = "w4a16_linear";

// The range of `entry` that covers m (ranges are contiguous from 1, see catalog.cpp).
const kf_kernel* pick(const kf_db& db, const ShapeEntry& entry, int64_t m) {
  const WinnerRange* first = db.ranges.data() + entry.first;
  const WinnerRange* last = first + entry.count;
  const WinnerRange* after = std::upper_bound(first, last, m, [](int64_t v, const WinnerRange& r) { return v < r.lo; });
  return (after == first ? first : after - 1)->kernel;
}

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
  // splitmix64 steps over the fields; 0 is reserved for empty slots.
  uint64_t h = 0x9e3779b97f4a7c15ull;
  const uint64_t fields[] = {static_cast<uint64_t>(key.n), static_cast<uint64_t>(key.k),
                             static_cast<uint64_t>(key.group), uint64_t(key.bf16) << 1 | uint64_t(key.asym)};
  for (uint64_t f : fields) {
    h ^= f + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h ? h : 1;
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
  if (std::strcmp(op, kLinearOp) != 0)
    return fail(KF_ERR_NOT_FOUND, "kf_select: op '%s' has no kernels in this runtime (it serves %s)", op, kLinearOp);
  LinearShapeKey key;
  if (!parse_linear_shape_key(shape_key, &key))
    return fail(KF_ERR_INVALID_ARGUMENT,
                "kf_select: bad w4a16_linear shape key '%s' (expected like n12288_k2048_g128_bf16_sym)", shape_key);
  return select_linear(db, key, m, kernel);
}

}  // namespace rt
}  // namespace kf
