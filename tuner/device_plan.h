// Host-side arithmetic of a device measurer, kept apart from any GPU API so it is
// tested on the CPU: buffer sizes per shape, the L2 flush buffer, and the statistics of
// a series of timed runs.
#pragma once
#include <cstdint>
#include <vector>

#include "measurer.h"

namespace kf {

// Rows of y past the largest M that stay poisoned: a kernel writing past row M lands
// there (and is caught) instead of in another buffer. 128 = the largest block_m, so a
// last tile written whole never reaches past the guard.
constexpr int64_t kGuardRows = 128;

// Element counts of the device buffers a shape needs: the max over its kernels at the
// largest M each runs at (split-K workspace and counters per args.h).
struct ShapeBuffers {
  int64_t max_m = 0;
  int64_t x_elems = 0;            // 16-bit, [max_m, K]
  int64_t qweight_words = 0;      // int32, [K/8, N]
  int64_t scales_elems = 0;       // 16-bit, [K/G, N]
  int64_t qzeros_words = 0;       // int32, [K/G, N/8] (asymmetric only)
  int64_t y_elems = 0;            // 16-bit, [max_m + kGuardRows, N]
  int64_t workspace_floats = 0;
  int64_t counter_ints = 0;
};
ShapeBuffers plan_shape_buffers(const LinearShape& shape, const std::vector<PlannedKernel>& kernels);

// The same for a MoE shape (max_m = the largest T any kernel runs at): sizes from
// w4a16_moe/launch.h's formulas for the worst case of every kernel's block_m.
struct MoeShapeBuffers {
  int64_t max_t = 0;
  int64_t x_elems = 0;           // 16-bit, gemm1 [max_t, K], gemm2 [max_t * top_k, K]
  int64_t qweight_words = 0;     // int32, [E, K/8, N]
  int64_t scales_elems = 0;      // 16-bit, [E, K/G, N]
  int64_t qzeros_words = 0;      // int32, [E, K/G, N/8] (asymmetric only)
  int64_t slots = 0;             // max_t * top_k: topk_ids and topk_weights
  int64_t sorted_ids = 0;        // max sorted_capacity
  int64_t expert_ids = 0;        // max sorted_capacity / block_m
  int64_t y_elems = 0;           // 16-bit, [slots + kGuardRows, N]
  int64_t workspace_floats = 0;
  int64_t counter_ints = 0;
};
MoeShapeBuffers plan_moe_buffers(const MoeShape& shape, const std::vector<PlannedKernel>& kernels);

// The same for a sparse_mla_decode shape (max_q = the largest Q any kernel runs at; the
// problem's sizes are mla_problem.h's).
struct MlaShapeBuffers {
  int64_t max_q = 0;
  int64_t q_elems = 0;          // 16-bit, [max_q, H, 576]
  int64_t kv_rows = 0;          // [kv_rows, 576] 16-bit: mla_kv_rows_bound(max_q)
  int64_t index_ints = 0;       // [max_q, topk]
  int64_t extra_ints = 0;       // [max_q] for extra_start and for extra_count (0 without extras)
  int64_t o_elems = 0;          // 16-bit, [max_q + 1, H, 512]: one poisoned guard query
  int64_t lse_floats = 0;       // [max_q + 1, H]
  int64_t part_o_floats = 0;    // split kernels' partials at their largest Q (sparse_mla/launch.h)
  int64_t part_lse_floats = 0;
};
MlaShapeBuffers plan_mla_buffers(const MlaShape& shape, const std::vector<PlannedKernel>& kernels);

// The same for an mxfp4_moe shape (max_t = the largest T any kernel runs at; sorted
// sizes from w4a16_moe/launch.h's capacity for the worst case of every kernel's block_m).
struct Mxfp4ShapeBuffers {
  int64_t max_t = 0;
  int64_t x_elems = 0;       // bf16, gemm1 [max_t, K], gemm2 [max_t * top_k, K]
  int64_t weight_bytes = 0;  // [E, N, K/2]
  int64_t scale_bytes = 0;   // [E, K/32, N]
  int64_t bias_floats = 0;   // [E, N]
  int64_t slots = 0;         // max_t * top_k: topk_ids and topk_weights
  int64_t sorted_ids = 0;    // max sorted_capacity
  int64_t expert_ids = 0;    // max sorted_capacity / block_m
  int64_t y_elems = 0;       // bf16, [slots + kGuardRows, N] (N / 2 with the SwiGLU epilogue)
};
Mxfp4ShapeBuffers plan_mxfp4_buffers(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels);

// Bytes of the buffer read before each cold run: at least 4x the L2 (reads evict without
// leaving dirty lines) and at least 64 MiB (L2 sizes under-report victim caches), a
// multiple of 1 MiB (stream_read needs a multiple of 16).
int64_t flush_bytes(int64_t l2_bytes);

struct TimingStats {
  double median = 0, min = 0;
};
// Median (mean of the two middle values for an even count) and minimum; samples must
// not be empty.
TimingStats timing_stats(std::vector<double> samples);

}  // namespace kf
