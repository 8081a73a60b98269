#include "mxfp4_problem.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

#include "device_plan.h"
#include "error.h"
#include "linear_reference.h"
#include "mxfp4_reference.h"

namespace kf {

namespace {

uint64_t mix(uint64_t seed, uint64_t i) {  // splitmix64 of (seed, i)
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Mostly 2^-9 .. 2^-3; one in 64 at 2^-127 or 2^-126, one in 64 at 2^5.
uint8_t scale_of(uint64_t h) {
  const uint64_t pick = h % 64;
  return static_cast<uint8_t>(pick == 0 ? (h >> 8) & 1 : pick == 1 ? 132 : 118 + (h >> 8) % 7);
}

bool finite_bf16(uint16_t h) { return (h & 0x7f80) != 0x7f80; }

bool routed(int32_t e, int64_t experts) { return e >= 0 && e < experts; }

void flag(Measurement& r, const std::string& why) {
  if (!r.disposition.empty()) return;
  r.disposition = "incorrect";
  r.message = why;
}

void check_range(const char* what, int64_t first, int64_t count, int64_t total) {
  if (first < 0 || count < 0 || first + count > total)
    throw Error(std::string("internal: MXFP4 ") + what + " bytes " + std::to_string(first) + " + " +
                std::to_string(count) + " outside " + std::to_string(total));
}

}  // namespace

std::vector<int32_t> mxfp4_tune_routing(RoutingArchetype archetype, int64_t t, int experts, int top_k,
                                        uint64_t seed) {
  std::vector<int32_t> ids = generate_routing(archetype, t, experts, top_k, seed);
  if (t >= kMxfp4DropFromT) ids[(t - 1) * top_k] = -1;
  if (t >= kMxfp4SecondDropFromT) ids[top_k + top_k - 1] = experts;
  return ids;
}

int64_t mxfp4_weight_bytes(const Mxfp4MoeShape& s) { return s.experts * s.n * (s.k / 2); }
int64_t mxfp4_scale_bytes(const Mxfp4MoeShape& s) { return s.experts * (s.k / kMxfp4Block) * s.n; }

Mxfp4TuneProblem make_mxfp4_problem(const Mxfp4MoeShape& s, const MoeRouting& routing, std::mt19937_64& rng) {
  if (routing.t < 1 || static_cast<int64_t>(routing.topk_ids.size()) != routing.t * s.top_k)
    throw Error("internal: MXFP4 problem of T = " + std::to_string(routing.t) + " with " +
                std::to_string(routing.topk_ids.size()) + " routed slots for top_k " + std::to_string(s.top_k));
  Mxfp4TuneProblem p;
  p.shape = s;
  p.t = routing.t;
  p.topk_ids = routing.topk_ids;
  p.weight_seed = rng();
  p.scale_seed = rng();
  const uint64_t x_seed = rng();
  p.x.resize((s.gemm == 1 ? p.t : p.slots()) * s.k);
  for (size_t i = 0; i < p.x.size(); ++i) {
    const float u = static_cast<float>(mix(x_seed, i) >> 40) * (1.f / 16777216.f);  // [0, 1), 24 bits
    p.x[i] = float_to_half_bits(2.f * u - 1.f, true);
  }
  std::uniform_real_distribution<float> ub(-0.5f, 0.5f), uw(0.1f, 1.f);
  p.bias.resize(s.experts * s.n);
  for (auto& b : p.bias) b = ub(rng);
  p.topk_weights.resize(p.slots());
  for (auto& w : p.topk_weights) w = uw(rng);
  return p;
}

void mxfp4_weight_fill(const Mxfp4TuneProblem& p, int64_t first, int64_t count, uint8_t* out) {
  check_range("weight", first, count, mxfp4_weight_bytes(p.shape));
  const int64_t end = first + count;
  for (int64_t i = first; i < end;) {
    const uint64_t h = mix(p.weight_seed, static_cast<uint64_t>(i / 8));
    if (i % 8 == 0 && i + 8 <= end) {  // a whole word: its bytes in order, the low one first
      for (int b = 0; b < 8; ++b) out[i - first + b] = static_cast<uint8_t>(h >> (8 * b));
      i += 8;
      continue;
    }
    for (int64_t b = i % 8; b < 8 && i < end; ++b, ++i) out[i - first] = static_cast<uint8_t>(h >> (8 * b));
  }
}

uint8_t mxfp4_scale(const Mxfp4TuneProblem& p, int64_t e, int64_t n, int64_t kb) {
  const Mxfp4MoeShape& s = p.shape;
  return scale_of(mix(p.scale_seed, static_cast<uint64_t>((e * s.n + n) * (s.k / kMxfp4Block) + kb)));
}

void mxfp4_scale_fill(const Mxfp4TuneProblem& p, int64_t first, int64_t count, uint8_t* out) {
  const Mxfp4MoeShape& s = p.shape;
  check_range("scale", first, count, mxfp4_scale_bytes(s));
  const int64_t kb_count = s.k / kMxfp4Block;
  for (int64_t i = first; i < first + count; ++i) {  // [E, K/32, N]
    const int64_t e = i / (kb_count * s.n), kb = i / s.n % kb_count, n = i % s.n;
    out[i - first] = mxfp4_scale(p, e, n, kb);
  }
}

std::vector<int64_t> mxfp4_checked_slots(const std::vector<int32_t>& topk_ids, int64_t experts, std::mt19937_64& rng) {
  std::vector<int64_t> all;
  int32_t top = -1;
  for (int64_t s = 0; s < static_cast<int64_t>(topk_ids.size()); ++s)
    if (routed(topk_ids[s], experts)) {
      all.push_back(s);
      top = std::max(top, topk_ids[s]);
    }
  if (static_cast<int64_t>(all.size()) <= kMxfp4CheckedSlots) return all;
  std::vector<int64_t> out = {all.front(), all.back()};
  for (auto it = all.begin(); it != all.end(); ++it)  // the highest expert's first slot
    if (topk_ids[*it] == top) {
      out.push_back(*it);
      break;
    }
  for (auto it = all.rbegin(); it != all.rend(); ++it)  // and its last
    if (topk_ids[*it] == top) {
      out.push_back(*it);
      break;
    }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  std::shuffle(all.begin(), all.end(), rng);
  for (int64_t s : all) {
    if (static_cast<int64_t>(out.size()) >= kMxfp4CheckedSlots) break;
    if (!std::binary_search(out.begin(), out.end(), s)) out.insert(std::upper_bound(out.begin(), out.end(), s), s);
  }
  return out;
}

Mxfp4CheckReference mxfp4_check_reference(const Mxfp4TuneProblem& p, std::vector<int64_t> slots, int threads) {
  const Mxfp4MoeShape& s = p.shape;
  const int64_t n_all = s.n, k = s.k, kb_count = k / kMxfp4Block, cols = p.out_cols();
  Mxfp4CheckReference ref;
  const int64_t routed_count = std::count_if(p.topk_ids.begin(), p.topk_ids.end(),
                                             [&](int32_t e) { return routed(e, s.experts); });
  ref.sampled = static_cast<int64_t>(slots.size()) < routed_count;
  ref.slots = std::move(slots);
  const int64_t count = static_cast<int64_t>(ref.slots.size());
  std::map<int32_t, std::vector<int64_t>> by_expert;  // expert -> indices into ref.slots
  std::vector<double> xd(count * k);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t slot = ref.slots[i];
    if (slot < 0 || slot >= p.slots() || !routed(p.topk_ids[slot], s.experts))
      throw Error("internal: MXFP4 reference of slot " + std::to_string(slot) + ", which is not routed");
    by_expert[p.topk_ids[slot]].push_back(i);
    const int64_t row = s.gemm == 1 ? slot / s.top_k : slot;
    for (int64_t c = 0; c < k; ++c) xd[i * k + c] = half_bits_to_float(p.x[row * k + c], true);
  }
  // Pre-activations h [count, N]: tasks of (expert, 64 rows of W), each row decoded once.
  std::vector<double> h(count * n_all, 0.0);
  std::vector<std::pair<int32_t, int64_t>> items;
  for (const auto& kv : by_expert)
    for (int64_t n0 = 0; n0 < n_all; n0 += 64) items.push_back({kv.first, n0});
  double e2m1[16];  // mxfp4_reference.h's decoding, once per code
  for (int c = 0; c < 16; ++c) e2m1[c] = e2m1_value(static_cast<uint8_t>(c));
  std::atomic<size_t> next{0};
  auto work = [&] {
    std::vector<uint8_t> bytes(k / 2);
    std::vector<double> w(k);
    for (size_t it = next++; it < items.size(); it = next++) {
      const auto [e, n0] = items[it];
      for (int64_t n = n0; n < std::min(n_all, n0 + 64); ++n) {
        mxfp4_weight_fill(p, (e * n_all + n) * (k / 2), k / 2, bytes.data());
        for (int64_t kb = 0; kb < kb_count; ++kb) {
          const double scale = e8m0_value(mxfp4_scale(p, e, n, kb));
          for (int64_t c = kb * kMxfp4Block; c < (kb + 1) * kMxfp4Block; ++c)
            w[c] = e2m1[bytes[c / 2] >> (4 * (c % 2)) & 15] * scale;
        }
        for (int64_t i : by_expert.at(e)) {
          double acc = p.bias[e * n_all + n];
          for (int64_t c = 0; c < k; ++c) acc += xd[i * k + c] * w[c];
          h[i * n_all + n] = acc;
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  ref.y.resize(count * cols);
  for (int64_t i = 0; i < count; ++i)
    for (int64_t c = 0; c < cols; ++c)
      ref.y[i * cols + c] =
          s.swiglu ? gpt_oss_swiglu(h[i * n_all + 2 * c], h[i * n_all + 2 * c + 1], kMxfp4SwigluAlpha, kMxfp4SwigluLimit)
          : s.gemm == 2 ? static_cast<double>(p.topk_weights[ref.slots[i]]) * h[i * n_all + c]
                        : h[i * n_all + c];
  return ref;
}

void judge_mxfp4_output(const std::vector<uint16_t>& y, const Mxfp4CheckReference& ref, const Mxfp4TuneProblem& p,
                        Measurement& r) {
  const int64_t n = p.out_cols(), slots = p.slots(), experts = p.shape.experts;
  if (static_cast<int64_t>(y.size()) < (slots + kGuardRows) * n || ref.y.size() != ref.slots.size() * n)
    throw Error("internal: MXFP4 output or reference smaller than the problem");
  char why[200] = "";
  for (int64_t s = 0; s < slots && !why[0]; ++s) {
    const uint16_t* row = &y[s * n];
    if (routed(p.topk_ids[s], experts)) {
      int bad = 0;  // a branch-free count first (T = 4096 has ~50M values), then where
      for (int64_t c = 0; c < n; ++c) bad += (row[c] & 0x7f80) == 0x7f80;
      for (int64_t c = 0; c < n && bad; ++c)
        if (!finite_bf16(row[c])) {
          std::snprintf(why, sizeof why, "slot %lld's row not fully written or not finite (column %lld)",
                        static_cast<long long>(s), static_cast<long long>(c));
          break;
        }
    } else if (std::any_of(row, row + n, [](uint16_t v) { return v != 0xffff; })) {
      std::snprintf(why, sizeof why, "wrote the row of slot %lld, which is routed nowhere (expert id %d)",
                    static_cast<long long>(s), p.topk_ids[s]);
    }
  }
  for (int64_t i = slots * n; i < (slots + kGuardRows) * n && !why[0]; ++i)
    if (y[i] != 0xffff)
      std::snprintf(why, sizeof why, "wrote row %lld past the last slot (padding rows must not be written)",
                    static_cast<long long>(i / n));
  double err = 0, norm = 0, worst = 0;
  int64_t worst_slot = -1;
  for (size_t i = 0; i < ref.slots.size(); ++i) {
    double e2 = 0, r2 = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double v = half_bits_to_float(y[ref.slots[i] * n + c], true), want = ref.y[i * n + c];
      e2 += (v - want) * (v - want);
      r2 += want * want;
    }
    const double row_err = std::sqrt(e2 / (r2 > 0 ? r2 : 1));
    if (!(row_err <= worst)) {
      worst = row_err;
      worst_slot = ref.slots[i];
    }
    err += e2;
    norm += r2;
  }
  const double e = why[0] ? INFINITY : std::sqrt(err / (norm > 0 ? norm : 1));
  r.max_rel_err = e;
  if (!why[0] && !(e <= kMxfp4Tolerance))
    std::snprintf(why, sizeof why, "normalised error %.3g above tolerance %.3g", e, kMxfp4Tolerance);
  if (!why[0] && !(worst <= kMxfp4RowTolerance))
    std::snprintf(why, sizeof why, "slot %lld's row off by %.3g of its norm (tolerance %.3g per row)",
                  static_cast<long long>(worst_slot), worst, kMxfp4RowTolerance);
  if (why[0]) flag(r, why);
}

}  // namespace kf
