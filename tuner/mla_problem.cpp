#include "mla_problem.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <thread>

#include "error.h"
#include "linear_reference.h"
#include "mla_reference.h"
#include "sparse_mla/launch.h"

namespace kf {

namespace {

constexpr int64_t kDim = mla::kHeadDim, kOut = mla::kLatentDim;
constexpr int64_t kHeadChunk = 16;  // heads per reference task

uint64_t mix(uint64_t seed, uint64_t block) {  // splitmix64 of (seed, block)
  uint64_t z = seed + (block + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The N(0, 1) quantile at (i + 0.5) / 65536, as bf16 and fp16 bits.
struct NormalTable {
  std::vector<uint16_t> bits[2];  // [0] fp16, [1] bf16
  NormalTable() {
    bits[0].resize(65536);
    bits[1].resize(65536);
    for (int i = 0; i < 65536; ++i) {
      const double p = (i + 0.5) / 65536.0;
      double lo = -10, hi = 10;  // bisection on Phi(x) = erfc(-x / sqrt 2) / 2
      for (int it = 0; it < 60; ++it) {
        const double mid = (lo + hi) / 2;
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      const float x = static_cast<float>((lo + hi) / 2);
      bits[0][i] = float_to_half_bits(x, false);
      bits[1][i] = float_to_half_bits(x, true);
    }
  }
};

const uint16_t* normal_table(bool bf16) {
  static const NormalTable t;
  return t.bits[bf16].data();
}

void flag(Measurement& r, const std::string& why) {
  if (!r.disposition.empty()) return;
  r.disposition = "incorrect";
  r.message = why;
}

bool finite_bits(uint16_t h, bool bf16) { return bf16 ? (h & 0x7f80) != 0x7f80 : (h & 0x7c00) != 0x7c00; }

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The slot list of query q as a problem of its own: q's rows of heads [h0, h0 + hc), one
// KV row per slot position (in slot order; zeros for an unused slot), indices = the
// positions. Exactly the sums the full problem makes for those heads.
MlaDecodeProblem compact_problem(const MlaTuneProblem& p, int64_t q, int64_t h0, int64_t hc) {
  const MlaShape& s = p.shape;
  const bool extras = !p.extra_count.empty();
  const int64_t ec = extras ? p.extra_count[q] : 0, slots = s.topk + ec;
  MlaDecodeProblem c;
  c.queries = 1;
  c.heads = hc;
  c.kv_rows = slots;
  c.topk = s.topk;
  c.softmax_scale = p.softmax_scale;
  c.bf16 = s.bf16;
  c.q.assign(p.q.begin() + (q * s.heads + h0) * kDim, p.q.begin() + (q * s.heads + h0 + hc) * kDim);
  c.kv.assign(slots * kDim, 0);
  c.indices.resize(s.topk);
  for (int64_t pos = 0; pos < slots; ++pos) {
    const int64_t row = pos < s.topk ? p.indices[q * s.topk + pos] : p.extra_start[q] + (pos - s.topk);
    if (pos < s.topk) c.indices[pos] = row >= 0 ? static_cast<int32_t>(pos) : -1;
    if (row >= 0) mla_kv_fill(p, row, 1, &c.kv[pos * kDim]);
  }
  if (extras) {
    c.extra_start = {static_cast<int32_t>(s.topk)};
    c.extra_count = {static_cast<int32_t>(ec)};
  }
  return c;
}

}  // namespace

int64_t mla_region_rows(const MlaShape& s, int64_t queries) {
  if (queries < 1) throw Error("MLA problem of " + std::to_string(queries) + " queries");
  return std::max((kMlaMinKvRows + queries - 1) / queries, s.topk + s.extras);
}

int64_t mla_kv_rows(const MlaShape& s, int64_t queries) { return queries * mla_region_rows(s, queries); }

int64_t mla_kv_rows_bound(const MlaShape& s, int64_t max_queries) {
  // q * ceil(32768 / q) < 32768 + q, and q * (topk + extras) grows with q.
  return std::max(kMlaMinKvRows + max_queries, max_queries * (s.topk + s.extras));
}

void mla_random_values(uint64_t seed, int64_t first, int64_t count, bool bf16, uint16_t* out) {
  const uint16_t* table = normal_table(bf16);
  int64_t block = -1;
  uint64_t h = 0;
  for (int64_t i = first; i < first + count; ++i) {
    if (i / 4 != block) h = mix(seed, static_cast<uint64_t>(block = i / 4));
    out[i - first] = table[(h >> (16 * (i % 4))) & 0xffff];
  }
}

void mla_kv_fill(const MlaTuneProblem& p, int64_t row0, int64_t rows, uint16_t* out) {
  if (row0 < 0 || rows < 0 || row0 + rows > p.kv_rows)
    throw Error("internal: KV rows " + std::to_string(row0) + " + " + std::to_string(rows) + " outside the cache of " +
                std::to_string(p.kv_rows));
  mla_random_values(p.kv_seed, row0 * kDim, rows * kDim, p.shape.bf16, out);
}

MlaTuneProblem make_mla_problem(const MlaShape& s, int64_t queries, std::mt19937_64& rng) {
  MlaTuneProblem p;
  p.shape = s;
  p.queries = queries;
  p.region = mla_region_rows(s, queries);
  p.kv_rows = queries * p.region;
  if (p.kv_rows > INT32_MAX) throw Error("MLA problem of " + std::to_string(queries) + " queries: KV cache too large");
  p.kv_seed = rng();
  p.q.resize(queries * s.heads * kDim);
  mla_random_values(rng(), 0, static_cast<int64_t>(p.q.size()), s.bf16, p.q.data());
  p.softmax_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(kDim)));
  // topk distinct rows of each query's region: the first topk of a partial shuffle.
  p.indices.resize(queries * s.topk);
  std::vector<int32_t> pool(p.region);
  for (int64_t q = 0; q < queries; ++q) {
    std::iota(pool.begin(), pool.end(), static_cast<int32_t>(q * p.region));
    for (int64_t j = 0; j < s.topk; ++j) {
      std::uniform_int_distribution<int64_t> pick(j, p.region - 1);
      std::swap(pool[j], pool[pick(rng)]);
      p.indices[q * s.topk + j] = pool[j];
    }
  }
  // Unused slots: the last query's tail, and a few scattered ones in the first.
  for (int64_t j = s.topk - s.topk / 4; j < s.topk; ++j) p.indices[(queries - 1) * s.topk + j] = -1;
  if (queries >= 2) {
    std::uniform_int_distribution<int64_t> slot(0, s.topk - 1);
    for (int64_t n = std::min<int64_t>(16, s.topk / 8); n > 0; --n) p.indices[slot(rng)] = -1;
  }
  if (s.extras > 0) {
    p.extra_start.resize(queries);
    p.extra_count.assign(queries, static_cast<int32_t>(s.extras));
    std::uniform_int_distribution<int64_t> start(0, p.region - s.extras);
    for (int64_t q = 0; q < queries; ++q) p.extra_start[q] = static_cast<int32_t>(q * p.region + start(rng));
  }
  return p;
}

std::vector<int64_t> mla_checked_queries(int64_t queries) {
  std::vector<int64_t> out;
  if (queries <= kMlaAllCheckedQueries) {
    for (int64_t q = 0; q < queries; ++q) out.push_back(q);
    return out;
  }
  return {0, queries / 2, queries - 1};
}

MlaCheckReference mla_check_reference(const MlaTuneProblem& p, int threads) {
  const int64_t heads = p.shape.heads;
  MlaCheckReference ref;
  ref.queries = mla_checked_queries(p.queries);
  const int64_t n = static_cast<int64_t>(ref.queries.size());
  ref.o.assign(n * heads * kOut, 0.0);
  ref.lse.assign(n * heads, 0.0);
  const int64_t chunks = (heads + kHeadChunk - 1) / kHeadChunk, tasks = n * chunks;
  std::atomic<int64_t> next{0};
  std::vector<std::string> errors(std::max(1, threads));
  auto work = [&](int id) {
    try {
      for (int64_t t; (t = next++) < tasks;) {
        const int64_t i = t / chunks, h0 = (t % chunks) * kHeadChunk, hc = std::min(kHeadChunk, heads - h0);
        const MlaDecodeResult r = mla_decode_reference(compact_problem(p, ref.queries[i], h0, hc));
        std::copy(r.o.begin(), r.o.end(), ref.o.begin() + (i * heads + h0) * kOut);
        std::copy(r.lse.begin(), r.lse.end(), ref.lse.begin() + i * heads + h0);
      }
    } catch (const std::exception& e) {
      errors[id] = e.what();
      next = tasks;
    }
  };
  std::vector<std::thread> pool;
  for (int id = 0; id < std::max(1, threads); ++id) pool.emplace_back(work, id);
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw Error("MLA reference: " + e);
  return ref;
}

void judge_mla_output(const std::vector<uint16_t>& o, const std::vector<float>& lse, const MlaCheckReference& ref,
                      const MlaTuneProblem& p, Measurement& r) {
  const MlaShape& s = p.shape;
  const int64_t heads = s.heads, rows = p.queries * heads;
  if (static_cast<int64_t>(o.size()) < (rows + heads) * kOut || static_cast<int64_t>(lse.size()) < rows + heads)
    throw Error("internal: MLA output read back smaller than Q + 1 queries");
  char why[200] = "";
  for (int64_t i = 0; i < rows * kOut && !why[0]; ++i)
    if (o[i] == 0xffff || !finite_bits(o[i], s.bf16))
      std::snprintf(why, sizeof why, "o of query %lld, head %lld %s (dim %lld)",
                    static_cast<long long>(i / kOut / heads), static_cast<long long>(i / kOut % heads),
                    o[i] == 0xffff ? "not written" : "not finite", static_cast<long long>(i % kOut));
  for (int64_t i = 0; i < rows && !why[0]; ++i)
    if (std::isnan(lse[i]))
      std::snprintf(why, sizeof why, "lse of query %lld, head %lld not written (or NaN)",
                    static_cast<long long>(i / heads), static_cast<long long>(i % heads));
  double err = 0, norm = 0, lse_err = 0;
  int64_t worst = -1;
  for (size_t c = 0; c < ref.queries.size(); ++c)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t row = ref.queries[c] * heads + h, at = static_cast<int64_t>(c) * heads + h;
      for (int64_t d = 0; d < kOut; ++d) {
        const double v = half_bits_to_float(o[row * kOut + d], s.bf16), want = ref.o[at * kOut + d];
        err += (v - want) * (v - want);
        norm += want * want;
      }
      const double want = ref.lse[at], got = lse[row];
      const double e = std::isinf(want) ? (got == want ? 0.0 : INFINITY) : std::fabs(got - want);
      if (!(e <= lse_err)) {
        lse_err = e;
        worst = row;
      }
    }
  const double e = why[0] ? INFINITY : std::sqrt(err / (norm > 0 ? norm : 1));
  const double tol = mla_tolerance(s.bf16);
  r.max_rel_err = e;
  if (!why[0] && !(e <= tol)) std::snprintf(why, sizeof why, "normalised error of o %.3g above tolerance %.3g", e, tol);
  if (!why[0] && !(lse_err <= kMlaLseTolerance))
    std::snprintf(why, sizeof why, "lse of query %lld, head %lld off by %.3g (tolerance %.3g)",
                  static_cast<long long>(worst / heads), static_cast<long long>(worst % heads), lse_err,
                  kMlaLseTolerance);
  for (int64_t i = rows * kOut; i < (rows + heads) * kOut && !why[0]; ++i)
    if (o[i] != 0xffff) std::snprintf(why, sizeof why, "wrote o past the last query (guard query %lld)",
                                      static_cast<long long>(p.queries));
  for (int64_t i = rows; i < rows + heads && !why[0]; ++i)
    if (float_bits(lse[i]) != 0xffffffffu)
      std::snprintf(why, sizeof why, "wrote lse past the last query (guard query %lld)",
                    static_cast<long long>(p.queries));
  if (why[0]) flag(r, why);
}

}  // namespace kf
