// Host side of the MoE GPU checks and the example engine: random stacked expert weights,
// routings with the edge cases the kernels must handle, and float64 references for every
// piece of the data flow of templates/w4a16_moe/args.h (align, gemm1, silu_mul, gemm2,
// sum, the whole layer). No GPU API here. (autotune verifies with moe_reference.h, over
// the problems its measurers upload.)
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "moe_family.h"
#include "moe_routing.h"

namespace kf {

// One GEMM's stacked expert weights in the GPTQ layout: qweight [E, K/8, N],
// scales [E, K/G, N], qzeros [E, K/G, N/8] (asym only). q and zero points uniform over
// 0..15, scales ~ U(0.5, 1.5) / (2 sqrt K) as in make_linear_problem.
struct MoeWeights {
  MoeShape shape;
  std::vector<uint32_t> qweight;
  std::vector<uint16_t> scales;
  std::vector<uint32_t> qzeros;
};
MoeWeights make_moe_weights(const MoeShape& shape, std::mt19937_64& rng);

// Expert e's dequantised row n: w[k] = (q - z) * s, exactly, for k < K.
void dequant_expert_row(const MoeWeights& w, int64_t e, int64_t n, double* out);

// 16-bit values (bf16 or fp16 bits) ~ U(lo, hi): never all zero.
std::vector<uint16_t> random_half(int64_t count, double lo, double hi, bool bf16, std::mt19937_64& rng);

// A routing of `archetype` with the edges forced in: token 0's last choice is the last
// expert (E - 1); from T >= 2 token T - 1's first choice is -1 and from T >= 3 token 1's
// last is E (both dropped); from T >= 16 every choice of token T - 2 is -1 (a token
// with no expert: moe_sum gives it zeros). Ids stay distinct per token.
std::vector<int32_t> edge_routing(RoutingArchetype archetype, int64_t t, int experts, int top_k, uint64_t seed);

// What moe_align must produce for a routing (args.h), as per-expert slot lists.
struct AlignRef {
  std::vector<std::vector<int32_t>> slots;  // slots routed to each expert, ascending
  std::vector<int64_t> run_start;           // start of each expert's run in sorted_ids
  int64_t num_padded = 0;
  int experts_idle = 0;
  int64_t dropped = 0;  // slots with an id outside [0, E)
};
AlignRef align_reference(const std::vector<int32_t>& topk_ids, int64_t t, int top_k, int experts, int block_m);

// The sorted_ids / expert_ids a correct moe_align writes, in one fixed order (slots
// ascending, padding last), sized by kf::moe::sorted_capacity; entries past num_padded
// are set to `unused_slot` / `unused_expert`.
void align_buffers(const AlignRef& ref, int64_t t, int top_k, int experts, int block_m, int32_t unused_slot,
                   int32_t unused_expert, std::vector<int32_t>& sorted_ids, std::vector<int32_t>& expert_ids);

// Checks a device moe_align result exactly against `ref`: num_padded, every expert's
// run holding its slots once each plus only padding (T * top_k), expert_ids per block.
// Returns "" or what is wrong.
std::string check_align(const AlignRef& ref, int64_t t, int top_k, int block_m, const std::vector<int32_t>& sorted_ids,
                        const std::vector<int32_t>& expert_ids, int32_t num_padded);

// gemm1 (x [T, K], row of slot s = s / top_k) or gemm2 (x [T * top_k, K], row s, times
// topk_weights[s]): out [T * top_k, N] in float64; rows of dropped slots are left 0 and
// `routed[s]` says which rows are real.
std::vector<double> moe_gemm_reference(const MoeWeights& w, const std::vector<uint16_t>& x,
                                       const std::vector<int32_t>& topk_ids, const std::vector<float>& topk_weights,
                                       int64_t t, int threads, std::vector<char>& routed);

// silu(x[r, i]) * x[r, n + i] for x [rows, 2n].
std::vector<double> silu_mul_reference(const std::vector<uint16_t>& x, int64_t rows, int64_t n, bool bf16);
// The same of a float64 gemm1 result h1 [rows, 2n], unrounded: what a gemm1 with the
// fused SiLU epilogue (config _silu) must write, [rows, n].
std::vector<double> silu_mul_of(const std::vector<double>& h1, int64_t rows, int64_t n);

// y[t, :] = sum over routed j of x[t * top_k + j, :]; x [T * top_k, n].
std::vector<double> moe_sum_reference(const std::vector<uint16_t>& x, const std::vector<int32_t>& topk_ids,
                                      int64_t t, int top_k, int experts, int64_t n, bool bf16);

// The whole layer in float64, no intermediate rounding: y [T, H].
std::vector<double> moe_layer_reference(const MoeWeights& w1, const MoeWeights& w2, const std::vector<uint16_t>& x,
                                        const std::vector<int32_t>& topk_ids, const std::vector<float>& topk_weights,
                                        int64_t t, int threads);

// ||y - ref|| / ||ref|| over the rows with rows_mask[r] (all when empty), and the worst
// single row's normalised error; NaN/Inf in a compared row -> +Inf.
struct RowErrors {
  double total = 0, worst_row = 0;
  int64_t worst = -1;
};
RowErrors row_errors(const std::vector<uint16_t>& y, const std::vector<double>& ref, int64_t rows, int64_t n,
                     bool bf16, const std::vector<char>& rows_mask);

}  // namespace kf
