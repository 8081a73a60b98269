// Winners per M range from the measured data of one (arch, device, op, shape, cold_l2):
// the rule the runtime's dispatch table is built from.
//
// Tuned Ms m_1 < m_2 < ... are the Ms with at least one passed measurement; the winner
// W_i at m_i is the fastest passed kernel there (median, then min, then name, so equal
// data always gives the same table). Between consecutive tuned Ms with different winners
// A (at m_i) and B (at m_i+1): when both were timed at both Ms, their times are
// interpolated linearly in M and the boundary goes to the crossover (A serves
// [.., floor(crossover)], B the rest); otherwise B takes everything above m_i, since
// nothing says A is still good there. The first range starts at 1 and the last ends at
// kMaxWinnerM; adjacent ranges of one kernel merge, keeping the first's m_tuned.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kf {

constexpr int64_t kMaxWinnerM = 2147483647;

struct Timing {
  int64_t m = 0;
  std::string kernel;
  double median_us = 0, min_us = 0;
};

struct WinnerRange {
  int64_t m_lo = 0, m_hi = 0, m_tuned = 0;
  std::string kernel;
  double median_us = 0;  // the kernel's median at m_tuned
};

// `passed`: the passed measurements, any order. Empty in, empty out.
std::vector<WinnerRange> compute_winners(const std::vector<Timing>& passed);

// The MoE ops are timed under several routing archetypes (moe_routing.h); one kernel
// must serve them all. At each tuned T (the m of these rows), with A_T the archetypes
// that have a passed row at T and best_a(T) the fastest median of archetype a there:
// only kernels passed under every archetype of A_T compete, each scored by its worst
// ratio max_a median(k, a, T) / best_a(T) (1 = best on every archetype); the lowest
// score wins (then the lowest mean ratio, then the name). A kernel best on one archetype
// but slow on another loses to one that is close to the best on all. Ranges follow
// compute_winners' rule on the scores (crossovers interpolate the scores); each range's
// median_us is its kernel's worst median over A_T at m_tuned (a time, not the score).
struct RobustScore {
  std::string kernel;
  double worst_ratio = 0, mean_ratio = 0, worst_median_us = 0;
};
// Per T, every kernel that competes, best first.
std::map<int64_t, std::vector<RobustScore>> robust_scores(const std::map<std::string, std::vector<Timing>>& by_routing);
std::vector<WinnerRange> compute_robust_winners(const std::map<std::string, std::vector<Timing>>& by_routing);

// gemm1 (w4a16_moe_gemm1) as a layer runs it: an unfused kernel is followed by
// moe_silu_mul, one with the fused SiLU epilogue (config suffix _silu) is not. Its
// batches time moe_silu_mul too (a row of kernel moe_silu_mul_any_<dtype> at the same
// m, measured cold like the GEMMs). Out, per m: with a moe_silu_mul row there, every
// unfused kernel with that row's median and min added, the fused ones as they are;
// without one (a DB tuned before fused kernels existed, or moe_silu_mul failed), the
// unfused kernels as they are and no fused one, which cannot be compared fairly there.
// moe_silu_mul rows never compete. Winners of gemm1 (per archetype and robust) are
// computed from these step times, so their median_us is the step's.
std::vector<Timing> gemm1_step_times(const std::vector<Timing>& passed);
bool is_silu_mul_kernel(const std::string& name);   // moe_silu_mul_any_<dtype>
bool fuses_silu(const std::string& kernel_name);    // a gemm1 ending in _silu

// gemm2 (w4a16_moe_gemm2) likewise: a kernel writing one row per slot is followed by
// moe_sum (its rows: kernel moe_sum_any_<dtype>, timed in gemm2's batches), one that sums
// over top_k in its epilogue (config suffix _red) is not. Same rules as gemm1_step_times.
// The moe_align launch that zeroes y for a _red kernel is not charged: its zeroing
// blocks run beside the one that sorts.
std::vector<Timing> gemm2_step_times(const std::vector<Timing>& passed);
bool is_sum_kernel(const std::string& name);        // moe_sum_any_<dtype>
bool reduces_topk(const std::string& kernel_name);  // a gemm2 ending in _red

}  // namespace kf
