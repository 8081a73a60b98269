// Which configs the w4a16_linear `skinny` kind (tensor-core decode for M <= 16,
// templates/w4a16_linear/skinny.h) can run. The generator enumerates with this rule;
// the template states the same rule in a static_assert of its own, so a config the
// generator emits always instantiates.
//
// A block is one 16-row matrix-instruction M tile (block_m 16) by block_n columns; K
// is split over split_k blocks and, inside a block, over its warps, each warp taking
// one contiguous range of kw = K / split_k / warps and walking it in 32-k spans
// (block_k 32), with a register ring of `stages` spans in flight.
#pragma once

namespace kf {
namespace skinny_rules {

constexpr int kBlockM = 16;  // rows per block: the M of one mma.sync tile
constexpr int kBlockK = 32;  // k per span a warp takes at a time

// n, k: the layer; group: quantisation group along K (k for per-channel); block_n:
// columns per block; warps per block; split_k: blocks sharing one K range; stages:
// register ring depth in 32-k spans (1, 2 or 4).
constexpr bool config_valid(int n, int k, int group, int block_n, int warps, int split_k, int stages) {
  if (n <= 0 || k <= 0 || group <= 0 || block_n <= 0 || warps <= 0 || split_k < 1) return false;
  if (block_n % 32 != 0 || n % block_n != 0) return false;
  if (k % split_k != 0 || (k / split_k) % warps != 0) return false;
  const int kw = k / split_k / warps;  // one warp's contiguous K range
  // Whole groups per warp, so a warp's scales (and zeros) never straddle another's;
  // per-channel (group == k) therefore needs kw == k: one warp, no split.
  if (group % kBlockK != 0 || kw < group || kw % group != 0) return false;
  if (stages != 1 && stages != 2 && stages != 4) return false;
  // A ring deeper than one span only where a warp walks more than one.
  if (stages > 1 && kw / kBlockK <= 1) return false;
  return true;
}

}  // namespace skinny_rules
}  // namespace kf
