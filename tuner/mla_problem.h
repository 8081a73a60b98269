// Host side of autotune's sparse_mla_decode measurements (no GPU API, so the CPU tests
// check it): the inputs of one (shape, Q) problem, the float64 reference of the queries a
// verification checks (mla_reference.h), and the verdict on a run's o and lse
// (templates/sparse_mla/args.h).
//
// The problem of Q queries:
//   - KV cache of S = Q * R rows, R = max(ceil(32768 / Q), topk + extras): query q attends
//     only rows of its own region [q R, (q + 1) R), as the requests of a decode batch each
//     attend their own context. One query sees topk of 32768 rows; from Q = 16 on, every
//     query has a region just large enough for its slots, so no query finds another's rows
//     in L2 (at Q = 1024, S is 2.2M rows, 2.5 GB). The cache is never held on the host:
//     its values come from a counter-based generator (mla_random_values), drawn chunk by
//     chunk for the upload and row by row for the reference.
//   - q [Q, H, 576] and kv values ~ N(0, 1) (a 16-bit inverse-CDF table), softmax_scale
//     1 / sqrt(576): logits ~ N(0, 1), so the softmax over ~2048 keys is neither flat nor
//     one-hot.
//   - indices: topk distinct random rows of the query's region; the last query's last
//     topk / 4 slots are -1 (a short context), and with Q >= 2 the first query has
//     min(16, topk / 8) scattered -1 slots.
//   - extras (shapes x > 0): extra_count = the shape's extras bucket, extra_start random
//     within the query's region (a window, which may overlap its indices: counted twice).
//   - fresh per (shape, Q): new seeds for q, kv and indices from the measurer's rng.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "measurer.h"
#include "mla_family.h"

namespace kf {

constexpr int64_t kMlaMinKvRows = 32768;
// Queries whose float64 reference a verification computes: all of them up to this many,
// else the first, the middle and the last one.
constexpr int64_t kMlaAllCheckedQueries = 4;
// Tolerances: ||o - ref|| / ||ref|| over the checked queries (fp32 accumulation, the
// softmax numerators rounded to 16 bits before P . V, o rounded once), and lse absolute.
inline double mla_tolerance(bool bf16) { return bf16 ? 1e-2 : 5e-3; }
constexpr double kMlaLseTolerance = 1e-2;

// Rows of one query's region, and the cache size S, for Q queries.
int64_t mla_region_rows(const MlaShape& s, int64_t queries);
int64_t mla_kv_rows(const MlaShape& s, int64_t queries);
// An upper bound of mla_kv_rows(s, q) over 1 <= q <= max_queries (device buffer size).
int64_t mla_kv_rows_bound(const MlaShape& s, int64_t max_queries);

// Elements [first, first + count) of the pseudo-normal stream `seed` as bf16 or fp16 bits:
// element i is the N(0, 1) quantile picked by 16 bits of a 64-bit hash of (seed, i / 4).
void mla_random_values(uint64_t seed, int64_t first, int64_t count, bool bf16, uint16_t* out);

struct MlaTuneProblem {
  MlaShape shape;
  int64_t queries = 0, region = 0, kv_rows = 0;  // Q, R, S = Q * R
  uint64_t kv_seed = 0;                          // kv[r, d] = stream element r * 576 + d
  std::vector<uint16_t> q;                       // [Q, H, 576]
  std::vector<int32_t> indices;                  // [Q, topk], -1 = unused
  std::vector<int32_t> extra_start, extra_count;  // [Q] each; empty when the shape has no extras
  float softmax_scale = 0;
};

MlaTuneProblem make_mla_problem(const MlaShape& shape, int64_t queries, std::mt19937_64& rng);
// KV rows [row0, row0 + rows) of the problem's cache, [rows, 576], into `out`.
void mla_kv_fill(const MlaTuneProblem& p, int64_t row0, int64_t rows, uint16_t* out);

std::vector<int64_t> mla_checked_queries(int64_t queries);

struct MlaCheckReference {
  std::vector<int64_t> queries;  // mla_checked_queries
  std::vector<double> o;         // [queries.size(), H, 512]
  std::vector<double> lse;       // [queries.size(), H]
};
// mla_decode_reference of the checked queries, each (query, 16 heads) a task on `threads`
// host threads over a compact copy of the rows it attends.
MlaCheckReference mla_check_reference(const MlaTuneProblem& p, int threads);

// The verdict on o ([Q + 1, H, 512], poisoned with 0xFFFF before the run) and lse
// ([Q + 1, H], poisoned with NaN bits 0xFFFFFFFF): every o element of the Q queries
// written and finite, every lse written; normalised error of o over the checked queries
// within mla_tolerance and their lse within kMlaLseTolerance (-inf where the reference
// has no key); the guard query Q untouched. Sets r.max_rel_err; flags r incorrect.
void judge_mla_output(const std::vector<uint16_t>& o, const std::vector<float>& lse, const MlaCheckReference& ref,
                      const MlaTuneProblem& p, Measurement& r);

}  // namespace kf
