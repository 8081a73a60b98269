// Host side of autotune's MoE measurements (no GPU API, so the CPU tests check it):
// random expert weights and activations, the float64 reference of the routed slots a
// verification checks (and, for gemm1, of silu(gate) * up, what a gemm1 with the fused
// SiLU epilogue writes), what a correct moe_align writes, the verdicts on the outputs of
// align and of a GEMM (templates/w4a16_moe/args.h), the verdict on a gemm2 that sums over
// top_k itself (_red), and the own problems of moe_silu_mul and moe_sum.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "linear_reference.h"
#include "measurer.h"
#include "moe_family.h"

namespace kf {

// Slots whose float64 reference a verification computes at most: T * top_k slots up to
// this many are all checked; above it, every slot of a random sample of experts (so all
// rows of the sorted blocks of those experts, whatever the kernel's block_m).
constexpr int64_t kMoeCheckedSlots = 4096;

struct MoeProblem {
  MoeShape shape;
  // Per shape: stacked GPTQ expert weights, qweight [E, K/8, N], scales [E, K/G, N],
  // qzeros [E, K/G, N/8] (asym only); drawn as make_linear_problem draws one expert's.
  std::vector<uint32_t> qweight;
  std::vector<uint16_t> scales;
  std::vector<uint32_t> qzeros;
  // Per (T, routing): fresh activations, x [T, K] (gemm1) or [T * top_k, K] (gemm2)
  // ~ U(-1, 1), and routing weights [T * top_k] ~ U(0, 1).
  int64_t t = 0;
  std::vector<int32_t> topk_ids;
  std::vector<uint16_t> x;
  std::vector<float> topk_weights;
};

void make_moe_weights(MoeProblem& p, const MoeShape& shape, std::mt19937_64& rng);
void make_moe_activations(MoeProblem& p, const MoeRouting& routing, std::mt19937_64& rng);
// Expert e's weight at (n, k): (q - z) * s, exactly.
double moe_dequant(const MoeProblem& p, int64_t e, int64_t n, int64_t k);

// The slots a verification checks (ascending) and their reference rows.
struct MoeReference {
  std::vector<int64_t> slots;
  std::vector<double> y;     // [slots.size(), N]
  std::vector<double> silu;  // gemm1: [slots.size(), N/2], silu(y[:, i]) * y[:, N/2 + i]
  bool sampled = false;      // a sample of the experts, not every slot
};
// All routed slots when there are at most `budget`; else the slots of experts taken in
// a random order while they fit in the budget (the first expert always).
std::vector<int64_t> moe_checked_slots(const std::vector<int32_t>& topk_ids, int64_t experts, int64_t budget,
                                       std::mt19937_64& rng);
// gemm1: y[s] = x[s / top_k] . W[e]^T; gemm2: y[s] = topk_weights[s] * (x[s] . W[e]^T),
// e = topk_ids[s]; float64, on `threads` host threads, dequantising each used expert row
// once. gemm1 also fills `silu` from y (weight rows [0, N/2) are gate, [N/2, N) up).
MoeReference moe_reference(const MoeProblem& p, std::vector<int64_t> slots, int threads);

// "" when sorted_ids / expert_ids / num_padded are what moe_align must write for this
// routing and block_m (args.h: each expert's slots together, experts in order, each run
// padded with T * top_k to a multiple of block_m; any order within a run), else why not.
std::string check_moe_align(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                            int block_m, const std::vector<int32_t>& sorted_ids,
                            const std::vector<int32_t>& expert_ids, int32_t num_padded);

// Rows of y a MoE verification reads back: one per slot plus the poisoned guard rows
// (a kernel writing the padding id's row T * top_k lands there).
int64_t moe_checked_rows(int64_t t, int64_t top_k);
// The verdict on y ([moe_checked_rows, N], poisoned with 0xFFFF before the run): every
// slot's row written and finite, normalised error over the reference's slots within
// linear_tolerance, guard rows untouched. Sets r.max_rel_err; flags r incorrect.
// fused_silu: a gemm1 with the fused SiLU epilogue, y [moe_checked_rows, N/2] judged
// against ref.silu.
void judge_moe_output(const std::vector<uint16_t>& y, const MoeReference& ref, const MoeShape& s, int64_t t,
                      Measurement& r, bool fused_silu = false);

// silu(g) * u in float64.
double silu_mul_ref(double g, double u);

// moe_silu_mul as a gemm1 shape's layer runs it (rows = T * top_k, n = N/2), timed in the
// same batches as the gemm1 candidates (autotune adds its time to the unfused ones): the
// input h1 [rows, 2n] holds `distinct` random rows ~ U(-6, 6) (at most kMoeCheckedSlots)
// repeated, and `ref` their float64 silu(h1[:, i]) * h1[:, n + i] [distinct, n].
struct SiluMulProblem {
  int64_t rows = 0, n = 0, distinct = 0;
  bool bf16 = true;
  std::vector<uint16_t> h1;
  std::vector<double> ref;
};
SiluMulProblem make_silu_mul_problem(int64_t rows, int64_t n, bool bf16, std::mt19937_64& rng);
// The verdict on h ([rows + kGuardRows, n], poisoned with 0xFFFF before the run): every
// row written, finite and within linear_tolerance of its reference row (normalised
// error over all rows), guard rows untouched. Sets r.max_rel_err; flags r incorrect.
void judge_silu_mul_output(const std::vector<uint16_t>& h, const SiluMulProblem& p, Measurement& r);

// A gemm2 that sums over top_k in its epilogue (_red) adds every slot into y [T, N] with
// 16-bit atomics in no fixed order: each of a token's up to top_k adds rounds the sum to
// the type, so its tolerance is linear_tolerance plus sqrt(top_k) units of roundoff
// (2^-8 for bf16, 2^-11 for fp16) of the normalised error.
double reduced_tolerance(bool bf16, int64_t top_k);
// The routing weights a _red verification runs with: topk_weights with every slot the
// reference does not check (ref.sampled) set to 0, so each token row sums exactly the
// checked slots (and an unchecked slot's product, finite, adds 0).
std::vector<float> reduced_check_weights(const MoeProblem& p, const MoeReference& ref);
// Rows of y a _red verification reads back: T token rows plus the poisoned guard rows.
int64_t moe_reduced_rows(int64_t t);
// The verdict on y ([moe_reduced_rows, N], poisoned with 0xFFFF, then rows [0, T) zeroed by
// moe_align, before the run): every token row finite, normalised error against the sum
// of each token's checked rows of ref within reduced_tolerance, guard rows untouched.
void judge_moe_reduced_output(const std::vector<uint16_t>& y, const MoeReference& ref, const MoeShape& s, int64_t t,
                              Measurement& r);

// moe_sum as a gemm2 shape's layer runs it (T tokens, n = N), timed in the same batches as
// the gemm2 candidates (autotune adds its time to the ones writing a row per slot): the
// input x [T * top_k, n] holds `distinct` random rows ~ U(-1, 1) (at most
// kMoeCheckedSlots) repeated, the routing is the batch's (topk_ids), and `ref` is the
// float64 sum over each of the first `tokens` tokens' routed slots [tokens, n].
struct SumProblem {
  int64_t t = 0, top_k = 0, n = 0, distinct = 0, tokens = 0;
  bool bf16 = true;
  std::vector<uint16_t> x;
  std::vector<double> ref;
};
SumProblem make_sum_problem(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                            int64_t n, bool bf16, std::mt19937_64& rng);
// The verdict on y ([t + kGuardRows, n], poisoned with 0xFFFF before the run): every token
// row written and finite, the first `tokens` within linear_tolerance (normalised error),
// guard rows untouched.
void judge_sum_output(const std::vector<uint16_t>& y, const SumProblem& p, Measurement& r);

}  // namespace kf
