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

// A block's threads: `warps` (its warpgroups, which multiply) and a producer warpgroup
// after them, which issues the ring's copies (wgmma.h). The producer keeps producer_regs
// registers a thread and gives the rest of its launch share (65536 / threads) to the
// multiplying warpgroups (setmaxnreg): consumer_regs(warps) each, or 0 where the launch
// share is already enough (one multiplying warpgroup: 256 threads, 255 registers). The
// warpgroups draw only on what the producer gave back (a pool per block, not the SM's
// free registers): asking for more hung the block (bench/NOTES.md linear v48).
constexpr int kProducerWarps = 4;
KF_HD constexpr int block_threads(int warps) { return (warps + kProducerWarps) * 32; }
// The MoE GEMMs' gathered tiles (w4a16_moe/wgmma_gathered.h) keep the pipeline in which
// every thread copies its share: no producer warpgroup (bench/NOTES.md linear v48).
KF_HD constexpr int gathered_block_threads(int warps) { return warps * 32; }
KF_HD constexpr int launch_regs(int warps) { return 65536 / block_threads(warps) / 8 * 8; }
KF_HD constexpr int producer_regs(int) { return 40; }  // 32 spilled the stream-K producer
KF_HD constexpr int consumer_regs(int warps) {
  return warps <= 4 ? 0
                    : launch_regs(warps) +
                          (launch_regs(warps) - producer_regs(warps)) * kProducerWarps / warps / 8 * 8;
}
static_assert(consumer_regs(8) == 232 && consumer_regs(12) == 152 && consumer_regs(16) == 104,
              "the producer's registers, shared out");

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

// Stream-K (config suffix _stkB, dense rows only): the tiles' k-steps, tile after tile
// (tile-major, K / block_k steps each), are dealt out evenly to B blocks in contiguous
// runs, so a layer whose tiles are not a whole number of waves (9216 columns of 192 at
// M = 256: 96 tiles on 132 SMs) still keeps every SM busy. A run that ends inside a tile
// leaves its sums in its block's workspace slot (bf16 pairs in bf16 layers, fp32 in fp16
// ones: wgmma.h) and raises its block's flag; the block holding the tile's last step adds
// those sums (in block order) to its own and stores the tile. A block only waits on
// lower-numbered blocks, and their contribution is the first run they process, before any
// wait of their own. The launch takes at most B blocks and at most one per SM (the
// runtime and the tuner clamp it to the part's SMs, one block fills an SM's shared
// memory), so every block it waits on is running or done; the kernel reads the count it
// got.
//   workspace: B slots of block_m x block_n words, half that in bf16 layers
//              (stream_workspace_floats);
//   counters: B flags, zeroed once and left zero (args.h).
constexpr int kMaxStreamBlocks = 1024;
KF_HD constexpr long long stream_first_step(int block, int blocks, long long steps) {
  return static_cast<long long>(block) * steps / blocks;
}
// The block whose run holds step i (the last of several blocks starting there), and
// whether block b holds any step (not when there are fewer steps than blocks).
KF_HD constexpr int stream_block_of(long long step, int blocks, long long steps) {
  return static_cast<int>(((step + 1) * blocks - 1) / steps);
}
KF_HD constexpr bool stream_holds_steps(int block, int blocks, long long steps) {
  return stream_first_step(block, blocks, steps) < stream_first_step(block + 1, blocks, steps);
}
// A block walks its steps [first, last) from the end, run by run; the run ending at step
// `end` lies in one tile, starts at `begin`, and either covers the whole tile, leaves
// its sums for a later block (it stops short of the tile's last step), or finishes the
// tile with the sums of the blocks before it (it starts after the tile's first step).
enum class StreamRole { whole, contribute, finish };
struct StreamRun {
  int tile;
  long long begin;
  StreamRole role;
};
KF_HD constexpr StreamRun stream_run(long long first, long long end, int tile_steps) {
  const int tile = static_cast<int>((end - 1) / tile_steps);
  const long long tile_first = static_cast<long long>(tile) * tile_steps;
  const long long begin = first > tile_first ? first : tile_first;
  const StreamRole role = end < tile_first + tile_steps ? StreamRole::contribute
                          : begin > tile_first          ? StreamRole::finish
                                                        : StreamRole::whole;
  return {tile, begin, role};
}
// The stream-K scratch of a launch of `blocks` blocks: one slot a block, holding its
// partial sums as wgmma.h exchanges them, fp32 or, in bf16 layers, bf16 pairs (half the
// words; wgmma.h checks the two agree).
KF_HD constexpr long long stream_workspace_floats(int blocks, int block_m, int block_n, bool bf16) {
  return static_cast<long long>(blocks) * block_m * block_n / (bf16 ? 2 : 1);
}
KF_HD constexpr int stream_counter_ints(int blocks) { return blocks; }
// block_m 64 up: a block reads the partials it adds in chunks of 16 words, of the
// block_m / 4 words of bf16 pairs a thread exchanges (block_m / 2 in fp32 for fp16).
KF_HD constexpr bool stream_valid(int n, int k, int g, int block_m, int block_n, int block_k, int warps, int stages,
                                  bool asym, int blocks) {
  return blocks >= 1 && blocks <= kMaxStreamBlocks && block_m >= 64 &&
         valid(n, k, g, block_m, block_n, block_k, warps, stages, asym);
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
