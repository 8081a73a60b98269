// Rules and shared-memory layout of the w4a16_linear `wgmma` kind (wgmma.h) as constexpr
// functions: the template static_asserts them, the generator enumerates with them, the
// runtime and tuner launch with them. It launches on the prefill kind's grid
// (launch.h: N / block_n, ceil(M / block_m)), always with dynamic shared memory.
//   block_m: rows of x (tokens) per block, the wgmma N: 16, 32, 64, 128 or 256 (16 and
//            32 for MoE experts holding tens of slots, which 64 would pad to twice)
//   block_n: output columns (weight rows) per block: 64 per warpgroup of 4 warps, one to
//            four warpgroups (192 tiles 12288 and 9216 columns into 64 and 48 blocks,
//            where 128 leaves a 132-SM part a quarter idle at block_m 256; 256 halves
//            how often each x tile is read, which bounds the MoE GEMMs at large T)
//   block_k: k per pipeline stage, 64 or 128, dividing the group size
//   stages:  ring slots; STAGES - 2 stages are loaded ahead, one is read by the products
//            still running from the previous stage
#pragma once
#include "kf_mma_layouts.h"  // KF_HD

namespace kf {
namespace w4a16 {
namespace wgmma {

constexpr int kMaxShared = 227 * 1024;  // sm_90a's opt-in maximum per block

KF_HD constexpr int round16(int bytes) { return (bytes + 15) / 16 * 16; }

// One stage: the x tile (block_m x block_k, 16-bit, 128-byte swizzled for wgmma), the
// packed weight words (block_k / 8 rows of block_n int32), the tile's group of scales
// (block_n 16-bit) and, asymmetric, its zero-point words (block_n / 8 int32).
KF_HD constexpr int x_bytes(int block_m, int block_k) { return block_m * block_k * 2; }
KF_HD constexpr int w_bytes(int block_n, int block_k) { return block_k / 8 * block_n * 4; }
KF_HD constexpr int s_bytes(int block_n) { return round16(block_n * 2); }
KF_HD constexpr int z_bytes(int block_n, bool asym) { return asym ? round16(block_n / 2) : 0; }
KF_HD constexpr int stage_bytes(int block_m, int block_n, int block_k, bool asym) {
  return x_bytes(block_m, block_k) + w_bytes(block_n, block_k) + s_bytes(block_n) + z_bytes(block_n, asym);
}
// Stages start 1024-byte aligned (the swizzle's atom), and the kernel aligns the dynamic
// shared memory's base itself, so it asks for 1 KiB more.
KF_HD constexpr int stage_stride(int block_m, int block_n, int block_k, bool asym) {
  return (stage_bytes(block_m, block_n, block_k, asym) + 1023) / 1024 * 1024;
}
KF_HD constexpr int smem_bytes(int block_m, int block_n, int block_k, int stages, bool asym) {
  return stages * stage_stride(block_m, block_n, block_k, asym) + 1024;
}

// n, k: the layer; g: its group size (k for per-channel); split_k: blocks sharing a
// tile's K, each a whole number of stages: one thread-block cluster (at most 8 blocks),
// whose blocks leave their fp32 tiles in the ring and each sum whole 8-row groups of it.
KF_HD constexpr bool valid(int n, int k, int g, int block_m, int block_n, int block_k, int warps, int stages,
                           bool asym, int split_k = 1) {
  if (split_k < 1 || k % block_k != 0 || (k / block_k) % split_k != 0) return false;
  if (warps != 4 && warps != 8 && warps != 12 && warps != 16) return false;  // one to four warpgroups
  if (block_n != 16 * warps) return false;        // 64 weight rows per warpgroup
  if (block_m != 16 && block_m != 32 && block_m != 64 && block_m != 128 && block_m != 256) return false;
  if (block_k != 64 && block_k != 128) return false;
  if (g % block_k != 0 || k % block_k != 0 || n % block_n != 0) return false;  // one group per stage
  if (stages < 3) return false;
  if (split_k > 1 && (split_k > 8 || block_m / 8 % split_k != 0 ||
                      block_m * block_n * 4 > stages * stage_stride(block_m, block_n, block_k, asym)))
    return false;
  return smem_bytes(block_m, block_n, block_k, stages, asym) <= kMaxShared;
}

// The MoE GEMMs (gathered rows) also keep tables of the block's rows in static shared
// memory beside the ring: the x row, y row and factor of each, and how many it holds.
KF_HD constexpr int row_table_bytes(int block_m) { return block_m * 12 + 16; }
KF_HD constexpr bool valid_gathered(int n, int k, int g, int block_m, int block_n, int block_k, int warps, int stages,
                                    bool asym) {
  return valid(n, k, g, block_m, block_n, block_k, warps, stages, asym) &&
         smem_bytes(block_m, block_n, block_k, stages, asym) + row_table_bytes(block_m) <= kMaxShared;
}

// The product width of a gathered tile of block_m rows (the wgmma N) of which the first
// `rows` hold slots: the narrowest of block_m, block_m / 2, ..., 16 that covers them.
KF_HD constexpr int product_width(int block_m, int rows) {
  int w = block_m;
  while (w > 16 && rows <= w / 2) w /= 2;
  return w;
}

}  // namespace wgmma
}  // namespace w4a16
}  // namespace kf
