// Host side of autotune's mxfp4_moe measurements (no GPU API, so the CPU tests check it):
// the routing and inputs of one (shape, T, routing) problem, the float64 reference of the
// slots a verification checks (mxfp4_reference.h's arithmetic), and the verdict on a
// GEMM's output (templates/mxfp4_moe/args.h).
//
// The problem, fresh per (shape, T, routing archetype) from the measurer's seed:
//   - routing: the archetype's (generate_routing), and from T = 16 on one slot routed
//     nowhere (the last token's first choice is -1, an expert on another rank), from
//     T = 64 a second (token 1's last choice is E): their rows must stay untouched;
//   - weights [E, N, K/2]: every e2m1 code equally likely; e8m0 scales mostly 2^-9 .. 2^-3
//     (weights ~ 1 / sqrt(K)), one block in 64 at the bottom of the range (2^-127 or
//     2^-126) and one in 64 at 2^5, as the GPU check draws them. Counter-based: byte i
//     of the weights and the scale of (e, n, k / 32) are pure functions of the problem's
//     seeds, so the 1 GB of gpt-oss-120b's gemm1 is drawn chunk by chunk for the upload
//     (in the kernels' [E, K/32, N] scale layout) and row by row for the reference,
//     never held whole on the host;
//   - bias [E, N] fp32 ~ U(-0.5, 0.5); x bf16 ~ U(-1, 1), gemm1 [T, K], gemm2 [T top_k, K]
//     (one row per slot); routing weights ~ U(0.1, 1) (gemm2 scales its rows by them).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "measurer.h"
#include "moe_routing.h"
#include "mxfp4_family.h"

namespace kf {

// Routed slots whose float64 reference a verification computes: all of them up to this
// many, else a sample of this many (mxfp4_checked_slots).
constexpr int64_t kMxfp4CheckedSlots = 64;
// Pass: ||y - ref|| / ||ref|| over the checked rows within kMxfp4Tolerance (fp32
// accumulation, bf16 output), and every checked row within kMxfp4RowTolerance of its
// own norm (so one bad row cannot hide in the total).
constexpr double kMxfp4Tolerance = 1e-2;
constexpr double kMxfp4RowTolerance = 4e-2;
// gpt-oss's SwiGLU constants (mxfp4_reference.h), passed to the gemm1 kernels.
constexpr float kMxfp4SwigluAlpha = 1.702f, kMxfp4SwigluLimit = 7.0f;
// From these token counts the routing has slots routed nowhere (see above).
constexpr int64_t kMxfp4DropFromT = 16, kMxfp4SecondDropFromT = 64;

// The routing an MXFP4 batch is measured under (see above).
std::vector<int32_t> mxfp4_tune_routing(RoutingArchetype archetype, int64_t t, int experts, int top_k,
                                        uint64_t seed);

struct Mxfp4TuneProblem {
  Mxfp4MoeShape shape;
  int64_t t = 0;
  uint64_t weight_seed = 0, scale_seed = 0;
  std::vector<int32_t> topk_ids;    // [T * top_k]
  std::vector<uint16_t> x;          // bf16 bits
  std::vector<float> bias;          // [E, N]
  std::vector<float> topk_weights;  // [T * top_k]
  int64_t out_cols() const { return shape.swiglu ? shape.n / 2 : shape.n; }
  int64_t slots() const { return t * shape.top_k; }
};

Mxfp4TuneProblem make_mxfp4_problem(const Mxfp4MoeShape& shape, const MoeRouting& routing, std::mt19937_64& rng);
// Bytes [first, first + count) of the weights [E, N, K/2] (two e2m1 codes per byte, the
// low nibble first).
void mxfp4_weight_fill(const Mxfp4TuneProblem& p, int64_t first, int64_t count, uint8_t* out);
// The e8m0 scale of expert e, row n, k-block kb (the checkpoint's [E, N, K/32] order).
uint8_t mxfp4_scale(const Mxfp4TuneProblem& p, int64_t e, int64_t n, int64_t kb);
// Bytes [first, first + count) of the scales in the kernels' [E, K/32, N] layout.
void mxfp4_scale_fill(const Mxfp4TuneProblem& p, int64_t first, int64_t count, uint8_t* out);
int64_t mxfp4_weight_bytes(const Mxfp4MoeShape& s);
int64_t mxfp4_scale_bytes(const Mxfp4MoeShape& s);

// The routed slots a verification checks, ascending: all of them up to
// kMxfp4CheckedSlots; above, kMxfp4CheckedSlots of them: the first and the last routed
// slot, the first and the last slot of the highest expert hit (E - 1 when it is: the
// end of the sorted blocks), the rest drawn at random.
std::vector<int64_t> mxfp4_checked_slots(const std::vector<int32_t>& topk_ids, int64_t experts, std::mt19937_64& rng);

struct Mxfp4CheckReference {
  std::vector<int64_t> slots;  // mxfp4_checked_slots
  std::vector<double> y;       // [slots.size(), out_cols]: what the kernel writes to those rows
  bool sampled = false;        // fewer than every routed slot
};
// gemm1: swiglu(x[s / top_k] . W[e]^T + b[e]) (interleaved gate/up columns), or the
// pre-activation without swiglu; gemm2: topk_weights[s] * (x[s] . W[e]^T + b[e]); float64,
// each used expert row decoded once, on `threads` host threads.
Mxfp4CheckReference mxfp4_check_reference(const Mxfp4TuneProblem& p, std::vector<int64_t> slots, int threads);

// The verdict on y ([T top_k + kGuardRows, out_cols], poisoned with 0xFFFF before the
// run): every routed slot's row written and finite, the rows of slots routed nowhere and
// the guard rows after the last slot (where the padding id T top_k would land) untouched,
// the checked rows within kMxfp4Tolerance in total and kMxfp4RowTolerance each. Sets
// r.max_rel_err; flags r incorrect.
void judge_mxfp4_output(const std::vector<uint16_t>& y, const Mxfp4CheckReference& ref, const Mxfp4TuneProblem& p,
                        Measurement& r);

}  // namespace kf
