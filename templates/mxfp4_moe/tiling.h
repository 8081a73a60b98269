// Tiling rules and launch geometry of the mxfp4_moe GEMM (gemm.h) as constexpr
// functions: the template static_asserts them, the generator enumerates with them, the
// runtime and tuner launch with them.
//   grid (N / block_n, sorted_capacity / block_m, 1), warps * wave threads
#pragma once
#include <stdint.h>

#include "kf_mma_layouts.h"  // KF_HD

namespace kf {
namespace mxfp4 {

constexpr int kBlock = 32;   // values per e8m0 scale
constexpr int kSmemPad = 8;  // 16-bit elements of padding per shared row (bank spread)

// Warps tile block_m x block_n in 16x16 atoms: the split over M and N closest to square
// warp tiles; 0 = none.
KF_HD constexpr int warps_m(int block_m, int block_n, int warps) {
  int best = 0, best_score = 1 << 30;
  for (int wm = 1; wm <= warps; ++wm) {
    if (warps % wm != 0) continue;
    const int wn = warps / wm;
    if (block_m % (16 * wm) != 0 || block_n % (16 * wn) != 0) continue;
    const int dm = block_m / wm, dn = block_n / wn;
    const int score = dm > dn ? dm - dn : dn - dm;
    if (score < best_score) {
      best_score = score;
      best = wm;
    }
  }
  return best;
}

// One pipeline stage: the gathered x rows (16-bit), the raw weight bytes of block_n
// rows, and the k-tile's scale rows (block_k / 32 x block_n bytes).
KF_HD constexpr int stage_bytes(int block_m, int block_n, int block_k) {
  return block_m * (block_k + kSmemPad) * 2 + block_n * block_k / 2 + block_k / kBlock * block_n;
}
// The stages, the dequantised B tile (block_n x (block_k + pad) 16-bit) and the row map.
KF_HD constexpr int main_loop_bytes(int block_m, int block_n, int block_k, int stages) {
  return stages * stage_bytes(block_m, block_n, block_k) + block_n * (block_k + kSmemPad) * 2;
}
// The epilogue stages block_m / subtiles rows of fp32 accumulators at a time in the same
// shared memory (rows padded by 4 floats).
KF_HD constexpr int epilogue_bytes(int block_m, int block_n, int subtiles) {
  return block_m / subtiles * (block_n + 4) * 4;
}
KF_HD constexpr int smem_bytes(int block_m, int block_n, int block_k, int stages, int subtiles) {
  const int a = main_loop_bytes(block_m, block_n, block_k, stages), b = epilogue_bytes(block_m, block_n, subtiles);
  return (a > b ? a : b) + block_m * 4 + 16;
}

KF_HD constexpr bool config_valid(int n, int k, bool swiglu, int block_m, int block_n, int block_k, int warps,
                                  int stages, int subtiles) {
  if (block_m % 16 != 0 || block_n % 16 != 0 || block_k % kBlock != 0 || stages < 1 || subtiles < 1) return false;
  if (n % block_n != 0 || k % block_k != 0 || (swiglu && n % 2 != 0)) return false;
  if (block_m % subtiles != 0 || (block_m / subtiles) % 16 != 0) return false;
  // 16-byte copies: a weight row's k-tile (block_k / 2 bytes) and a scale row's block_n.
  if ((block_k / 2) % 16 != 0 || block_n % 16 != 0) return false;
  return warps_m(block_m, block_n, warps) != 0;
}

struct Grid {
  uint32_t x, y, z;
};
inline Grid gemm_grid(int64_t n, int64_t capacity, int block_m, int block_n) {
  return {static_cast<uint32_t>(n / block_n), static_cast<uint32_t>(capacity / block_m), 1};
}

}  // namespace mxfp4
}  // namespace kf
