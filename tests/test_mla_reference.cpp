// The sparse MLA decode reference (tuner/mla_reference.h) against a direct softmax
// written here (no max shift, keys gathered by their own loop), its defined edge cases,
// and split-KV partials recombined.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "linear_reference.h"
#include "mla_reference.h"
#include "test_util.h"

namespace {

using kf_test::contains;
using kf_test::error_of;
constexpr int64_t D = 576, V = 512;

// A fresh seed per run (never 0), printed so that a failure can be replayed.
uint64_t fresh_seed() {
  std::random_device rd;
  const char* fixed = std::getenv("KF_TEST_SEED");
  const uint64_t s = fixed ? std::strtoull(fixed, nullptr, 10) : (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;
  MESSAGE("seed " << s << " (KF_TEST_SEED=" << s << " replays it)");
  return s;
}

// q, kv ~ U(-1, 1) in bf16; indices drawn from [0, S) with `unused` -1 slots at the end.
kf::MlaDecodeProblem random_problem(int64_t queries, int64_t heads, int64_t s, int64_t topk, std::mt19937_64& rng) {
  kf::MlaDecodeProblem p;
  p.queries = queries, p.heads = heads, p.kv_rows = s, p.topk = topk;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  p.q.resize(queries * heads * D);
  for (auto& v : p.q) v = kf::float_to_half_bits(u(rng), true);
  p.kv.resize(s * D);
  for (auto& v : p.kv) v = kf::float_to_half_bits(u(rng), true);
  p.indices.resize(queries * topk);
  for (auto& i : p.indices) i = static_cast<int32_t>(rng() % s);
  p.softmax_scale = 1.0 / std::sqrt(static_cast<double>(D));
  return p;
}

double bf(uint16_t h) { return kf::half_bits_to_float(h, true); }

// The direct definition for one (q, h) over an explicit list of KV rows.
void naive(const kf::MlaDecodeProblem& p, int64_t q, int64_t h, const std::vector<int64_t>& rows,
           std::vector<double>& o, double& lse) {
  o.assign(V, 0.0);
  std::vector<double> e(rows.size());
  double sum = 0;
  for (size_t j = 0; j < rows.size(); ++j) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += bf(p.q[(q * p.heads + h) * D + d]) * bf(p.kv[rows[j] * D + d]);
    e[j] = std::exp(dot * p.softmax_scale);
    sum += e[j];
  }
  for (size_t j = 0; j < rows.size(); ++j)
    for (int64_t d = 0; d < V; ++d) o[d] += e[j] / sum * bf(p.kv[rows[j] * D + d]);
  lse = std::log(sum);
}

// Every query and head of r against naive() over the rows listed by `rows_of(q)`.
template <class F>
void check_against_naive(const kf::MlaDecodeProblem& p, const kf::MlaDecodeResult& r, F rows_of) {
  REQUIRE(r.o.size() == static_cast<size_t>(p.queries * p.heads * V));
  REQUIRE(r.lse.size() == static_cast<size_t>(p.queries * p.heads));
  std::vector<double> o;
  double lse = 0;
  for (int64_t q = 0; q < p.queries; ++q)
    for (int64_t h = 0; h < p.heads; ++h) {
      CAPTURE(q);
      CAPTURE(h);
      const std::vector<int64_t> rows = rows_of(q);
      if (rows.empty()) {  // defined: o = 0, lse = -inf (the direct formula would give 0/0)
        REQUIRE(r.lse[q * p.heads + h] == -INFINITY);
        for (int64_t d = 0; d < V; ++d) REQUIRE(r.o[(q * p.heads + h) * V + d] == 0.0);
        continue;
      }
      naive(p, q, h, rows, o, lse);
      REQUIRE(r.lse[q * p.heads + h] == doctest::Approx(lse).epsilon(1e-12));
      for (int64_t d = 0; d < V; ++d) REQUIRE(r.o[(q * p.heads + h) * V + d] == doctest::Approx(o[d]).epsilon(1e-10));
    }
}

std::vector<int64_t> valid_indices(const kf::MlaDecodeProblem& p, int64_t q) {
  std::vector<int64_t> rows;
  for (int64_t j = 0; j < p.topk; ++j)
    if (p.indices[q * p.topk + j] != -1) rows.push_back(p.indices[q * p.topk + j]);
  return rows;
}

void require_equal(const kf::MlaDecodeResult& a, const kf::MlaDecodeResult& b, double tol) {
  REQUIRE(a.o.size() == b.o.size());
  REQUIRE(a.lse.size() == b.lse.size());
  for (size_t i = 0; i < a.lse.size(); ++i)
    REQUIRE((a.lse[i] == b.lse[i] || std::fabs(a.lse[i] - b.lse[i]) <= tol));  // == covers -inf
  for (size_t i = 0; i < a.o.size(); ++i) REQUIRE(std::fabs(a.o[i] - b.o[i]) <= tol);
}

}  // namespace

TEST_SUITE("mla reference") {

TEST_CASE("decode against a direct softmax: H 16, topk 8 .. 64, S 100, some -1 slots") {
  std::mt19937_64 rng(fresh_seed());
  for (int64_t topk : {8, 33, 64}) {
    CAPTURE(topk);
    auto p = random_problem(3, 16, 100, topk, rng);
    p.indices[topk - 1] = -1;  // query 0: one unused slot at the end
    p.indices[1 * topk + 2] = -1;  // query 1: one in the middle
    p.softmax_scale = 0.05 + 0.1 * (topk / 64.0);
    check_against_naive(p, kf::mla_decode_reference(p), [&](int64_t q) { return valid_indices(p, q); });
  }
}

TEST_CASE("edge cases: a query with no key, topk beyond the valid rows, duplicates count twice") {
  std::mt19937_64 rng(fresh_seed());
  auto p = random_problem(3, 16, 10, 16, rng);
  // Query 0: all -1. Query 1: each of the 10 rows once, then 6 unused slots. Query 2: row 7 three times.
  for (int64_t j = 0; j < 16; ++j) {
    p.indices[j] = -1;
    p.indices[16 + j] = j < 10 ? static_cast<int32_t>(9 - j) : -1;
  }
  p.indices[32 + 3] = 7, p.indices[32 + 8] = 7, p.indices[32 + 11] = 7;
  const auto r = kf::mla_decode_reference(p);
  for (int64_t h = 0; h < 16; ++h) {
    CHECK(r.lse[h] == -INFINITY);
    for (int64_t d = 0; d < V; ++d) REQUIRE(r.o[h * V + d] == 0.0);
  }
  CHECK(kf::mla_keys(p, 0).empty());
  CHECK(kf::mla_keys(p, 1).size() == 10);
  check_against_naive(p, r, [&](int64_t q) { return valid_indices(p, q); });

  // A duplicate is a separate key: the same as pointing the second copy at an identical row.
  auto dup = random_problem(1, 16, 20, 8, rng);
  dup.indices = {4, 11, 4, 0, 19, 4, -1, 2};
  auto distinct = dup;
  distinct.kv_rows = 22;
  distinct.kv.insert(distinct.kv.end(), dup.kv.begin() + 4 * D, dup.kv.begin() + 5 * D);  // row 20 = row 4
  distinct.kv.insert(distinct.kv.end(), dup.kv.begin() + 4 * D, dup.kv.begin() + 5 * D);  // row 21 = row 4
  distinct.indices = {4, 11, 20, 0, 19, 21, -1, 2};
  require_equal(kf::mla_decode_reference(dup), kf::mla_decode_reference(distinct), 1e-14);
  auto once = dup;  // and not the same as counting it once
  once.indices = {4, 11, -1, 0, 19, -1, -1, 2};
  CHECK(kf::mla_decode_reference(once).lse[0] != doctest::Approx(kf::mla_decode_reference(dup).lse[0]));
}

TEST_CASE("extras: always-attended rows after the indices, an overlap counted twice") {
  std::mt19937_64 rng(fresh_seed());
  auto p = random_problem(3, 16, 100, 8, rng);
  p.extra_start = {90, 0, 40};
  p.extra_count = {10, 0, 4};
  p.indices[2 * 8 + 0] = 41;  // query 2: row 41 both an index and in its window
  for (int64_t j = 0; j < 8; ++j) p.indices[8 + j] = -1;  // query 1: nothing but an empty window
  auto rows_of = [&](int64_t q) {
    auto rows = valid_indices(p, q);
    for (int32_t i = 0; i < p.extra_count[q]; ++i) rows.push_back(p.extra_start[q] + i);
    return rows;
  };
  const auto r = kf::mla_decode_reference(p);
  CHECK(r.lse[16] == -INFINITY);
  check_against_naive(p, r, rows_of);
  CHECK(kf::mla_keys(p, 2).size() == 12);
  // The same as listing the window in the indices.
  auto listed = random_problem(3, 16, 100, 18, rng);
  listed.q = p.q, listed.kv = p.kv, listed.softmax_scale = p.softmax_scale;
  for (int64_t q = 0; q < 3; ++q) {
    auto rows = rows_of(q);
    for (int64_t j = 0; j < 18; ++j)
      listed.indices[q * 18 + j] = j < static_cast<int64_t>(rows.size()) ? static_cast<int32_t>(rows[j]) : -1;
  }
  require_equal(r, kf::mla_decode_reference(listed), 1e-14);
}

TEST_CASE("errors name the bad index, range or size") {
  std::mt19937_64 rng(fresh_seed());
  const auto good = random_problem(2, 16, 100, 8, rng);
  auto p = good;
  p.indices[8 + 5] = 100;
  CHECK(contains(error_of([&] { kf::mla_decode_reference(p); }), "index 100 of query 1 (slot 5)"));
  p.indices[8 + 5] = -2;
  CHECK(contains(error_of([&] { kf::mla_decode_reference(p); }), "index -2"));
  p = good;
  p.extra_start = {0, 95};
  p.extra_count = {3, 6};
  CHECK(contains(error_of([&] { kf::mla_decode_reference(p); }), "extra rows 95 .. 101"));
  p.extra_count = {3};
  CHECK(contains(error_of([&] { kf::mla_decode_reference(p); }), "extra_count has 1"));
  p = good;
  p.kv.pop_back();
  CHECK(contains(error_of([&] { kf::mla_decode_reference(p); }), "kv has 57599"));
  p = good;
  p.heads = 8;
  CHECK(contains(error_of([&] { kf::mla_decode_reference(p); }), "q has 18432"));
  CHECK(contains(error_of([&] { kf::mla_split_range(10, 3, 3); }), "split 3 of 3"));
  CHECK(contains(error_of([] { kf::mla_combine({}); }), "no partials"));
}

TEST_CASE("split-KV: each part is the softmax over its slots; the combine equals the unsplit result") {
  std::mt19937_64 rng(fresh_seed());
  auto p = random_problem(3, 16, 100, 64, rng);
  p.extra_start = {80, 0, 10};
  p.extra_count = {16, 0, 5};
  for (int64_t j = 0; j < 64; ++j) p.indices[64 + j] = -1;  // query 1 has no key: every part empty
  for (int64_t j = 20; j < 64; ++j) p.indices[j] = -1;      // query 0: a -1 tail, so some parts empty
  // Balanced contiguous parts: 80 slots in 3 -> [0, 26), [26, 53), [53, 80).
  CHECK(kf::mla_split_range(80, 0, 3) == std::pair<int64_t, int64_t>{0, 26});
  CHECK(kf::mla_split_range(80, 1, 3) == std::pair<int64_t, int64_t>{26, 53});
  CHECK(kf::mla_split_range(80, 2, 3) == std::pair<int64_t, int64_t>{53, 80});
  CHECK(kf::mla_split_range(2, 1, 5) == std::pair<int64_t, int64_t>{0, 0});

  // Part 1 of 3 checked on its own: query 0's slots 26 .. 53 are all -1 but 0 -> empty;
  // query 2's 69 slots -> [23, 46), all indices.
  const auto part = kf::mla_decode_split(p, 1, 3);
  CHECK(part.lse[0] == -INFINITY);
  for (int64_t h = 0; h < 16; ++h) {
    std::vector<double> o;
    double lse = 0;
    std::vector<int64_t> rows(p.indices.begin() + 128 + 23, p.indices.begin() + 128 + 46);
    naive(p, 2, h, rows, o, lse);
    CHECK(part.lse[32 + h] == doctest::Approx(lse).epsilon(1e-12));
    CHECK(part.o[(32 + h) * V + 7] == doctest::Approx(o[7]).epsilon(1e-10));
  }

  const auto whole = kf::mla_decode_reference(p);
  for (int splits : {1, 2, 3, 7, 64, 200}) {
    CAPTURE(splits);
    std::vector<kf::MlaDecodeResult> parts;
    for (int i = 0; i < splits; ++i) parts.push_back(kf::mla_decode_split(p, i, splits));
    const auto combined = kf::mla_combine(parts);
    require_equal(combined, whole, 1e-12);
    for (int64_t h = 0; h < 16; ++h) REQUIRE(combined.lse[16 + h] == -INFINITY);
  }
}

}  // TEST_SUITE
