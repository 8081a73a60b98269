// The MoE layer's two elementwise steps (args.h), one thread per 8 outputs (16-byte
// loads and stores; n % 8 == 0), run-time sizes so one kernel per dtype serves every
// shape:
//   moe_silu_mul: h[s, i] = silu(h1[s, i]) * h1[s, n + i]
//   moe_sum:      y[t, i] = sum_j h2[t * top_k + j, i] over the j routed to an expert in
//                 [0, E), in j order, in fp32
#pragma once
#include "kf_portability.h"
#include "w4a16_linear/silu.h"
#include "w4a16_moe/args.h"

namespace kf {

template <bool BF16, int THREADS>
KF_INLINE void moe_silu_mul(const kf_moe_silu_mul_args& a) {
  using T = Act16<BF16>;
  const int64_t v = (int64_t)block_x() * THREADS + thread_id();  // 8-wide vector of y
  const int vecs_per_row = a.n / 8;
  if (v >= (int64_t)a.rows * vecs_per_row) return;
  const int64_t row = v / vecs_per_row;
  const int col = (int)(v % vecs_per_row) * 8;
  const uint16_t* x = static_cast<const uint16_t*>(a.x) + row * 2 * a.n + col;
  const u32x4 g = load16(x), u = load16(x + a.n);
  const uint32_t gw[4] = {g.x, g.y, g.z, g.w}, uw[4] = {u.x, u.y, u.z, u.w};
  uint32_t out[4];
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    float h[2];
#pragma unroll
    for (int h2 = 0; h2 < 2; ++h2) {
      const float gf = T::to_f32(gw[p] >> (16 * h2) & 0xffffu);
      const float uf = T::to_f32(uw[p] >> (16 * h2) & 0xffffu);
      h[h2] = w4a16::silu_mul(gf, uf);  // as gemm1's fused epilogue computes it
    }
    out[p] = T::pack2(h[0], h[1]);
  }
  store16(static_cast<uint16_t*>(a.y) + row * a.n + col, u32x4{out[0], out[1], out[2], out[3]});
}

template <bool BF16, int THREADS>
KF_INLINE void moe_sum(const kf_moe_sum_args& a) {
  using T = Act16<BF16>;
  const int64_t v = (int64_t)block_x() * THREADS + thread_id();
  const int vecs_per_row = a.n / 8;
  if (v >= (int64_t)a.t * vecs_per_row) return;
  const int64_t t = v / vecs_per_row;
  const int col = (int)(v % vecs_per_row) * 8;
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  // kChunk slots at a time: their ids, then their rows, each batch of loads in flight
  // together (a plain loop would wait for every id and row in turn).
  constexpr int kChunk = 8;
  for (int j0 = 0; j0 < a.top_k; j0 += kChunk) {
    bool routed[kChunk];
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      const int e = j0 + c < a.top_k ? a.topk_ids[t * a.top_k + j0 + c] : -1;
      routed[c] = e >= 0 && e < a.experts;
    }
    u32x4 x[kChunk];
#pragma unroll
    for (int c = 0; c < kChunk; ++c)
      x[c] = routed[c] ? load16(static_cast<const uint16_t*>(a.x) + (t * a.top_k + j0 + c) * a.n + col)
                       : u32x4{0, 0, 0, 0};
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      const uint32_t xw[4] = {x[c].x, x[c].y, x[c].z, x[c].w};
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += T::to_f32(xw[i / 2] >> (16 * (i % 2)) & 0xffffu);
    }
  }
  store16(static_cast<uint16_t*>(a.y) + t * a.n + col,
          u32x4{T::pack2(acc[0], acc[1]), T::pack2(acc[2], acc[3]), T::pack2(acc[4], acc[5]), T::pack2(acc[6], acc[7])});
}

}  // namespace kf
