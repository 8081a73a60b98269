// Launch geometry and scratch sizes of the sparse_mla kernels: shared by the template,
// the generator, the tuner and the runtime.
//   decode : grid (H / block_h, Q, splits), warps * wave threads
//   combine: grid (ceil(Q * H / kCombineRows), 1, 1), kCombineThreads threads
#pragma once
#include <stdint.h>

#include "kf_mma_layouts.h"  // KF_HD

namespace kf {
namespace mla {

constexpr int kLatentDim = 512;  // v: the first 512 dims of a KV row
constexpr int kRopeDim = 64;
constexpr int kHeadDim = kLatentDim + kRopeDim;  // q and kv rows
constexpr int kMaxSplits = 64;
// Combine: one warp-sized group of threads per (q, h) row, 16 output dims per thread.
constexpr int kCombineThreads = 256;
constexpr int kCombineRowThreads = kLatentDim / 16;  // 32
constexpr int kCombineRows = kCombineThreads / kCombineRowThreads;

// Query q's slot positions [lo, hi) handled by part `split` of `splits` (slots = topk +
// its extra count): part i covers [floor(i * L / splits), floor((i + 1) * L / splits)).
KF_HD constexpr int64_t split_begin(int64_t slots, int split, int splits) { return slots * split / splits; }

KF_HD constexpr int64_t part_o_floats(int64_t splits, int64_t queries, int64_t heads) {
  return splits > 1 ? splits * queries * heads * kLatentDim : 0;
}
KF_HD constexpr int64_t part_lse_floats(int64_t splits, int64_t queries, int64_t heads) {
  return splits > 1 ? splits * queries * heads : 0;
}

// Static shared bytes of a decode config (DecodeSmem in decode.h, which checks this
// bound): the KV stages, the d-slices' partial scores, P, per-row softmax state, and
// two windows of 256 KV row indices.
KF_HD constexpr int64_t decode_smem_bytes(int block_h, int block_k, int warps, int stages) {
  return (int64_t)stages * block_k * (kHeadDim + 8) * 2 + (int64_t)warps * 16 * block_k * 4 +
         (int64_t)block_h * (block_k + 8) * 2 + (int64_t)block_h * 3 * 4 + (int64_t)stages * block_k * 4 +
         2 * 256 * 4 + 16;
}

struct Grid {
  uint32_t x, y, z;
};
inline Grid decode_grid(int64_t heads, int64_t queries, int block_h, int splits) {
  return {static_cast<uint32_t>(heads / block_h), static_cast<uint32_t>(queries), static_cast<uint32_t>(splits)};
}
inline Grid combine_grid(int64_t queries, int64_t heads) {
  return {static_cast<uint32_t>((queries * heads + kCombineRows - 1) / kCombineRows), 1, 1};
}

}  // namespace mla
}  // namespace kf
