// Synthetic MoE routing: which top_k experts each token picks, for tuning and reporting
// MoE kernels without a model in the loop. The archetypes span the loads real routers
// produce, from perfectly even to a few experts taking most tokens; every one is a pure
// function of its seed, bit-identical across standard libraries.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kf {

enum class RoutingArchetype {
  balanced,  // round-robin: every expert's load within 1 of the others
  uniform,   // every expert equally likely
  zipf1,     // Zipf popularity, weight 1/rank
  zipf2,     // Zipf popularity, weight 1/rank^2
  hot16,     // 16 experts 64x as likely as the rest
};

std::vector<RoutingArchetype> all_routing_archetypes();
const char* routing_archetype_name(RoutingArchetype a);
// Throws kf::Error naming `name` and listing the valid names.
RoutingArchetype parse_routing_archetype(const std::string& name);
// Comma-separated names; throws on a bad or missing one.
std::vector<RoutingArchetype> parse_routing_archetypes(const std::string& csv);

// Per-expert popularity logits (sampling weight = exp(logit)); which expert gets which
// rank comes from `seed`. `balanced` has no randomness: all zero.
std::vector<double> routing_logits(RoutingArchetype a, int experts, uint64_t seed);

// topk_ids [tokens, top_k] row-major, as a router's topk writes them: per token, top_k
// distinct expert ids in [0, experts), most preferred first. Random archetypes sample
// without replacement proportionally to exp(logit) (Gumbel-top-k). Throws kf::Error
// naming the values for tokens <= 0, experts <= 0, top_k < 1 or top_k > experts.
std::vector<int32_t> generate_routing(RoutingArchetype a, int64_t tokens, int experts, int top_k,
                                      uint64_t seed);

// What a moe_align step with `block_m` makes of a routing: each expert's tokens padded up
// to whole block_m-row blocks (an expert with no tokens gets no block).
struct RoutingStats {
  std::vector<int64_t> load;  // tokens routed to each expert
  int64_t slots = 0;          // tokens * top_k
  int experts_hit = 0;        // experts with at least one token
  int experts_idle = 0;       // experts with none
  int64_t min_load = 0, max_load = 0;
  double mean_load = 0;       // slots / experts
  int block_m = 0;
  int64_t padded_slots = 0;   // sum over experts of roundup(load, block_m)
  int64_t blocks = 0;         // padded_slots / block_m
  double padding_waste = 0;   // (padded_slots - slots) / padded_slots
};

// Throws kf::Error on a size mismatch, an id out of range or block_m < 1.
RoutingStats routing_stats(const std::vector<int32_t>& topk_ids, int64_t tokens, int experts, int top_k,
                           int block_m);

}  // namespace kf
