#include "moe_check_reference.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>

#include "linear_reference.h"
#include "w4a16_moe/launch.h"

namespace kf {

namespace {

// Runs f(i) for i < count on `threads` host threads, items handed out one at a time.
template <class F>
void parallel_for(int64_t count, int threads, F f) {
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t i; (i = next++) < count;) f(i);
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < std::min<int64_t>(threads, count); ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

bool routed_id(int32_t e, int experts) { return e >= 0 && e < experts; }

std::vector<double> to_double(const std::vector<uint16_t>& v, bool bf16) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = half_bits_to_float(v[i], bf16);
  return out;
}

// Slots of each expert, ascending.
std::vector<std::vector<int32_t>> slots_by_expert(const std::vector<int32_t>& ids, int experts) {
  std::vector<std::vector<int32_t>> by(experts);
  for (size_t s = 0; s < ids.size(); ++s)
    if (routed_id(ids[s], experts)) by[ids[s]].push_back(static_cast<int32_t>(s));
  return by;
}

// out[s, :] = scale(s) * x_row(s) . W[e]^T for every slot s of every expert, in float64.
template <class RowOf, class ScaleOf>
void expert_products(const MoeWeights& w, const std::vector<std::vector<int32_t>>& by, const double* xd,
                     RowOf row_of, ScaleOf scale_of, int threads, double* out) {
  const MoeShape& s = w.shape;
  parallel_for(static_cast<int64_t>(by.size()), threads, [&](int64_t e) {
    if (by[e].empty()) return;
    std::vector<double> wr(s.k);
    for (int64_t n = 0; n < s.n; ++n) {
      dequant_expert_row(w, e, n, wr.data());
      for (int32_t slot : by[e]) {
        const double* xr = xd + row_of(slot) * s.k;
        double acc = 0;
        for (int64_t k = 0; k < s.k; ++k) acc += xr[k] * wr[k];
        out[static_cast<int64_t>(slot) * s.n + n] = scale_of(slot) * acc;
      }
    }
  });
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }

}  // namespace

MoeWeights make_moe_weights(const MoeShape& s, std::mt19937_64& rng) {
  MoeWeights w;
  w.shape = s;
  const int64_t g = s.expert().effective_group();
  std::uniform_real_distribution<float> us(0.5f, 1.5f);
  std::uniform_int_distribution<uint32_t> u32;
  const float scale_norm = 1.f / (2.f * std::sqrt(static_cast<float>(s.k)));
  w.qweight.resize(s.experts * (s.k / 8) * s.n);
  for (auto& v : w.qweight) v = u32(rng);
  w.scales.resize(s.experts * (s.k / g) * s.n);
  for (auto& v : w.scales) v = float_to_half_bits(us(rng) * scale_norm, s.bf16);
  if (s.asym) {
    w.qzeros.resize(s.experts * (s.k / g) * (s.n / 8));
    for (auto& v : w.qzeros) v = u32(rng);
  }
  return w;
}

void dequant_expert_row(const MoeWeights& w, int64_t e, int64_t n, double* out) {
  const MoeShape& s = w.shape;
  const int64_t g = s.expert().effective_group(), groups = s.k / g;
  const uint32_t* q = w.qweight.data() + e * (s.k / 8) * s.n;
  const uint16_t* sc = w.scales.data() + e * groups * s.n;
  const uint32_t* qz = s.asym ? w.qzeros.data() + e * groups * (s.n / 8) : nullptr;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const double scale = half_bits_to_float(sc[gi * s.n + n], s.bf16);
    const double z = qz ? static_cast<double>((qz[gi * (s.n / 8) + n / 8] >> (4 * (n % 8))) & 15u) : 8.0;
    for (int64_t k = gi * g; k < (gi + 1) * g; ++k) {
      const uint32_t v = (q[(k / 8) * s.n + n] >> (4 * (k % 8))) & 15u;
      out[k] = (static_cast<double>(v) - z) * scale;
    }
  }
}

std::vector<uint16_t> random_half(int64_t count, double lo, double hi, bool bf16, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(static_cast<float>(lo), static_cast<float>(hi));
  std::vector<uint16_t> v(count);
  for (auto& h : v) h = float_to_half_bits(u(rng), bf16);
  return v;
}

std::vector<int32_t> edge_routing(RoutingArchetype a, int64_t t, int experts, int top_k, uint64_t seed) {
  std::vector<int32_t> ids = generate_routing(a, t, experts, top_k, seed);
  auto row = [&](int64_t tok) { return ids.begin() + tok * top_k; };
  // Token 0 keeps E - 1 among its choices (moved to the last place if already there).
  auto it = std::find(row(0), row(0) + top_k, experts - 1);
  if (it != row(0) + top_k) std::iter_swap(it, row(0) + top_k - 1);
  else row(0)[top_k - 1] = experts - 1;
  if (t >= 2) row(t - 1)[0] = -1;
  if (t >= 3) row(1)[top_k - 1] = experts;
  if (t >= 16) std::fill(row(t - 2), row(t - 2) + top_k, -1);
  return ids;
}

AlignRef align_reference(const std::vector<int32_t>& ids, int64_t t, int top_k, int experts, int block_m) {
  AlignRef r;
  r.slots = slots_by_expert(ids, experts);
  r.run_start.resize(experts);
  int64_t off = 0;
  for (int e = 0; e < experts; ++e) {
    r.run_start[e] = off;
    off += (static_cast<int64_t>(r.slots[e].size()) + block_m - 1) / block_m * block_m;
    if (r.slots[e].empty()) ++r.experts_idle;
  }
  r.num_padded = off;
  for (int32_t e : ids)
    if (!routed_id(e, experts)) ++r.dropped;
  (void)t;
  (void)top_k;
  return r;
}

void align_buffers(const AlignRef& ref, int64_t t, int top_k, int experts, int block_m, int32_t unused_slot,
                   int32_t unused_expert, std::vector<int32_t>& sorted_ids, std::vector<int32_t>& expert_ids) {
  const int64_t cap = moe::sorted_capacity(t, top_k, experts, block_m);
  sorted_ids.assign(cap, unused_slot);
  expert_ids.assign(cap / block_m, unused_expert);
  for (int e = 0; e < experts; ++e) {
    const int64_t start = ref.run_start[e];
    const int64_t len = (static_cast<int64_t>(ref.slots[e].size()) + block_m - 1) / block_m * block_m;
    for (int64_t i = 0; i < len; ++i)
      sorted_ids[start + i] = i < static_cast<int64_t>(ref.slots[e].size()) ? ref.slots[e][i]
                                                                              : static_cast<int32_t>(t * top_k);
    for (int64_t b = start / block_m; b < (start + len) / block_m; ++b) expert_ids[b] = e;
  }
}

std::string check_align(const AlignRef& ref, int64_t t, int top_k, int block_m, const std::vector<int32_t>& sorted_ids,
                        const std::vector<int32_t>& expert_ids, int32_t num_padded) {
  if (num_padded != ref.num_padded)
    return "num_padded " + std::to_string(num_padded) + ", expected " + std::to_string(ref.num_padded);
  const int32_t pad = static_cast<int32_t>(t * top_k);
  const int experts = static_cast<int>(ref.slots.size());
  for (int e = 0; e < experts; ++e) {
    const auto& want = ref.slots[e];
    const int64_t start = ref.run_start[e];
    const int64_t len = (static_cast<int64_t>(want.size()) + block_m - 1) / block_m * block_m;
    std::vector<int32_t> got, pads;
    for (int64_t i = start; i < start + len; ++i) (sorted_ids[i] == pad ? pads : got).push_back(sorted_ids[i]);
    std::sort(got.begin(), got.end());
    if (got != want || static_cast<int64_t>(pads.size()) != len - static_cast<int64_t>(want.size()))
      return "expert " + std::to_string(e) + ": run at " + std::to_string(start) + " of length " +
             std::to_string(len) + " holds " + std::to_string(got.size()) + " slots and " +
             std::to_string(pads.size()) + " padding entries, expected " + std::to_string(want.size()) +
             " slots (each once) and " + std::to_string(len - static_cast<int64_t>(want.size())) + " padding";
    for (int64_t b = start / block_m; b < (start + len) / block_m; ++b)
      if (expert_ids[b] != e)
        return "expert_ids[" + std::to_string(b) + "] = " + std::to_string(expert_ids[b]) + ", expected " +
               std::to_string(e);
  }
  return "";
}

std::vector<double> moe_gemm_reference(const MoeWeights& w, const std::vector<uint16_t>& x,
                                       const std::vector<int32_t>& ids, const std::vector<float>& topk_weights,
                                       int64_t t, int threads, std::vector<char>& routed) {
  const MoeShape& s = w.shape;
  const int experts = static_cast<int>(s.experts), top_k = static_cast<int>(s.top_k);
  const std::vector<double> xd = to_double(x, s.bf16);
  std::vector<double> out(t * top_k * s.n, 0.0);
  routed.assign(t * top_k, 0);
  for (int64_t i = 0; i < t * top_k; ++i) routed[i] = routed_id(ids[i], experts);
  const auto by = slots_by_expert(ids, experts);
  if (s.gemm == 1)
    expert_products(w, by, xd.data(), [&](int32_t slot) { return slot / top_k; }, [](int32_t) { return 1.0; },
                    threads, out.data());
  else
    expert_products(w, by, xd.data(), [](int32_t slot) { return static_cast<int64_t>(slot); },
                    [&](int32_t slot) { return static_cast<double>(topk_weights[slot]); }, threads, out.data());
  return out;
}

std::vector<double> silu_mul_reference(const std::vector<uint16_t>& x, int64_t rows, int64_t n, bool bf16) {
  std::vector<double> y(rows * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i)
      y[r * n + i] = silu(half_bits_to_float(x[r * 2 * n + i], bf16)) * half_bits_to_float(x[r * 2 * n + n + i], bf16);
  return y;
}

std::vector<double> silu_mul_of(const std::vector<double>& h1, int64_t rows, int64_t n) {
  std::vector<double> y(rows * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = silu(h1[r * 2 * n + i]) * h1[r * 2 * n + n + i];
  return y;
}

std::vector<double> moe_sum_reference(const std::vector<uint16_t>& x, const std::vector<int32_t>& ids, int64_t t,
                                      int top_k, int experts, int64_t n, bool bf16) {
  std::vector<double> y(t * n, 0.0);
  for (int64_t tok = 0; tok < t; ++tok)
    for (int j = 0; j < top_k; ++j)
      if (routed_id(ids[tok * top_k + j], experts))
        for (int64_t i = 0; i < n; ++i) y[tok * n + i] += half_bits_to_float(x[(tok * top_k + j) * n + i], bf16);
  return y;
}

std::vector<double> moe_layer_reference(const MoeWeights& w1, const MoeWeights& w2, const std::vector<uint16_t>& x,
                                        const std::vector<int32_t>& ids, const std::vector<float>& topk_weights,
                                        int64_t t, int threads) {
  const int experts = static_cast<int>(w1.shape.experts), top_k = static_cast<int>(w1.shape.top_k);
  const int64_t inter = w2.shape.k, hidden = w2.shape.n, slots = t * top_k;
  const std::vector<double> xd = to_double(x, w1.shape.bf16);
  const auto by = slots_by_expert(ids, experts);
  std::vector<double> h1(slots * w1.shape.n, 0.0), h(slots * inter, 0.0), h2(slots * hidden, 0.0);
  expert_products(w1, by, xd.data(), [&](int32_t slot) { return slot / top_k; }, [](int32_t) { return 1.0; }, threads,
                  h1.data());
  for (int64_t s = 0; s < slots; ++s)
    for (int64_t i = 0; i < inter; ++i) h[s * inter + i] = silu(h1[s * 2 * inter + i]) * h1[s * 2 * inter + inter + i];
  expert_products(w2, by, h.data(), [](int32_t slot) { return static_cast<int64_t>(slot); },
                  [&](int32_t slot) { return static_cast<double>(topk_weights[slot]); }, threads, h2.data());
  std::vector<double> y(t * hidden, 0.0);
  for (int64_t s = 0; s < slots; ++s)
    if (routed_id(ids[s], experts))
      for (int64_t i = 0; i < hidden; ++i) y[(s / top_k) * hidden + i] += h2[s * hidden + i];
  return y;
}

RowErrors row_errors(const std::vector<uint16_t>& y, const std::vector<double>& ref, int64_t rows, int64_t n,
                     bool bf16, const std::vector<char>& mask) {
  RowErrors r;
  double err = 0, norm = 0;
  int64_t used = 0;
  std::vector<double> row_err(rows, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    if (!mask.empty() && !mask[i]) continue;
    ++used;
    double e = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double v = half_bits_to_float(y[i * n + j], bf16), want = ref[i * n + j];
      if (!std::isfinite(v)) {
        e = INFINITY;
        break;
      }
      e += (v - want) * (v - want);
      norm += want * want;
    }
    row_err[i] = e;
    err += e;
  }
  if (used == 0) return r;
  const double safe_norm = norm > 0 ? norm : 1;
  r.total = std::sqrt(err / safe_norm);
  // A row's error is measured against the mean row norm, so rows whose reference is
  // zero (a token with no expert) are judged too.
  const double mean_row_norm = safe_norm / static_cast<double>(used);
  for (int64_t i = 0; i < rows; ++i) {
    const double e = std::sqrt(row_err[i] / mean_row_norm);
    if (e > r.worst_row || (std::isinf(e) && r.worst < 0)) {
      r.worst_row = e;
      r.worst = i;
    }
  }
  return r;
}

}  // namespace kf
