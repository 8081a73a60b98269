#include "moe_reference.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

#include "device_plan.h"

namespace kf {

namespace {

void flag(Measurement& r, const std::string& why) {
  if (!r.disposition.empty()) return;
  r.disposition = "incorrect";
  r.message = why;
}

}  // namespace

void make_moe_weights(MoeProblem& p, const MoeShape& s, std::mt19937_64& rng) {
  p.shape = s;
  const int64_t g = s.expert().effective_group();
  std::uniform_real_distribution<float> us(0.5f, 1.5f);
  const float scale_norm = 1.f / (2.f * std::sqrt(static_cast<float>(s.k)));
  p.qweight.resize(s.experts * (s.k / 8) * s.n);
  for (size_t i = 0; i < p.qweight.size(); i += 2) {  // two words per draw: these are the big ones
    const uint64_t v = rng();
    p.qweight[i] = static_cast<uint32_t>(v);
    if (i + 1 < p.qweight.size()) p.qweight[i + 1] = static_cast<uint32_t>(v >> 32);
  }
  p.scales.resize(s.experts * (s.k / g) * s.n);
  for (auto& v : p.scales) v = float_to_half_bits(us(rng) * scale_norm, s.bf16);
  p.qzeros.clear();
  if (s.asym) {
    p.qzeros.resize(s.experts * (s.k / g) * (s.n / 8));
    for (auto& v : p.qzeros) v = static_cast<uint32_t>(rng());
  }
  p.t = 0;
}

void make_moe_activations(MoeProblem& p, const MoeRouting& routing, std::mt19937_64& rng) {
  const MoeShape& s = p.shape;
  p.t = routing.t;
  p.topk_ids = routing.topk_ids;
  std::uniform_real_distribution<float> ux(-1.f, 1.f), uw(0.f, 1.f);
  const int64_t rows = s.gemm == 1 ? p.t : p.t * s.top_k;
  p.x.resize(rows * s.k);
  for (auto& v : p.x) v = float_to_half_bits(ux(rng), s.bf16);
  p.topk_weights.resize(p.t * s.top_k);
  for (auto& w : p.topk_weights) w = uw(rng);
}

double moe_dequant(const MoeProblem& p, int64_t e, int64_t n, int64_t k) {
  const MoeShape& s = p.shape;
  const int64_t g = s.expert().effective_group(), groups = s.k / g, grp = k / g;
  const uint32_t q = (p.qweight[(e * (s.k / 8) + k / 8) * s.n + n] >> (4 * (k % 8))) & 15u;
  const uint32_t z = s.asym ? (p.qzeros[(e * groups + grp) * (s.n / 8) + n / 8] >> (4 * (n % 8))) & 15u : 8u;
  const double scale = half_bits_to_float(p.scales[(e * groups + grp) * s.n + n], s.bf16);
  return (static_cast<double>(q) - static_cast<double>(z)) * scale;
}

std::vector<int64_t> moe_checked_slots(const std::vector<int32_t>& topk_ids, int64_t experts, int64_t budget,
                                       std::mt19937_64& rng) {
  std::vector<int64_t> out;
  std::vector<std::vector<int64_t>> by_expert(experts);
  for (int64_t s = 0; s < static_cast<int64_t>(topk_ids.size()); ++s)
    if (topk_ids[s] >= 0 && topk_ids[s] < experts) by_expert[topk_ids[s]].push_back(s);
  const int64_t routed = std::count_if(topk_ids.begin(), topk_ids.end(), [&](int32_t e) { return e >= 0 && e < experts; });
  if (routed <= budget) {
    for (const auto& v : by_expert) out.insert(out.end(), v.begin(), v.end());
  } else {
    std::vector<int64_t> order;
    for (int64_t e = 0; e < experts; ++e)
      if (!by_expert[e].empty()) order.push_back(e);
    std::shuffle(order.begin(), order.end(), rng);
    int64_t left = budget;
    for (size_t i = 0; i < order.size(); ++i) {
      const auto& v = by_expert[order[i]];
      if (i > 0 && static_cast<int64_t>(v.size()) > left) continue;
      out.insert(out.end(), v.begin(), v.end());
      left -= static_cast<int64_t>(v.size());
      if (left <= 0) break;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

MoeReference moe_reference(const MoeProblem& p, std::vector<int64_t> slots, int threads) {
  const MoeShape& s = p.shape;
  MoeReference ref;
  ref.sampled = static_cast<int64_t>(slots.size()) <
                std::count_if(p.topk_ids.begin(), p.topk_ids.end(), [&](int32_t e) { return e >= 0 && e < s.experts; });
  ref.slots = std::move(slots);
  ref.y.assign(ref.slots.size() * s.n, 0.0);
  // Work items: (expert, 64 columns of N), each dequantising its rows once.
  std::map<int32_t, std::vector<size_t>> by_expert;  // expert -> indices into ref.slots
  for (size_t i = 0; i < ref.slots.size(); ++i) by_expert[p.topk_ids[ref.slots[i]]].push_back(i);
  std::vector<std::pair<int32_t, int64_t>> items;
  for (const auto& kv : by_expert)
    for (int64_t n0 = 0; n0 < s.n; n0 += 64) items.push_back({kv.first, n0});
  std::vector<double> xd(p.x.size());
  for (size_t i = 0; i < xd.size(); ++i) xd[i] = half_bits_to_float(p.x[i], s.bf16);
  std::atomic<size_t> next{0};
  auto work = [&] {
    std::vector<double> w(s.k);
    for (size_t it = next++; it < items.size(); it = next++) {
      const auto [e, n0] = items[it];
      const auto& rows = by_expert.at(e);
      for (int64_t n = n0; n < std::min(s.n, n0 + 64); ++n) {
        for (int64_t k = 0; k < s.k; ++k) w[k] = moe_dequant(p, e, n, k);
        for (size_t i : rows) {
          const int64_t slot = ref.slots[i];
          const double* xr = &xd[(s.gemm == 1 ? slot / s.top_k : slot) * s.k];
          double acc = 0;
          for (int64_t k = 0; k < s.k; ++k) acc += xr[k] * w[k];
          ref.y[i * s.n + n] = s.gemm == 2 ? acc * static_cast<double>(p.topk_weights[slot]) : acc;
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (s.gemm == 1) {
    const int64_t half = s.n / 2;
    ref.silu.resize(ref.slots.size() * half);
    for (size_t i = 0; i < ref.slots.size(); ++i)
      for (int64_t c = 0; c < half; ++c)
        ref.silu[i * half + c] = silu_mul_ref(ref.y[i * s.n + c], ref.y[i * s.n + half + c]);
  }
  return ref;
}

double silu_mul_ref(double g, double u) { return g / (1.0 + std::exp(-g)) * u; }

std::string check_moe_align(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                            int block_m, const std::vector<int32_t>& sorted_ids,
                            const std::vector<int32_t>& expert_ids, int32_t num_padded) {
  const int64_t slots = t * top_k;
  std::vector<int64_t> load(experts, 0);
  for (int32_t e : topk_ids)
    if (e >= 0 && e < experts) ++load[e];
  int64_t want = 0;
  for (int64_t l : load) want += (l + block_m - 1) / block_m * block_m;
  char why[200];
  if (num_padded != want) {
    std::snprintf(why, sizeof why, "num_padded %d, expected %lld", num_padded, static_cast<long long>(want));
    return why;
  }
  if (want > static_cast<int64_t>(sorted_ids.size()) || want / block_m > static_cast<int64_t>(expert_ids.size()))
    return "num_padded above the sorted capacity";
  std::vector<char> seen(slots, 0);
  int64_t pos = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t blocks = (load[e] + block_m - 1) / block_m;
    int64_t got = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t blk = pos / block_m + b;
      if (expert_ids[blk] != e) {
        std::snprintf(why, sizeof why, "expert_ids[%lld] = %d, expected expert %lld", static_cast<long long>(blk),
                      expert_ids[blk], static_cast<long long>(e));
        return why;
      }
      for (int64_t i = 0; i < block_m; ++i) {
        const int32_t id = sorted_ids[blk * block_m + i];
        if (id == slots) continue;  // padding
        if (id < 0 || id > slots || topk_ids[id] != e || seen[id]) {
          std::snprintf(why, sizeof why, "sorted_ids[%lld] = %d: not a slot of expert %lld (or repeated)",
                        static_cast<long long>(blk * block_m + i), id, static_cast<long long>(e));
          return why;
        }
        seen[id] = 1;
        ++got;
      }
    }
    if (got != load[e]) {
      std::snprintf(why, sizeof why, "expert %lld has %lld slots in sorted_ids, expected %lld",
                    static_cast<long long>(e), static_cast<long long>(got), static_cast<long long>(load[e]));
      return why;
    }
    pos += blocks * block_m;
  }
  return "";
}

int64_t moe_checked_rows(int64_t t, int64_t top_k) { return t * top_k + kGuardRows; }

void judge_moe_output(const std::vector<uint16_t>& y, const MoeReference& ref, const MoeShape& s, int64_t t,
                      Measurement& r, bool fused_silu) {
  const int64_t n = fused_silu ? s.n / 2 : s.n, slots = t * s.top_k;
  const std::vector<double>& want_rows = fused_silu ? ref.silu : ref.y;
  if (want_rows.size() != ref.slots.size() * n) return flag(r, "internal: no reference for this output width");
  char why[160] = "";
  for (int64_t i = 0; i < slots * n && !why[0]; ++i)
    if (!std::isfinite(half_bits_to_float(y[i], s.bf16)))
      std::snprintf(why, sizeof why, "slot %lld's row not fully written or not finite", static_cast<long long>(i / n));
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.slots.size(); ++i)
    for (int64_t c = 0; c < n; ++c) {
      const double v = half_bits_to_float(y[ref.slots[i] * n + c], s.bf16), want = want_rows[i * n + c];
      err += (v - want) * (v - want);
      norm += want * want;
    }
  const double e = why[0] ? INFINITY : std::sqrt(err / (norm > 0 ? norm : 1));
  const double tol = linear_tolerance(s.bf16);
  r.max_rel_err = e;
  if (!why[0] && !(e <= tol)) std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", e, tol);
  for (int64_t i = slots * n; i < moe_checked_rows(t, s.top_k) * n && !why[0]; ++i)
    if (y[i] != 0xffff)
      std::snprintf(why, sizeof why, "wrote row %lld past the last slot (padding rows must not be written)",
                    static_cast<long long>(i / n));
  if (why[0]) flag(r, why);
}

SiluMulProblem make_silu_mul_problem(int64_t rows, int64_t n, bool bf16, std::mt19937_64& rng) {
  SiluMulProblem p;
  p.rows = rows;
  p.n = n;
  p.bf16 = bf16;
  p.distinct = std::min(rows, kMoeCheckedSlots);
  // An elementwise kernel's time does not depend on the values: distinct rows for the
  // check, repeated for the rest (drawing T * top_k * 2n values at T = 4096 would cost
  // more host time than the measurement).
  std::uniform_real_distribution<float> u(-6.f, 6.f);
  p.h1.resize(rows * 2 * n);
  for (int64_t i = 0; i < p.distinct * 2 * n; ++i) p.h1[i] = float_to_half_bits(u(rng), bf16);
  for (int64_t i = p.distinct * 2 * n; i < rows * 2 * n; ++i) p.h1[i] = p.h1[i % (p.distinct * 2 * n)];
  p.ref.resize(p.distinct * n);
  for (int64_t r = 0; r < p.distinct; ++r)
    for (int64_t c = 0; c < n; ++c)
      p.ref[r * n + c] = silu_mul_ref(half_bits_to_float(p.h1[r * 2 * n + c], bf16),
                                      half_bits_to_float(p.h1[r * 2 * n + n + c], bf16));
  return p;
}

void judge_silu_mul_output(const std::vector<uint16_t>& h, const SiluMulProblem& p, Measurement& r) {
  const int64_t n = p.n;
  double err = 0, norm = 0;
  char why[160] = "";
  for (int64_t row = 0; row < p.rows && !why[0]; ++row)
    for (int64_t c = 0; c < n; ++c) {
      const double v = half_bits_to_float(h[row * n + c], p.bf16), want = p.ref[(row % p.distinct) * n + c];
      if (!std::isfinite(v)) {
        std::snprintf(why, sizeof why, "row %lld not fully written or not finite", static_cast<long long>(row));
        break;
      }
      err += (v - want) * (v - want);
      norm += want * want;
    }
  const double e = why[0] ? INFINITY : std::sqrt(err / (norm > 0 ? norm : 1));
  const double tol = linear_tolerance(p.bf16);
  r.max_rel_err = e;
  if (!why[0] && !(e <= tol)) std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", e, tol);
  for (int64_t i = p.rows * n; i < (p.rows + kGuardRows) * n && !why[0]; ++i)
    if (h[i] != 0xffff)
      std::snprintf(why, sizeof why, "wrote row %lld past the last one", static_cast<long long>(i / n));
  if (why[0]) flag(r, why);
}

double reduced_tolerance(bool bf16, int64_t top_k) {
  return linear_tolerance(bf16) + std::sqrt(static_cast<double>(top_k)) * (bf16 ? 0x1p-8 : 0x1p-11);
}

std::vector<float> reduced_check_weights(const MoeProblem& p, const MoeReference& ref) {
  if (!ref.sampled) return p.topk_weights;
  std::vector<float> w(p.topk_weights.size(), 0.f);
  for (int64_t s : ref.slots) w[s] = p.topk_weights[s];
  return w;
}

int64_t moe_reduced_rows(int64_t t) { return t + kGuardRows; }

void judge_moe_reduced_output(const std::vector<uint16_t>& y, const MoeReference& ref, const MoeShape& s, int64_t t,
                              Measurement& r) {
  const int64_t n = s.n;
  std::vector<double> want(t * n, 0.0);
  for (size_t i = 0; i < ref.slots.size(); ++i)
    for (int64_t c = 0; c < n; ++c) want[ref.slots[i] / s.top_k * n + c] += ref.y[i * n + c];
  char why[160] = "";
  double err = 0, norm = 0;
  for (int64_t i = 0; i < t * n && !why[0]; ++i) {
    const double v = half_bits_to_float(y[i], s.bf16);
    if (!std::isfinite(v))
      std::snprintf(why, sizeof why, "token %lld's row not zeroed, or an add not finite", static_cast<long long>(i / n));
    err += (v - want[i]) * (v - want[i]);
    norm += want[i] * want[i];
  }
  const double e = why[0] ? INFINITY : std::sqrt(err / (norm > 0 ? norm : 1));
  const double tol = reduced_tolerance(s.bf16, s.top_k);
  r.max_rel_err = e;
  if (!why[0] && !(e <= tol)) std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", e, tol);
  for (int64_t i = t * n; i < moe_reduced_rows(t) * n && !why[0]; ++i)
    if (y[i] != 0xffff)
      std::snprintf(why, sizeof why, "wrote row %lld past the last token", static_cast<long long>(i / n));
  if (why[0]) flag(r, why);
}

SumProblem make_sum_problem(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                            int64_t n, bool bf16, std::mt19937_64& rng) {
  SumProblem p;
  p.t = t;
  p.top_k = top_k;
  p.n = n;
  p.bf16 = bf16;
  const int64_t rows = t * top_k;
  p.distinct = std::min(rows, kMoeCheckedSlots);
  p.tokens = std::min(t, std::max<int64_t>(1, kMoeCheckedSlots / top_k));
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  p.x.resize(rows * n);
  for (int64_t i = 0; i < p.distinct * n; ++i) p.x[i] = float_to_half_bits(u(rng), bf16);
  for (int64_t i = p.distinct * n; i < rows * n; ++i) p.x[i] = p.x[i % (p.distinct * n)];
  p.ref.assign(p.tokens * n, 0.0);
  for (int64_t tok = 0; tok < p.tokens; ++tok)
    for (int64_t j = 0; j < top_k; ++j) {
      const int32_t e = topk_ids[tok * top_k + j];
      if (e < 0 || e >= experts) continue;
      for (int64_t c = 0; c < n; ++c) p.ref[tok * n + c] += half_bits_to_float(p.x[(tok * top_k + j) * n + c], bf16);
    }
  return p;
}

void judge_sum_output(const std::vector<uint16_t>& y, const SumProblem& p, Measurement& r) {
  const int64_t n = p.n;
  double err = 0, norm = 0;
  char why[160] = "";
  for (int64_t i = 0; i < p.t * n && !why[0]; ++i)
    if (!std::isfinite(half_bits_to_float(y[i], p.bf16)))
      std::snprintf(why, sizeof why, "token %lld's row not fully written or not finite", static_cast<long long>(i / n));
  for (int64_t i = 0; i < p.tokens * n && !why[0]; ++i) {
    const double v = half_bits_to_float(y[i], p.bf16);
    err += (v - p.ref[i]) * (v - p.ref[i]);
    norm += p.ref[i] * p.ref[i];
  }
  const double e = why[0] ? INFINITY : std::sqrt(err / (norm > 0 ? norm : 1));
  const double tol = linear_tolerance(p.bf16);
  r.max_rel_err = e;
  if (!why[0] && !(e <= tol)) std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", e, tol);
  for (int64_t i = p.t * n; i < (p.t + kGuardRows) * n && !why[0]; ++i)
    if (y[i] != 0xffff)
      std::snprintf(why, sizeof why, "wrote row %lld past the last token", static_cast<long long>(i / n));
  if (why[0]) flag(r, why);
}

}  // namespace kf
