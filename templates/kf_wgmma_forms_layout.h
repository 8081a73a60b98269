// Index math of the MN-major operand form of kf_wgmma_forms.h, as constexpr functions
// callable from host code (as kf_wgmma_layout.h is for kf_wgmma.h).
#pragma once
#include "kf_wgmma_layout.h"

namespace kf {
namespace wg {

// Byte offset of B[k][n] in an MN-major tile with the 128-byte swizzle, k_extent rows of
// k (a multiple of 8) by a multiple of 64 n: each 64-element n block is k_extent rows of
// 128 bytes (8-row atoms of 1024 bytes), and the 16-byte chunk c of row k sits at chunk
// c ^ (k % 8). The same function as b_tile_offset_sw128 with the roles of the two
// indices swapped.
KF_HD constexpr int mn_tile_offset_sw128(int k, int n, int k_extent) { return b_tile_offset_sw128(k, n, k_extent); }

// Descriptor strides of such a tile: the next 64-element n block (leading byte offset)
// and the next 8 rows of k (stride byte offset).
KF_HD constexpr int mn_leading_bytes(int k_extent) { return k_extent * 128; }
constexpr int kMnStrideBytes = 1024;

// D of one product as the A operand of the next (attention's P = softmax(S) into P V):
// accumulator elements e and e + 1, e = acc_pair_elem(j, p), are exactly A register p of
// k16 step j (D columns 16j .. 16j + 15 as k), so the pair packs into that register with
// no exchange between threads.
KF_HD constexpr int acc_pair_elem(int j, int p) { return 8 * j + 4 * (p / 2) + 2 * (p % 2); }

// A matrix descriptor's low 14 bits are its start address field, (shared address &
// 0x3FFFF) >> 4. Shared memory ends below 2^18 bytes, so for a tile inside it the field
// never carries: the descriptor of the step `bytes` further on is the first step's plus
// bytes / 16. Kernels build one descriptor per tile and advance it by constants; built
// from the address each time, the mask hides the constant from the compiler and every
// product costs ~10 more instructions.
KF_HD constexpr uint64_t desc_start_field(uint32_t addr) { return (addr & 0x3FFFFu) >> 4; }
KF_HD constexpr uint64_t desc_advance(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

}  // namespace wg
}  // namespace kf
