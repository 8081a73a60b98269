// Tiling rules of the w4a16_linear templates as constexpr functions. The kernels
// static_assert them and the generator calls the same functions to enumerate only
// configs the templates accept, so the two cannot drift apart.
#pragma once
#include "kf_mma_layouts.h"  // KF_HD

namespace kf {
namespace w4a16 {

// Decode: a block covers block_n columns with one 16-byte weight load (4 columns x 8 k)
// per thread per k-row; the remaining threads split the block's K range.
KF_HD constexpr int decode_threads_n(int block_n) { return block_n / 4; }
KF_HD constexpr int decode_threads_k(int block_n, int threads) { return threads / (block_n / 4); }

KF_HD constexpr bool decode_valid(int n, int k, int group, int block_n, int block_k, int threads,
                            int split_k) {
  const int tn = block_n / 4;
  if (block_n % 4 != 0 || tn == 0 || threads % tn != 0) return false;
  const int tk = threads / tn;
  if (n % block_n != 0 || block_k % 8 != 0 || split_k < 1) return false;
  if (k % split_k != 0) return false;
  const int k_split = k / split_k;
  if (k_split % (tk * block_k) != 0) return false;
  // One scale per thread step: a step of block_k must not straddle a group.
  if (group % block_k != 0) return false;
  return true;
}

// Prefill: warps tile block_m x block_n in 16x16 atoms; pick the split of warps over M
// and N that keeps each warp's tile closest to square. 0 = no valid split.
KF_HD constexpr int prefill_warps_m(int block_m, int block_n, int warps) {
  int best = 0;
  int best_score = 1 << 30;
  for (int wm = 1; wm <= warps; ++wm) {
    if (warps % wm != 0) continue;
    const int wn = warps / wm;
    if (block_m % (16 * wm) != 0 || block_n % (16 * wn) != 0) continue;
    const int dm = block_m / wm, dn = block_n / wn;
    const int score = dm > dn ? dm - dn : dn - dm;
    if (score < best_score) {
      best_score = score;
      best = wm;
    }
  }
  return best;
}

KF_HD constexpr bool prefill_valid(int n, int k, int group, int block_m, int block_n, int block_k,
                             int warps, int split_k = 1) {
  if (block_m % 16 != 0 || block_n % 16 != 0 || block_k % 16 != 0 || split_k < 1) return false;
  if (n % block_n != 0 || k % split_k != 0 || (k / split_k) % block_k != 0) return false;
  if (group % block_k != 0) return false;  // one scale row per k-tile
  return prefill_warps_m(block_m, block_n, warps) != 0;
}

// Padding of the shared-memory tiles, in 16-bit elements: 16 bytes per row shifts
// consecutive rows across banks for the fragment loads.
constexpr int kSmemPad = 8;

}  // namespace w4a16
}  // namespace kf
