#include "mla_reference.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "error.h"
#include "linear_reference.h"

namespace kf {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

void expect_size(const char* what, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want)
    throw Error(std::string(what) + " has " + std::to_string(got) + " elements, expected " + str(want));
}

bool has_extras(const MlaDecodeProblem& p) { return !p.extra_count.empty(); }

// KV row at position pos of query q's slot list, or -1 for an unused slot.
int64_t slot_row(const MlaDecodeProblem& p, int64_t q, int64_t pos) {
  if (pos < p.topk) return p.indices[q * p.topk + pos];
  return p.extra_start[q] + (pos - p.topk);
}

int64_t slot_count(const MlaDecodeProblem& p, int64_t q) { return p.topk + (has_extras(p) ? p.extra_count[q] : 0); }

// Softmax over the slot positions [begin, end) of every (q, h), from kv already in float64.
MlaDecodeResult attend(const MlaDecodeProblem& p, const std::vector<double>& kv,
                       const std::vector<std::pair<int64_t, int64_t>>& range) {
  MlaDecodeResult r;
  r.o.assign(p.queries * p.heads * kMlaLatentDim, 0.0);
  r.lse.assign(p.queries * p.heads, -INFINITY);
  std::vector<double> qd(kMlaHeadDim), logit;
  std::vector<int64_t> rows;
  for (int64_t q = 0; q < p.queries; ++q) {
    rows.clear();
    for (int64_t pos = range[q].first; pos < range[q].second; ++pos)
      if (slot_row(p, q, pos) >= 0) rows.push_back(slot_row(p, q, pos));
    if (rows.empty()) continue;  // o = 0, lse = -inf
    for (int64_t h = 0; h < p.heads; ++h) {
      const int64_t qh = q * p.heads + h;
      for (int64_t d = 0; d < kMlaHeadDim; ++d) qd[d] = half_bits_to_float(p.q[qh * kMlaHeadDim + d], p.bf16);
      logit.assign(rows.size(), 0.0);
      double mx = -INFINITY;
      for (size_t j = 0; j < rows.size(); ++j) {
        const double* k = &kv[rows[j] * kMlaHeadDim];
        double acc = 0;
        for (int64_t d = 0; d < kMlaHeadDim; ++d) acc += qd[d] * k[d];
        logit[j] = acc * p.softmax_scale;
        mx = std::max(mx, logit[j]);
      }
      // Shifted by the max so that large scaled logits cannot overflow exp.
      double sum = 0;
      double* o = &r.o[qh * kMlaLatentDim];
      for (size_t j = 0; j < rows.size(); ++j) {
        const double w = std::exp(logit[j] - mx);
        sum += w;
        const double* v = &kv[rows[j] * kMlaHeadDim];
        for (int64_t d = 0; d < kMlaLatentDim; ++d) o[d] += w * v[d];
      }
      for (int64_t d = 0; d < kMlaLatentDim; ++d) o[d] /= sum;
      r.lse[qh] = mx + std::log(sum);
    }
  }
  return r;
}

std::vector<double> kv_to_double(const MlaDecodeProblem& p) {
  std::vector<double> kv(p.kv.size());
  for (size_t i = 0; i < kv.size(); ++i) kv[i] = half_bits_to_float(p.kv[i], p.bf16);
  return kv;
}

}  // namespace

void check_mla_problem(const MlaDecodeProblem& p) {
  if (p.queries < 0 || p.heads < 1 || p.kv_rows < 0 || p.topk < 0)
    throw Error("MLA sizes Q " + str(p.queries) + ", H " + str(p.heads) + ", S " + str(p.kv_rows) + ", topk " +
                str(p.topk) + ": H must be positive, the others not negative");
  expect_size("q", p.q.size(), p.queries * p.heads * kMlaHeadDim);
  expect_size("kv", p.kv.size(), p.kv_rows * kMlaHeadDim);
  expect_size("indices", p.indices.size(), p.queries * p.topk);
  if (!std::isfinite(p.softmax_scale))
    throw Error("softmax scale " + std::to_string(p.softmax_scale) + " is not finite");
  if (has_extras(p) || !p.extra_start.empty()) {
    expect_size("extra_start", p.extra_start.size(), p.queries);
    expect_size("extra_count", p.extra_count.size(), p.queries);
  }
  for (int64_t q = 0; q < p.queries; ++q) {
    for (int64_t j = 0; j < p.topk; ++j) {
      const int32_t i = p.indices[q * p.topk + j];
      if (i < -1 || i >= p.kv_rows)
        throw Error("index " + str(i) + " of query " + str(q) + " (slot " + str(j) + ") is outside the KV cache of " +
                    str(p.kv_rows) + " rows (-1 marks an unused slot)");
    }
    if (!has_extras(p)) continue;
    const int64_t s = p.extra_start[q], c = p.extra_count[q];
    if (c < 0 || s < 0 || s + c > p.kv_rows)
      throw Error("extra rows " + str(s) + " .. " + str(s + c) + " (count " + str(c) + ") of query " + str(q) +
                  " are outside the KV cache of " + str(p.kv_rows) + " rows");
  }
}

std::vector<int64_t> mla_keys(const MlaDecodeProblem& p, int64_t q) {
  check_mla_problem(p);
  if (q < 0 || q >= p.queries) throw Error("query " + str(q) + " is outside [0, " + str(p.queries) + ")");
  std::vector<int64_t> rows;
  for (int64_t pos = 0; pos < slot_count(p, q); ++pos)
    if (slot_row(p, q, pos) >= 0) rows.push_back(slot_row(p, q, pos));
  return rows;
}

MlaDecodeResult mla_decode_reference(const MlaDecodeProblem& p) { return mla_decode_split(p, 0, 1); }

std::pair<int64_t, int64_t> mla_split_range(int64_t slots, int split, int splits) {
  if (splits < 1 || split < 0 || split >= splits)
    throw Error("split " + str(split) + " of " + str(splits) + ": expected 0 <= split < splits");
  return {slots * split / splits, slots * (split + 1) / splits};
}

MlaDecodeResult mla_decode_split(const MlaDecodeProblem& p, int split, int splits) {
  check_mla_problem(p);
  std::vector<std::pair<int64_t, int64_t>> range(p.queries);
  for (int64_t q = 0; q < p.queries; ++q) range[q] = mla_split_range(slot_count(p, q), split, splits);
  return attend(p, kv_to_double(p), range);
}

MlaDecodeResult mla_combine(const std::vector<MlaDecodeResult>& parts) {
  if (parts.empty()) throw Error("mla_combine: no partials");
  const size_t rows = parts[0].lse.size();
  for (const auto& part : parts)
    if (part.lse.size() != rows || part.o.size() != rows * kMlaLatentDim)
      throw Error("mla_combine: a partial has " + std::to_string(part.lse.size()) + " lse and " +
                  std::to_string(part.o.size()) + " o values, expected " + std::to_string(rows) + " and " +
                  std::to_string(rows * kMlaLatentDim));
  MlaDecodeResult r;
  r.o.assign(rows * kMlaLatentDim, 0.0);
  r.lse.assign(rows, -INFINITY);
  for (size_t i = 0; i < rows; ++i) {
    double mx = -INFINITY;
    for (const auto& part : parts) mx = std::max(mx, part.lse[i]);
    if (mx == -INFINITY) continue;  // no key in any part; also keeps exp(-inf - -inf) = NaN out
    double sum = 0;
    for (const auto& part : parts) sum += std::exp(part.lse[i] - mx);
    r.lse[i] = mx + std::log(sum);
    for (const auto& part : parts) {
      const double w = std::exp(part.lse[i] - r.lse[i]);
      if (w == 0) continue;  // an empty part (lse -inf): its o is 0 anyway
      for (int64_t d = 0; d < kMlaLatentDim; ++d) r.o[i * kMlaLatentDim + d] += w * part.o[i * kMlaLatentDim + d];
    }
  }
  return r;
}

}  // namespace kf
