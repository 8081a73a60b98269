// Index math of the skinny kind (skinny.h): the matrix instructions fed straight from
// the GPTQ words a lane loads, without a shared-memory round trip or a shuffle.
//
// A matrix product does not care in which order it visits k, nor which output column an
// accumulator stands for, as long as A and B agree on k and the epilogue knows the
// columns. So the atom's logical k and n are permuted such that what one lane needs is
// exactly what one 16-byte load gives it:
//   - a warp walks K in spans of 32; in a span, lane (g = lane / 4, t = lane % 4) loads
//     GPTQ word row t (actual k 8t .. 8t + 7) of actual columns 4g .. 4g + 3 of every
//     32-column chunk: 8 lanes cover 128 contiguous bytes of a word row;
//   - chunk s (0, 1) of the span is one 16-deep atom; the two 16-bit halves of a fragment
//     register are nibbles i and i + 4 of one word, so a single shift and mask extracts
//     both ((w >> 4i) & 0x000F000F);
//   - a 32-column chunk is two 16-column atoms (0, 1); atom a's logical column c is
//     actual column 4 (c % 8) + 2a + c / 8.
// The layout is that of NVIDIA's m16n8k16 pair (kf_mma_layouts.h, Mma16Sm80); the host
// tests rebuild the atoms from these functions and the layout table and check that the
// permuted products equal the plain one.
#pragma once
#include "kf_mma_layouts.h"

namespace kf {
namespace w4a16 {
namespace skinny {

constexpr int kSpan = 32;  // k per warp step
constexpr int kRows = 16;        // rows of M per block: one atom's A tile
constexpr int kRowsSwapped = 8;  // the swapped form: M is the n of m16n8k16 (below)

// Actual column (0 .. 31) within the chunk of logical column c (0 .. 15) of atom a.
KF_HD constexpr int actual_n(int atom, int c) { return 4 * (c % 8) + 2 * atom + c / 8; }

// B register p of a lane for chunk s and atom a: the word (of the lane's four, actual
// column 4g + word) and the nibble of its low half (the high half is nibble + 4).
KF_HD constexpr int b_word(int atom, int p) { return 2 * atom + p / 2; }
KF_HD constexpr int b_nibble(int s, int p) { return 2 * s + p % 2; }

// A register p of `lane` for chunk s: the row (0 .. 15) and the actual k (0 .. 31) of its
// low half; the high half is k + 4. Both come from the lane's 16-byte load of the row's
// x[8t .. 8t + 7]: k - 8t is 2s + p / 2.
KF_HD constexpr int a_row(int lane, int p) { return lane / 4 + 8 * (p % 2); }
KF_HD constexpr int a_k(int lane, int s, int p) { return 8 * (lane % 4) + 2 * s + p / 2; }

// Accumulator element e of `lane` for atom a: row (0 .. 15) and actual column (0 .. 31)
// within the chunk. Its logical column 8 (e / 4) + 2t + e % 2, through actual_n, is
// 8t + fold_col(a, e) (= 8t + 4 (e % 2) + 2a + e / 4): per chunk a lane's eight columns
// are 8t .. 8t + 7, and the fold takes each element's scale and zero point by fold_col.
KF_HD constexpr int fold_col(int atom, int e) { return actual_n(atom, 8 * (e / 4) + e % 2); }
KF_HD constexpr int c_row(int lane, int e) { return lane / 4 + 8 * (e % 4 / 2); }
KF_HD constexpr int c_col(int lane, int atom, int e) { return 8 * (lane % 4) + fold_col(atom, e); }

// How a span's weights travel (skinny.h): the warp copies the span's 4 word rows x
// block_n columns as 16-byte units in row-major order, unit u = 32 c + lane for copy c,
// so one copy reads whole 256- or 512-byte row pieces (16 or 32 lanes per row). Copies
// of 4 rows x 128 bytes (8 lanes per row, each lane its own fragment words) read the
// same bytes at 1.45-1.5x the read floor on the H200, these at 1.01-1.12x
// (bench/results/h200_v9_layout_probe.txt). A lane then reads back, from shared memory,
// the unit its fragments need: word row t, columns 4g .. 4g + 3 of chunk j.
KF_HD constexpr int row_units(int block_n) { return block_n / 4; }  // 16-byte units of a row
KF_HD constexpr int unit_row(int block_n, int u) { return u / row_units(block_n); }
KF_HD constexpr int unit_chunk(int block_n, int u) { return u % row_units(block_n) / 8; }
KF_HD constexpr int unit_col(int /*block_n*/, int u) { return 4 * (u % 8); }  // within its chunk
KF_HD constexpr int fragment_unit(int block_n, int lane, int chunk) {
  return lane % 4 * row_units(block_n) + 8 * chunk + lane / 4;
}
// Where unit u sits in the slot: its index with the low 3 bits XORed by twice its row,
// so the 8 lanes of each quarter-warp read 8 different 16-byte bank groups (without it,
// lanes g, t = 0 .. 3 read the same group: 4-way conflicts), and a copy's 8 consecutive
// units stay in 8 different groups. A permutation within each aligned group of 8.
KF_HD constexpr int swizzled(int block_n, int u) { return u ^ (2 * unit_row(block_n, u) & 7); }

// Which element of the x-sum fragment (one m16n8k16 of A against ones: c0, c1 row g;
// c2, c3 row g + 8) holds the row sum of accumulator element e.
KF_HD constexpr int xsum_elem(int e) { return 2 * (e % 4 / 2); }

// The swapped form (block_m 8, M <= 8): the weights are the A operand of m16n8k16 and x
// the B operand, so one matrix instruction covers 16 columns (two in the form above) and
// a lane keeps half the accumulators. Per 32-column chunk and 16-k sub-step s of a span,
// atom a's logical rows g and g + 8 are actual columns 4g + 2a and 4g + 2a + 1 (the
// lane's own words 2a and 2a + 1), and logical k 2t, 2t + 1, 2t + 8, 2t + 9 are actual
// k 8t + 2s, 8t + 2s + 4, 8t + 2s + 1, 8t + 2s + 5 (word row t: nibbles 2s, 2s + 4,
// 2s + 1, 2s + 5).
// A register p: word and (low) nibble of the pair (the high half is nibble + 4).
KF_HD constexpr int swapped_a_word(int atom, int p) { return 2 * atom + p % 2; }
KF_HD constexpr int swapped_a_nibble(int s, int p) { return 2 * s + p / 2; }
// B register p (0, 1): x row g at actual k 8t + swapped_b_k(s, p) (low half) and + 4
// (high half), i.e. from the lane's x unit x[g][8t .. 8t + 7].
KF_HD constexpr int swapped_b_k(int s, int p) { return 2 * s + p; }
// Accumulator element v (0 .. 3) of atom a: its column among the lane's 4 of the chunk
// (actual column 4g + swapped_col) and its row of M; its x sum (ones times B) is element
// swapped_xsum_elem of that product.
KF_HD constexpr int swapped_col(int atom, int v) { return 2 * atom + v / 2; }
KF_HD constexpr int swapped_row(int lane, int v) { return 2 * (lane % 4) + v % 2; }
KF_HD constexpr int swapped_xsum_elem(int v) { return v % 2; }

// The paired swapped form (block_m 16, `_sw`): the swapped form's A registers feed two
// products, one per 8-row half of x (B from x rows g and g + 8). Accumulator element e
// (0 .. 7) of atom a is element e % 4 of half e / 4: M row 8 (e / 4) + swapped_row,
// column 4g + swapped_col; each half folds with its own x sums (swapped_xsum_elem).
KF_HD constexpr int paired_row(int lane, int e) { return 8 * (e / 4) + swapped_row(lane, e % 4); }
KF_HD constexpr int paired_col(int atom, int e) { return swapped_col(atom, e % 4); }

// The k over which a warp sums before applying the scale: a group, or its whole slice
// when that lies within one group (more warps than groups on a short K: K = 512 over 8
// warps, 64 k each, bench/NOTES.md linear v29) or when there is one scale per column
// (per-channel, group == k).
KF_HD constexpr int fold_k(int k, int group, int kw) { return group == k || kw < group ? kw : group; }

// Shared memory: each warp's ring of STAGES slots, a slot holding the 16-byte rows every
// lane copies for one span (a weight row per 32-column chunk, its two rows of x), and,
// once the ring is drained, the 16 x BN fp32 tile where the warps' sums meet (aliased).
// Up to 48 KiB it is static shared memory; above, dynamic, which a block may have up to
// 227 KiB of on sm_90a once its kernel opts in (the runtime and the tuner do, at load,
// with dynamic_shared_bytes). Split-K adds a static word, block 0's barrier, and the ring
// then starts at the next 128-byte line (skinny.h shared_units): up to 128 bytes
// beside the ring. Every size above is a multiple of 512 bytes, so those 128 move no config
// across either limit.
constexpr int kMaxStaticShared = 48 * 1024;
constexpr int kMaxShared = 227 * 1024;
constexpr int kEpilogueShared = 128;
constexpr int kMaxStages = 8;
// A slot: the weight units, then one x unit per lane per row of x it reads (2, or 1 in
// the swapped form).
KF_HD constexpr int slot_rows(int block_n, int block_m = kRows) {
  return block_n / kSpan + (block_m == kRowsSwapped ? 1 : 2);
}
KF_HD constexpr int ring_bytes(int block_n, int warps, int stages, int block_m = kRows) {
  return warps * stages * slot_rows(block_n, block_m) * 32 * 16;
}
KF_HD constexpr int tile_bytes(int block_n, int block_m = kRows) { return block_m * block_n * 4; }
KF_HD constexpr int shared_bytes(int block_n, int warps, int stages, int block_m = kRows) {
  return ring_bytes(block_n, warps, stages, block_m) > tile_bytes(block_n, block_m)
             ? ring_bytes(block_n, warps, stages, block_m)
             : tile_bytes(block_n, block_m);
}

// Split-K: after the ring and tile, where a cluster's block 0 receives the other blocks'
// tiles (all BM x BN entries of each: skinny.h), so that they may store into it while
// block 0 still multiplies. The barrier that counts them in is a static word.
KF_HD constexpr int received_bytes(int block_n, int split_k, int block_m = kRows) {
  return split_k > 1 ? (split_k - 1) * block_m * block_n * 4 : 0;
}
KF_HD constexpr int block_bytes(int block_n, int warps, int stages, int block_m = kRows, int split_k = 1) {
  return shared_bytes(block_n, warps, stages, block_m) + received_bytes(block_n, split_k, block_m);
}

// The dynamic shared memory a config launches with: 0 when its ring, tile and received
// tiles fit the static 48 KiB (deeper rings and more warps keep more weight bytes in
// flight per SM: bench/NOTES.md linear v11 profile).
KF_HD constexpr int dynamic_shared_bytes(int block_n, int warps, int stages, int block_m = kRows, int split_k = 1) {
  return block_bytes(block_n, warps, stages, block_m, split_k) + kEpilogueShared > kMaxStaticShared
             ? block_bytes(block_n, warps, stages, block_m, split_k)
             : 0;
}

// A config the template accepts: whole 32-column chunks; each of the warps * split_k
// slices of K whole spans and, unless per-channel, whole groups or a whole part of one
// (the scale is applied once per group, or once per slice); a ring no deeper than the
// slice's spans (deeper slots would never be filled) whose slots fit the shared memory a
// block can have (with a split's received tiles).
KF_HD constexpr bool valid(int n, int k, int group, int block_n, int warps, int split_k, int stages,
                           int block_m = kRows) {
  if (block_m != kRows && block_m != kRowsSwapped) return false;
  if (block_n % 32 != 0 || block_n <= 0 || n % block_n != 0) return false;
  if (warps < 1 || split_k < 1 || k % (split_k * warps) != 0) return false;
  const int kw = k / split_k / warps;
  if (kw < kSpan || kw % kSpan != 0) return false;
  const int fold = fold_k(k, group, kw);
  if (fold % kSpan != 0 || kw < fold || kw % fold != 0) return false;
  if (kw < group && group % kw != 0) return false;  // a slice within one group
  return stages >= 1 && stages <= kMaxStages && stages <= kw / kSpan &&
         block_bytes(block_n, warps, stages, block_m, split_k) + kEpilogueShared <= kMaxShared;
}

// The fused SiLU epilogue (gemm1, _silu): the block's gate and up halves are whole
// 32-column chunks.
KF_HD constexpr bool silu_valid(int block_n) { return block_n % 64 == 0; }

}  // namespace skinny
}  // namespace w4a16
}  // namespace kf
