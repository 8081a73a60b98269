#include "moe_routing.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "error.h"

namespace kf {

namespace {

struct NamedArchetype {
  RoutingArchetype a;
  const char* name;
};
constexpr NamedArchetype kArchetypes[] = {
    {RoutingArchetype::balanced, "balanced"}, {RoutingArchetype::uniform, "uniform"},
    {RoutingArchetype::zipf1, "zipf1"},       {RoutingArchetype::zipf2, "zipf2"},
    {RoutingArchetype::hot16, "hot16"},
};

constexpr int kHotExperts = 16;
const double kHotBoost = std::log(64.0);  // a hot expert is 64x as likely as a cold one

// Bounds that keep a report from asking for gigabytes by a typo.
constexpr int64_t kMaxSlots = int64_t(1) << 28;

// The popularity ranking and the per-token noise draw from separate streams, so the
// ranking of a seed does not depend on how many tokens are generated.
constexpr uint64_t kNoiseStream = 0x9E3779B97F4A7C15ull;

// std::mt19937_64's output is fixed by the standard, but the std distributions are not;
// these two transforms are ours so a seed means the same routing everywhere.

// Uniform in the open interval (0, 1): 53 random bits, offset by half a step so neither
// 0 nor 1 can come out (both would make the Gumbel transform infinite).
double open_unit(std::mt19937_64& rng) { return (double(rng() >> 11) + 0.5) * 0x1.0p-53; }

// Uniform integer in [0, n) without modulo bias: reject the few draws below 2^64 mod n.
uint64_t below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t reject_under = (0 - n) % n;
  for (;;) {
    const uint64_t x = rng();
    if (x >= reject_under) return x % n;
  }
}

// Fisher-Yates: perm[rank] = the expert holding that popularity rank.
std::vector<int> seeded_permutation(int n, std::mt19937_64& rng) {
  std::vector<int> perm(n);
  for (int i = 0; i < n; ++i) perm[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(perm[i], perm[below(rng, uint64_t(i) + 1)]);
  return perm;
}

std::string valid_names() {
  std::string s;
  for (const auto& n : kArchetypes) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

void check_routing_args(int64_t tokens, int experts, int top_k) {
  std::ostringstream why;
  if (tokens <= 0)
    why << "tokens = " << tokens << " (need at least 1)";
  else if (experts <= 0)
    why << "experts = " << experts << " (need at least 1)";
  else if (top_k < 1 || top_k > experts)
    why << "top_k = " << top_k << " with experts = " << experts << " (need 1 <= top_k <= experts)";
  else if (tokens > kMaxSlots / top_k)
    why << "tokens = " << tokens << " x top_k = " << top_k << " is over " << kMaxSlots << " routing slots";
  if (!why.str().empty()) throw Error("bad MoE routing: " + why.str());
}

}  // namespace

std::vector<RoutingArchetype> all_routing_archetypes() {
  std::vector<RoutingArchetype> out;
  for (const auto& n : kArchetypes) out.push_back(n.a);
  return out;
}

const char* routing_archetype_name(RoutingArchetype a) {
  for (const auto& n : kArchetypes)
    if (n.a == a) return n.name;
  return "?";
}

RoutingArchetype parse_routing_archetype(const std::string& name) {
  for (const auto& n : kArchetypes)
    if (name == n.name) return n.a;
  throw Error("unknown routing archetype '" + name + "' (valid: " + valid_names() + ")");
}

std::vector<RoutingArchetype> parse_routing_archetypes(const std::string& csv) {
  std::vector<RoutingArchetype> out;
  std::stringstream ss(csv);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(parse_routing_archetype(item));
  if (out.empty()) throw Error("no routing archetype given (valid: " + valid_names() + ")");
  return out;
}

std::vector<double> routing_logits(RoutingArchetype a, int experts, uint64_t seed) {
  if (experts <= 0) throw Error("bad MoE routing: experts = " + std::to_string(experts) + " (need at least 1)");
  std::vector<double> logit(experts, 0.0);
  std::mt19937_64 rng(seed);
  switch (a) {
    case RoutingArchetype::balanced:
    case RoutingArchetype::uniform:
      break;
    case RoutingArchetype::zipf1:
    case RoutingArchetype::zipf2: {
      const double s = a == RoutingArchetype::zipf1 ? 1.0 : 2.0;
      const std::vector<int> perm = seeded_permutation(experts, rng);
      for (int rank = 0; rank < experts; ++rank) logit[perm[rank]] = -s * std::log(double(rank + 1));
      break;
    }
    case RoutingArchetype::hot16: {
      // With 16 experts or fewer every one is hot, which is the same as uniform.
      const std::vector<int> perm = seeded_permutation(experts, rng);
      for (int i = 0; i < std::min(experts, kHotExperts); ++i) logit[perm[i]] = kHotBoost;
      break;
    }
  }
  return logit;
}

std::vector<int32_t> generate_routing(RoutingArchetype a, int64_t tokens, int experts, int top_k,
                                      uint64_t seed) {
  check_routing_args(tokens, experts, top_k);
  std::vector<int32_t> ids(size_t(tokens) * size_t(top_k));

  if (a == RoutingArchetype::balanced) {
    // Slots are dealt to experts in turn, so loads differ by at most one; a token's
    // top_k slots are consecutive mod experts, hence distinct while top_k <= experts.
    for (int64_t t = 0; t < tokens; ++t)
      for (int j = 0; j < top_k; ++j) ids[size_t(t * top_k + j)] = int32_t((t * top_k + j) % experts);
    return ids;
  }

  // Gumbel-top-k: the top_k of logit + Gumbel noise is a sample of top_k distinct experts
  // drawn one after another with probability proportional to exp(logit) among those left.
  const std::vector<double> logit = routing_logits(a, experts, seed);
  std::mt19937_64 noise(seed ^ kNoiseStream);
  std::vector<double> key(experts);
  std::vector<int> order(experts);
  // Ties (practically impossible with 53-bit noise) go to the lower id, so the order is
  // total and partial_sort's result does not depend on the library's algorithm.
  const auto before = [&](int x, int y) { return key[x] > key[y] || (key[x] == key[y] && x < y); };
  for (int64_t t = 0; t < tokens; ++t) {
    for (int e = 0; e < experts; ++e) {
      key[e] = logit[e] - std::log(-std::log(open_unit(noise)));
      order[e] = e;
    }
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), before);
    std::copy(order.begin(), order.begin() + top_k, ids.begin() + t * top_k);
  }
  return ids;
}

RoutingStats routing_stats(const std::vector<int32_t>& topk_ids, int64_t tokens, int experts, int top_k,
                           int block_m) {
  check_routing_args(tokens, experts, top_k);
  if (block_m < 1) throw Error("bad block_m " + std::to_string(block_m) + " (need at least 1)");
  if (topk_ids.size() != size_t(tokens) * size_t(top_k))
    throw Error("routing has " + std::to_string(topk_ids.size()) + " ids, expected tokens x top_k = " +
                std::to_string(tokens) + " x " + std::to_string(top_k));

  RoutingStats s;
  s.load.assign(experts, 0);
  for (size_t i = 0; i < topk_ids.size(); ++i) {
    const int32_t e = topk_ids[i];
    if (e < 0 || e >= experts)
      throw Error("routing id " + std::to_string(e) + " at token " + std::to_string(i / size_t(top_k)) +
                  " is outside [0, " + std::to_string(experts) + ")");
    ++s.load[e];
  }
  s.slots = tokens * top_k;
  s.block_m = block_m;
  s.min_load = *std::min_element(s.load.begin(), s.load.end());
  s.max_load = *std::max_element(s.load.begin(), s.load.end());
  s.mean_load = double(s.slots) / experts;
  for (int64_t l : s.load) {
    (l > 0 ? s.experts_hit : s.experts_idle)++;
    s.padded_slots += (l + block_m - 1) / block_m * block_m;
  }
  s.blocks = s.padded_slots / block_m;
  s.padding_waste = double(s.padded_slots - s.slots) / double(s.padded_slots);  // slots > 0, so padded > 0
  return s;
}

}  // namespace kf
