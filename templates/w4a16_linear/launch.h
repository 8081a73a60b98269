// Launch geometry of every w4a16_linear kind: shared by the generator, the tuner and the
// runtime, so a kernel is always launched the way its template expects.
//   decode : grid (N / block_n, split_k, ceil(M / block_m))
//   prefill: grid (N / block_n, ceil(M / block_m), split_k); a stream-K wgmma config
//            (_stkB): grid (B), fewer on a part with fewer SMs (wgmma_tiling.h)
//   generic: grid (ceil(N / 128), 1, ceil(M / 4)), 128 threads (see generic.h)
#pragma once
#include <stdint.h>

#include "w4a16_linear/wgmma_tiling.h"  // the stream-K scratch

namespace kf {
namespace w4a16 {

enum class Kind { decode, prefill, generic };

struct Grid {
  uint32_t x, y, z;
};

inline Grid launch_grid(Kind kind, int64_t n, int64_t m, int block_m, int block_n, int split_k,
                        int stream_blocks = 0) {
  if (kind == Kind::prefill && stream_blocks > 0) return {static_cast<uint32_t>(stream_blocks), 1, 1};
  const auto m_blocks = static_cast<uint32_t>((m + block_m - 1) / block_m);
  switch (kind) {
    case Kind::decode:
      return {static_cast<uint32_t>(n / block_n), static_cast<uint32_t>(split_k), m_blocks};
    case Kind::prefill:
      return {static_cast<uint32_t>(n / block_n), m_blocks, static_cast<uint32_t>(split_k)};
    case Kind::generic:
    default:
      return {static_cast<uint32_t>((n + 127) / 128), 1, static_cast<uint32_t>((m + 3) / 4)};
  }
}

// Split-K scratch: floats and zeroed counters a launch for M rows needs (0 if none).
inline int64_t workspace_floats(int split_k, int64_t n, int64_t m) { return split_k > 1 ? split_k * m * n : 0; }
inline int64_t counter_ints(int split_k, int block_m, int block_n, int64_t n, int64_t m) {
  return split_k > 1 ? (n / block_n) * ((m + block_m - 1) / block_m) : 0;
}

// Whether a config's partial sums meet in memory, through args.workspace and
// args.counters: a stream-K grid, or split-K over blocks that do not sum on chip (the
// skinny and wgmma kinds sum a split tile within a thread-block cluster).
inline bool exchanges_in_memory(int split_k, bool split_on_chip, int stream_blocks) {
  return stream_blocks > 0 || (split_k > 1 && !split_on_chip);
}

// The scratch of a config whose partial sums meet in memory (exchanges_in_memory): the
// split-K slices and counters above, or for a stream-K wgmma config (_stkB) B tiles
// (of bf16 pairs in bf16 layers) and B flags, whatever M.
inline int64_t exchange_floats(int split_k, int block_m, int block_n, int stream_blocks, int64_t n, int64_t m,
                               bool bf16) {
  if (stream_blocks > 0) return wgmma::stream_workspace_floats(stream_blocks, block_m, block_n, bf16);
  return workspace_floats(split_k, n, m);
}
inline int64_t exchange_counters(int split_k, int block_m, int block_n, int stream_blocks, int64_t n, int64_t m) {
  if (stream_blocks > 0) return wgmma::stream_counter_ints(stream_blocks);
  return counter_ints(split_k, block_m, block_n, n, m);
}

}  // namespace w4a16
}  // namespace kf
