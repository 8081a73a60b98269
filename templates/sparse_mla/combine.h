// sparse_mla combine kernel (args.h): merges the split decode kernel's partials. One
// group of kCombineRowThreads threads per (query, head) row, 16 output dims each; the
// split count is a run-time argument, so one kernel per dtype serves every config.
#pragma once
#include "kf_portability.h"
#include "sparse_mla/args.h"
#include "sparse_mla/launch.h"

namespace kf {
namespace mla {

#if KF_AMDGPU
KF_INLINE float exp_accurate(float x) { return __builtin_expf(x); }
KF_INLINE float log_accurate(float x) { return __builtin_logf(x); }
#else
KF_INLINE float exp_accurate(float x) { return expf(x); }
KF_INLINE float log_accurate(float x) { return logf(x); }
#endif

template <bool BF16>
KF_INLINE void sparse_mla_combine(const kf_mla_combine_args& a) {
  using Act = Act16<BF16>;
  const int64_t row = (int64_t)block_x() * kCombineRows + thread_id() / kCombineRowThreads;
  if (row >= (int64_t)a.queries * a.heads) return;
  const int d0 = (thread_id() % kCombineRowThreads) * 16;
  const int64_t plane = (int64_t)a.queries * a.heads;  // rows per split
  // Splits are taken kBatch at a time with every load of a batch issued before any is
  // used: one partial after another waited a full memory round trip each (a 32-split
  // merge took longer than the split decode it follows).
  constexpr int kBatch = 8;
  float mx = neg_inf();
  for (int s0 = 0; s0 < a.splits; s0 += kBatch) {
    float l[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) l[b] = s0 + b < a.splits ? a.part_lse[(s0 + b) * plane + row] : neg_inf();
#pragma unroll
    for (int b = 0; b < kBatch; ++b) mx = mx > l[b] ? mx : l[b];
  }
  float acc[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) acc[i] = 0.f;
  float total = 0.f;
  if (mx != neg_inf()) {
    for (int s0 = 0; s0 < a.splits; s0 += kBatch) {
      float l[kBatch];
      u32x4 v[kBatch][4];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const bool real = s0 + b < a.splits;
        l[b] = real ? a.part_lse[(s0 + b) * plane + row] : neg_inf();
        const float* po = a.part_o + ((s0 + b) * plane + row) * kLatentDim + d0;
#pragma unroll
        for (int i = 0; i < 4; ++i) v[b][i] = real ? load16(po + 4 * i) : u32x4{0, 0, 0, 0};
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        // An empty part (lse = -inf) weighs 0; its partial output is written as zeros.
        const float w = exp_accurate(l[b] - mx);
        total += w;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          acc[4 * i] += w * bits_as_float(v[b][i].x);
          acc[4 * i + 1] += w * bits_as_float(v[b][i].y);
          acc[4 * i + 2] += w * bits_as_float(v[b][i].z);
          acc[4 * i + 3] += w * bits_as_float(v[b][i].w);
        }
      }
    }
  }
  const float inv = total > 0.f ? 1.f / total : 0.f;
  uint32_t packed[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) packed[i] = Act::pack2(acc[2 * i] * inv, acc[2 * i + 1] * inv);
  uint16_t* o = static_cast<uint16_t*>(a.o) + row * kLatentDim + d0;
  store16(o, u32x4{packed[0], packed[1], packed[2], packed[3]});
  store16(o + 8, u32x4{packed[4], packed[5], packed[6], packed[7]});
  if (a.lse && d0 == 0) a.lse[row] = total > 0.f ? mx + log_accurate(total) : neg_inf();
}

}  // namespace mla
}  // namespace kf
