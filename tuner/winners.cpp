#include "winners.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace kf {

namespace {

bool faster(const Timing& a, const Timing& b) {
  if (a.median_us != b.median_us) return a.median_us < b.median_us;
  if (a.min_us != b.min_us) return a.min_us < b.min_us;
  return a.kernel < b.kernel;
}

// Last M that A (winner at m0) serves before B (winner at m1) takes over.
int64_t boundary(const std::map<std::string, Timing>& at0, const std::map<std::string, Timing>& at1,
                 const std::string& a, const std::string& b, int64_t m0, int64_t m1) {
  const auto a1 = at1.find(a), b0 = at0.find(b);
  if (a1 == at1.end() || b0 == at0.end()) return m0;
  // d(m) = tA(m) - tB(m) is linear: <= 0 at m0 (A won there), >= 0 at m1 (B won).
  const double d0 = at0.at(a).median_us - b0->second.median_us;
  const double d1 = a1->second.median_us - at1.at(b).median_us;
  if (!(d1 - d0 > 0)) return m0;  // equal all along (or bad data): B from m0 + 1
  const double cross = static_cast<double>(m0) + static_cast<double>(m1 - m0) * (-d0) / (d1 - d0);
  // A keeps m0 and B keeps m1 whatever rounding or ties say.
  return std::clamp<int64_t>(static_cast<int64_t>(std::floor(cross)), m0, m1 - 1);
}

}  // namespace

std::vector<WinnerRange> compute_winners(const std::vector<Timing>& passed) {
  std::map<int64_t, std::map<std::string, Timing>> by_m;
  for (const auto& t : passed) {
    auto& slot = by_m[t.m];
    const auto it = slot.find(t.kernel);
    if (it == slot.end() || faster(t, it->second)) slot[t.kernel] = t;
  }
  std::vector<int64_t> ms;
  std::vector<const Timing*> best;
  for (const auto& [m, kernels] : by_m) {
    const Timing* w = nullptr;
    for (const auto& kv : kernels)
      if (!w || faster(kv.second, *w)) w = &kv.second;
    ms.push_back(m);
    best.push_back(w);
  }
  std::vector<WinnerRange> out;
  for (size_t i = 0; i < ms.size(); ++i) {
    WinnerRange r;
    r.m_lo = i == 0 ? 1 : out.back().m_hi + 1;
    r.m_tuned = ms[i];
    r.kernel = best[i]->kernel;
    r.median_us = best[i]->median_us;
    r.m_hi = i + 1 == ms.size() ? kMaxWinnerM
             : best[i + 1]->kernel == r.kernel
                 ? ms[i]
                 : boundary(by_m[ms[i]], by_m[ms[i + 1]], r.kernel, best[i + 1]->kernel, ms[i], ms[i + 1]);
    if (!out.empty() && out.back().kernel == r.kernel)
      out.back().m_hi = r.m_hi;  // merge: the first range's m_tuned and median stay
    else
      out.push_back(r);
  }
  return out;
}

std::map<int64_t, std::vector<RobustScore>> robust_scores(
    const std::map<std::string, std::vector<Timing>>& by_routing) {
  // t -> kernel -> archetype -> its best median there
  std::map<int64_t, std::map<std::string, std::map<std::string, double>>> at;
  std::map<int64_t, std::map<std::string, double>> best;  // t -> archetype -> fastest median
  for (const auto& [routing, rows] : by_routing)
    for (const auto& r : rows) {
      if (!(r.median_us > 0)) continue;
      auto& slot = at[r.m][r.kernel];
      const auto it = slot.find(routing);
      if (it == slot.end() || r.median_us < it->second) slot[routing] = r.median_us;
      auto& b = best[r.m];
      const auto bt = b.find(routing);
      if (bt == b.end() || r.median_us < bt->second) b[routing] = r.median_us;
    }
  std::map<int64_t, std::vector<RobustScore>> out;
  for (const auto& [t, kernels] : at) {
    const auto& b = best[t];
    std::vector<RobustScore> scores;
    for (const auto& [kernel, medians] : kernels) {
      if (medians.size() != b.size()) continue;  // not passed under every archetype timed at t
      RobustScore s{kernel, 0, 0, 0};
      for (const auto& [routing, median] : medians) {
        const double ratio = median / b.at(routing);
        s.worst_ratio = std::max(s.worst_ratio, ratio);
        s.mean_ratio += ratio / static_cast<double>(medians.size());
        s.worst_median_us = std::max(s.worst_median_us, median);
      }
      scores.push_back(s);
    }
    std::sort(scores.begin(), scores.end(), [](const RobustScore& a, const RobustScore& c) {
      if (a.worst_ratio != c.worst_ratio) return a.worst_ratio < c.worst_ratio;
      if (a.mean_ratio != c.mean_ratio) return a.mean_ratio < c.mean_ratio;
      return a.kernel < c.kernel;
    });
    if (!scores.empty()) out[t] = std::move(scores);
  }
  return out;
}

std::vector<WinnerRange> compute_robust_winners(const std::map<std::string, std::vector<Timing>>& by_routing) {
  const auto scores = robust_scores(by_routing);
  std::vector<Timing> as_timings;  // the range rule on scores: median = worst ratio, min = mean ratio
  std::map<std::pair<int64_t, std::string>, double> worst_us;
  for (const auto& [t, list] : scores)
    for (const auto& s : list) {
      as_timings.push_back({t, s.kernel, s.worst_ratio, s.mean_ratio});
      worst_us[{t, s.kernel}] = s.worst_median_us;
    }
  std::vector<WinnerRange> out = compute_winners(as_timings);
  for (auto& w : out) w.median_us = worst_us.at({w.m_tuned, w.kernel});
  return out;
}

namespace {

bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A MoE GEMM's step in the layer: kernels without the fused epilogue pay the helper
// timed at their m (its rows, named helper_prefix..., never compete); fused ones
// compete only where the helper was timed.
std::vector<Timing> step_times(const std::vector<Timing>& passed, const std::string& helper_prefix,
                               bool (*fused)(const std::string&)) {
  auto is_helper = [&](const std::string& name) { return name.rfind(helper_prefix, 0) == 0; };
  std::map<int64_t, Timing> helper;  // m -> the fastest helper row (one per m in practice)
  for (const auto& t : passed)
    if (is_helper(t.kernel)) {
      const auto it = helper.find(t.m);
      if (it == helper.end() || t.median_us < it->second.median_us) helper[t.m] = t;
    }
  std::vector<Timing> out;
  for (const auto& t : passed) {
    if (is_helper(t.kernel)) continue;
    const auto s = helper.find(t.m);
    if (fused(t.kernel)) {
      if (s != helper.end()) out.push_back(t);
    } else if (s == helper.end()) {
      out.push_back(t);
    } else {
      out.push_back({t.m, t.kernel, t.median_us + s->second.median_us, t.min_us + s->second.min_us});
    }
  }
  return out;
}

}  // namespace

bool is_silu_mul_kernel(const std::string& name) { return name.rfind("moe_silu_mul_", 0) == 0; }
bool is_sum_kernel(const std::string& name) { return name.rfind("moe_sum_", 0) == 0; }

bool fuses_silu(const std::string& name) { return ends_with(name, "_silu"); }
bool reduces_topk(const std::string& name) { return ends_with(name, "_red"); }

std::vector<Timing> gemm1_step_times(const std::vector<Timing>& passed) {
  return step_times(passed, "moe_silu_mul_", fuses_silu);
}

std::vector<Timing> gemm2_step_times(const std::vector<Timing>& passed) {
  return step_times(passed, "moe_sum_", reduces_topk);
}

}  // namespace kf
