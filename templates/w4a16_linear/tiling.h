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
// and N that keeps each warp's tile closest to square. 0 = no valid split. With the
// fused SiLU epilogue (silu.h) only splits giving each warp an even number of atoms
// along N count: half of them hold gate columns, the other half their up partners.
KF_HD constexpr int prefill_warps_m(int block_m, int block_n, int warps, bool silu = false) {
  int best = 0;
  int best_score = 1 << 30;
  for (int wm = 1; wm <= warps; ++wm) {
    if (warps % wm != 0) continue;
    const int wn = warps / wm;
    if (block_m % (16 * wm) != 0 || block_n % (16 * wn) != 0) continue;
    if (silu && block_n / wn / 16 % 2 != 0) continue;
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

// The fused SiLU-and-mul epilogue (silu.h): a block's local columns [0, block_n) are
// runs of `chunk` gate columns and `chunk` up columns in turn; the weight column of
// local column `local` of column block `block` of an N-column gate_up weight (gate
// [0, N/2), up [N/2, N)). Gate local column l and up local column l + chunk (l in an
// even run) pair up, and their output column is the gate column.
KF_HD constexpr int silu_weight_col(int n, int block_n, int chunk, int block, int local) {
  const int run = local / chunk;
  return (run % 2) * (n / 2) + block * (block_n / 2) + run / 2 * chunk + local % chunk;
}

// Decode: runs of block_n / 2, each thread's 4 columns (one 16-byte load) within one.
KF_HD constexpr bool decode_silu_valid(int n, int block_n) { return n % 8 == 0 && block_n % 8 == 0; }

// Prefill: runs of block_n / wn / 2 (half a warp's atoms along N); an even atom count
// per warp (prefill_warps_m with silu). The pipelined asymmetric stages copy zero points
// 32 columns at a time, so there the runs must be whole multiples of 32.
KF_HD constexpr bool prefill_silu_valid(int n, int block_m, int block_n, int warps, int stages, bool asym) {
  const int wm = prefill_warps_m(block_m, block_n, warps, true);
  if (wm == 0 || n % 8 != 0) return false;
  const int chunk = block_n / (warps / wm) / 2;
  return !(stages >= 3 && asym && chunk % 32 != 0);
}

// Padding of the shared-memory tiles, in 16-bit elements: 16 bytes per row shifts
// consecutive rows across banks for the fragment loads.
constexpr int kSmemPad = 8;

// Pipelined prefill (stages >= 3): a ring of `stages` shared-memory stages, each holding
// one k-tile's x rows (block_m x (block_k + kSmemPad) 16-bit), its raw GPTQ words
// (block_k / 8 x block_n int32), its scale row (block_n 16-bit) and, asymmetric, its
// zero-point words (block_n / 8 int32); plus the split-K epilogue's flag.
KF_HD constexpr int pipelined_stage_bytes(int block_m, int block_n, int block_k, bool asym) {
  return block_m * (block_k + kSmemPad) * 2 + block_k / 8 * block_n * 4 + block_n * 2 + (asym ? block_n / 2 : 0);
}
KF_HD constexpr int pipelined_smem_bytes(int block_m, int block_n, int block_k, int stages, bool asym) {
  return stages * pipelined_stage_bytes(block_m, block_n, block_k, asym) + 16;
}

// A pipelined config is a valid prefill config whose stages fit `max_smem` bytes of
// static shared memory (48 KiB on sm_90a, 64 KiB on the AMD targets) and whose scale and
// zero-point rows take one 16-byte copy per thread of a single round.
KF_HD constexpr bool prefill_pipelined_valid(int n, int k, int group, int block_m, int block_n, int block_k,
                                             int warps, int split_k, int stages, bool asym, int wave,
                                             int max_smem) {
  if (stages < 3 || stages > 8) return false;
  if (!prefill_valid(n, k, group, block_m, block_n, block_k, warps, split_k)) return false;
  if (block_n % 32 != 0) return false;  // zero-point words in whole 16-byte copies
  if (block_n / 8 + block_n / 32 > warps * wave) return false;
  return pipelined_smem_bytes(block_m, block_n, block_k, stages, asym) <= max_smem;
}

// Where register p of `lane`'s B fragment finds its two weights in a stage's raw tile
// (block_n words per k-row of 8): the word and the shift of the low (even-k) nibble; the
// high half is the next nibble. The atom covers columns n_atom .. n_atom + 15 of the
// tile and k kk .. kk + 15 (kk % 16 == 0).
struct RawPair {
  int word;
  int shift;
};
template <class Layout>
KF_HD constexpr RawPair raw_b_pair(int lane, int p, int n_atom, int kk, int block_n) {
  const layout::RC rc = Layout::b_pair(lane, p);  // (n, k), k even
  const int kx = kk + rc.col;
  return {kx / 8 * block_n + n_atom + rc.row, 4 * (kx % 8)};
}

}  // namespace w4a16
}  // namespace kf
