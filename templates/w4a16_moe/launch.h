// Launch geometry and buffer sizes of the MoE kernels: shared by the templates, the
// generator, the tuner and the runtime, so a kernel is always launched and fed the way
// its template expects.
//   moe_align   : grid (align_blocks(zero_count), 1, 1), kAlignThreads threads: block 0
//                 sorts, the others zero the optional buffer (one block when there is none)
//   gemm decode : grid (N / block_n, split_k, capacity / block_m)   (w4a16_linear decode with M = capacity)
//   gemm prefill: grid (N / block_n, capacity / block_m, split_k)   (w4a16_linear prefill likewise)
//   silu_mul, sum: grid (ceil(rows * n / 8 / kMoeEltThreads), 1, 1), kMoeEltThreads threads
#pragma once
#include <stdint.h>

#include "kf_mma_layouts.h"  // KF_HD
#include "w4a16_linear/launch.h"

namespace kf {
namespace moe {

constexpr int kAlignThreads = 1024;
constexpr int kMaxExperts = 1024;  // moe_align keeps one counter per expert in shared memory
constexpr int kEltThreads = 256;

// moe_align's optional zeroing (args.h): 16-bit values per zeroing block, 16 bytes per
// thread and step (4 steps).
constexpr int64_t kAlignZeroElems = int64_t{kAlignThreads} * 8 * 4;
KF_HD constexpr int64_t align_blocks(int64_t zero_count) {
  return 1 + (zero_count > 0 ? (zero_count + kAlignZeroElems - 1) / kAlignZeroElems : 0);
}

// Entries of sorted_ids in the worst case: every slot, plus up to block_m - 1 padding
// for each expert that receives any (at most min(E, slots) of them), in whole blocks.
KF_HD constexpr int64_t sorted_capacity(int64_t t, int64_t top_k, int64_t experts, int64_t block_m) {
  const int64_t slots = t * top_k;
  const int64_t hit = slots < experts ? slots : experts;
  const int64_t cap = slots + hit * (block_m - 1);
  return (cap + block_m - 1) / block_m * block_m;
}

inline w4a16::Grid gemm_grid(bool prefill, int64_t n, int64_t capacity, int block_m, int block_n, int split_k) {
  return w4a16::launch_grid(prefill ? w4a16::Kind::prefill : w4a16::Kind::decode, n, capacity, block_m, block_n,
                            split_k);
}

// Split-K scratch of a GEMM launch (0 when the kernel does not split K).
inline int64_t gemm_workspace_floats(int split_k, int64_t n, int64_t capacity) {
  return w4a16::workspace_floats(split_k, n, capacity);
}
inline int64_t gemm_counter_ints(int split_k, int block_m, int block_n, int64_t n, int64_t capacity) {
  return w4a16::counter_ints(split_k, block_m, block_n, n, capacity);
}

// Elementwise kernels: one thread per 8 outputs.
inline uint32_t elementwise_blocks(int64_t rows, int64_t n) {
  return static_cast<uint32_t>((rows * n / 8 + kEltThreads - 1) / kEltThreads);
}

}  // namespace moe
}  // namespace kf
