// Rules, shared-memory layout and index math of the mxfp4_moe `wgmma` kind
// (gemm_wgmma.h, sm_90a only) as constexpr functions: the template static_asserts them,
// the generator enumerates with them, the runtime and tuner launch with them, and host
// tests check the index math. It launches on the mma kind's grid (tiling.h: N / block_n,
// sorted_capacity / block_m), always with dynamic shared memory, or, persistent, on
// persistent_blocks(...) blocks that walk the tiles.
//   block_m: sorted slots per block, the wgmma N: 64, 128 or 256
//   block_n: weight rows per block: 64 per warpgroup of 4 warps, one to three warpgroups
//            (the gathered x tile, most of a stage's bytes, is shared by all of them)
//   block_k: k per pipeline stage, 64 or 128 (two or four 32-value MXFP4 blocks)
//   stages:  ring slots; STAGES - 2 stages load ahead, one is read by the products still
//            running from the previous stage
//   persistent: 0 (one tile per block), or blocks per SM of a persistent launch
#pragma once
#include <stdint.h>

#include "kf_mma_layouts.h"  // KF_HD

namespace kf {
namespace mxfp4 {
namespace wgmma {

constexpr int kMaxShared = 227 * 1024;  // sm_90a's opt-in maximum per block

// One stage: the gathered x tile (block_m x block_k bf16, 128-byte swizzled for wgmma),
// the raw weight bytes (block_n rows x block_k / 2) and the tile's e8m0 scale rows
// (block_k / 32 rows of block_n bytes, as stored: k-block-major).
KF_HD constexpr int x_bytes(int block_m, int block_k) { return block_m * block_k * 2; }
KF_HD constexpr int w_bytes(int block_n, int block_k) { return block_n * block_k / 2; }
KF_HD constexpr int s_bytes(int block_n, int block_k) { return block_k / 32 * block_n; }
// Stages start 1024-byte aligned (the swizzle's atom); the kernel aligns the dynamic
// shared memory's base itself, so it asks for 1 KiB more.
KF_HD constexpr int stage_stride(int block_m, int block_n, int block_k) {
  return (x_bytes(block_m, block_k) + w_bytes(block_n, block_k) + s_bytes(block_n, block_k) + 1023) / 1024 * 1024;
}
KF_HD constexpr int smem_bytes(int block_m, int block_n, int block_k, int stages) {
  return stages * stage_stride(block_m, block_n, block_k) + 1024;
}

KF_HD constexpr bool config_valid(int n, int k, bool swiglu, int block_m, int block_n, int block_k, int warps,
                                  int stages) {
  if (warps != 4 && warps != 8 && warps != 12) return false;  // one to three warpgroups
  if (block_n != 16 * warps) return false;     // 64 weight rows per warpgroup
  if (block_m != 64 && block_m != 128 && block_m != 256) return false;
  if (block_k != 64 && block_k != 128) return false;
  if (n % block_n != 0 || k % block_k != 0 || (swiglu && n % 2 != 0)) return false;
  if (stages < 3) return false;
  // The gathered-row table (block_m ints) is static shared memory beside the ring.
  return smem_bytes(block_m, block_n, block_k, stages) + block_m * 4 <= kMaxShared;
}

constexpr int kMaxPersistentPerUnit = 8;

// A persistent launch: per_unit blocks per SM (compute unit), never more than the tiles
// the sorted capacity can hold (n / block_n per block of block_m slots).
KF_HD constexpr int64_t persistent_blocks(int64_t n, int64_t capacity, int block_m, int block_n, int per_unit,
                                          int compute_units) {
  const int64_t tiles = n / block_n * (capacity / block_m), want = int64_t{per_unit} * compute_units;
  return tiles < want ? tiles : want;
}

// Raw weight layout of a stage. The fragment rows g and g + 8 of a warp's A operand are
// weight rows 2p and 2p + 1 (a row pair p), so a thread reads two rows' 16-byte chunks of
// the same 32 k. The chunks of a row pair are kept together (unit 2j + h: chunk j of row
// 2p + h), and the units of pair p are XOR-swizzled by pair_swizzle(p), so the eight pairs
// a warp reads at once fall on eight different 16-byte bank groups.
//   units_per_pair = block_k / 16 (two rows of block_k / 32 chunks)
KF_HD constexpr int pair_swizzle(int pair, int block_k) {
  return block_k == 128 ? pair % 8 : (pair / 2) % 4;  // block_k 64: two pairs per 128 bytes
}
// Byte offset in the stage's weight area of chunk j (k 32j .. 32j + 31) of weight row r.
KF_HD constexpr int raw_chunk_offset(int r, int j, int block_k) {
  return ((r / 2) * (block_k / 16) + ((2 * j + r % 2) ^ pair_swizzle(r / 2, block_k))) * 16;
}

// The A register of the k pair (2t, 2t + 1) of a byte of two e2m1 codes (the low nibble
// is the lower k): both values as bf16 bit patterns scaled by 2^-126, which is exact for
// every code including the subnormal 0.5 (bf16 0x0040). Two products, by 2^126 and by the
// block's scale, then give the weight (gemm_wgmma.h).
KF_HD constexpr uint32_t e2m1_pair_scaled(uint32_t nibbles) {  // nibbles: lo in 0-3, hi in 16-19
  return (nibbles & 0x00070007u) << 6 | (nibbles & 0x00080008u) << 12;
}
// e8m0 exponent -> bf16 bits of 2^(s - 127): s = 0 is the bf16 subnormal 2^-127, 0xFF NaN.
KF_HD constexpr uint32_t e8m0_bf16(uint32_t s) { return s == 0xFFu ? 0x7FC0u : s == 0u ? 0x0040u : s << 7; }
constexpr uint32_t kTwoPow126 = 0x7E80u;  // bf16 2^126

}  // namespace wgmma
}  // namespace mxfp4
}  // namespace kf
