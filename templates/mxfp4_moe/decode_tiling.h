// Rules of the mxfp4_moe decode kind (gemv.h) as constexpr functions: the template
// static_asserts them, the generator enumerates with them and the runtime checks pack
// rows with them. The grid is gemm.h's (tiling.h gemm_grid).
#pragma once
#include "kf_mma_layouts.h"  // KF_HD

namespace kf {
namespace mxfp4 {

// Split-K (sm_90a): split_k blocks of one thread-block cluster share a tile's K, each
// taking K / 32 / split_k whole chunks; block 0 of the cluster sums the partial sums in
// rank order from the others' shared memory (distributed shared memory), so no workspace
// or counter is needed and the sum is the same on every run. Cluster sizes up to 8 are
// portable; the chunk count must divide evenly.
constexpr int kMaxDecodeSplitK = 8;
KF_HD constexpr bool decode_split_valid(int k, int split_k) {
  return split_k >= 1 && split_k <= kMaxDecodeSplitK && (k / 32) % split_k == 0;
}

// Shared memory: the block's x rows (16-bit, its K slice) and their slot ids; with split-K
// also its partial sums (block_m x block_n floats).
KF_HD constexpr int decode_smem_bytes(int block_m, int block_n, int k, int split_k) {
  return block_m * (k / split_k) * 2 + block_m * 4 + 16 + (split_k > 1 ? block_m * block_n * 4 : 0);
}

// block_m up to 8 slots; block_n weight rows per block, each streamed by TK = threads /
// block_n neighbouring threads (a power of two, at most half a wave so a SwiGLU pair's
// two row groups share a wave); N a multiple of block_n (even, for the pairs), K of 32.
KF_HD constexpr bool decode_config_valid(int n, int k, bool swiglu, int block_m, int block_n, int warps, int wave) {
  const int threads = warps * wave;
  if (block_m < 1 || block_m > 8 || block_n < 2 || block_n % 2 != 0 || threads % block_n != 0) return false;
  const int tk = threads / block_n;
  if ((tk & (tk - 1)) != 0 || 2 * tk > wave) return false;
  if (n % block_n != 0 || k % 32 != 0 || (swiglu && n % 2 != 0)) return false;
  return true;
}

}  // namespace mxfp4
}  // namespace kf
