// genkernels --routing-report: for a model's MoE layers, how routing spreads T tokens
// over the experts and what that costs each block_m in padding and blocks, so a user
// can see why the best MoE block_m grows with T. Needs no GPU and compiles nothing.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "model.h"
#include "moe_routing.h"

namespace kf {

std::vector<int64_t> default_routing_tokens();  // 1, 2, 4, ..., 4096
std::vector<RoutingArchetype> default_routing_archetypes();  // uniform, zipf1, zipf2
std::vector<int> default_routing_block_m();     // 16, 32, 64, 128

// Reading one block's expert weights (int4, N x K) costs about as long as this many rows
// of 16-bit MMA work on them: FLOPS / (4 x bytes/s), ~74 on an H100, ~58 on gfx1151.
constexpr int64_t kWeightStreamRows = 64;

// The report's cost of a routing at one block_m, in rows of MMA work: the padded rows
// (padding is computed and thrown away) plus one weight stream per block. Small T wants
// the least padding, large T the fewest weight re-reads; the '*' marks the minimum.
int64_t routed_work(const RoutingStats& s);

// One table per distinct (experts, top_k) among model.moe: rows (archetype, T), columns
// experts hit, tokens per expert (min, mean, max) and per block_m the padding waste and
// blocks. Throws kf::Error, before writing anything, if the model has no MoE layer or
// an argument is bad.
void print_routing_report(std::ostream& out, const ModelDesc& model,
                          const std::vector<int64_t>& tokens = default_routing_tokens(),
                          const std::vector<RoutingArchetype>& archetypes = default_routing_archetypes(),
                          const std::vector<int>& block_m = default_routing_block_m(), uint64_t seed = 0);

// The command line's form: --tokens, --archetypes and --block-m as comma-separated
// lists and --seed as text, each "" meaning the default. Bad text throws kf::Error
// naming the option and the value.
void print_routing_report(std::ostream& out, const ModelDesc& model, const std::string& tokens_csv,
                          const std::string& archetypes_csv, const std::string& block_m_csv,
                          const std::string& seed_text);

// "1,64,512" -> {1, 64, 512}; throws kf::Error naming `option` and the bad item.
std::vector<int64_t> parse_positive_list(const std::string& csv, const std::string& option);

}  // namespace kf
