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

}  // namespace kf
