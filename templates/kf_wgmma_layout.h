// Index math of Hopper's warpgroup MMA operands (kf_wgmma.h), as constexpr functions
// callable from host code, so host tests and the device layout check use the very
// functions the templates do.
#pragma once
#include "kf_mma_layouts.h"  // KF_HD, layout::RC

namespace kf {
namespace wg {

constexpr int kThreads = 128;  // a warpgroup: four warps issue each product together

// The (row, column) of accumulator element e of `lane` in warp `warp` (0-3) of the
// group, for a 64 x N product: the m16n8 C fragment of each 8 columns in turn.
KF_HD constexpr layout::RC d_elem(int warp, int lane, int e) {
  return {16 * warp + lane / 4 + 8 * ((e % 4) / 2), 8 * (e / 4) + 2 * (lane % 4) + e % 2};
}

// The (row, k) of the low half of A register p of `lane` in warp `warp`: warp w's rows
// 16w .. 16w + 15 as an mma.sync m16n8k16 A fragment.
KF_HD constexpr layout::RC a_pair(int warp, int lane, int p) {
  return {16 * warp + lane / 4 + 8 * (p % 2), 2 * (lane % 4) + 8 * (p / 2)};
}

// Byte offset of B[k][n] in a K-major, unswizzled tile of k_extent k per n: core matrix
// (n / 8, k / 8) is 128 contiguous bytes at ((n / 8) * (k_extent / 8) + k / 8) * 128,
// its 8 rows 16 bytes apart. So the core matrices of one k16 step are 128 bytes apart
// along k (the descriptor's leading byte offset) and k_extent * 16 along n (its stride).
KF_HD constexpr int b_tile_offset(int n, int k, int k_extent) {
  return ((n / 8) * (k_extent / 8) + k / 8) * 128 + (n % 8) * 16 + (k % 8) * 2;
}

// Byte offset of B[k][n] in a K-major tile with the 128-byte swizzle, n_extent rows by a
// multiple of 64 k: each 64-k column block is n_extent rows of 128 bytes (8-row atoms of
// 1024 bytes), and the 16-byte chunk c of row n sits at chunk c ^ (n % 8), so the eight
// rows of a core matrix fall in eight different bank groups whichever 16 bytes are read.
KF_HD constexpr int b_tile_offset_sw128(int n, int k, int n_extent) {
  return (k / 64) * n_extent * 128 + n * 128 + (((k % 64) / 8) ^ (n % 8)) * 16 + (k % 8) * 2;
}

}  // namespace wg
}  // namespace kf
