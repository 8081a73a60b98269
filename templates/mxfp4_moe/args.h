/* Kernel arguments of the mxfp4_moe family (plain C: the runtime and engines build this
 * struct and pass it by value as the kernel's only parameter).
 *
 * A gpt-oss style mixture-of-experts layer with MXFP4 expert weights over T tokens,
 * each routed to top_k of E experts; routing goes through the w4a16_moe helpers:
 *   moe_align       topk_ids -> sorted_ids, expert_ids, num_padded (w4a16_moe/args.h)
 *   mxfp4_moe_gemm1 h[s, :]  = x[s / top_k, :] . W1[e]^T + b1[e]     (gate_up, N = 2 I)
 *                   or, fused (swiglu configs), h[s, i] = swiglu(gate_i, up_i) with the
 *                   columns interleaved as gpt-oss stores them: gate_i = column 2i,
 *                   up_i = column 2i + 1 (output N / 2 columns)
 *   mxfp4_moe_gemm2 h2[s, :] = topk_weights[s] * (h[s, :] . W2[e]^T + b2[e])   (down)
 *   moe_sum         y[t, :]  = sum_j h2[t * top_k + j, :]                       (w4a16_moe)
 * swiglu(g, u) = (clamp(u, -limit, limit) + 1) * g' * sigmoid(alpha * g'), g' = min(g, limit).
 *
 * Weights in kforge's MXFP4 layout (kf_repack_mxfp4_scales makes it from a checkpoint):
 *   weight [E, N, K/2] bytes: two e2m1 codes per byte along K, the low nibble first
 *                             (the checkpoint's own order, unchanged);
 *   scales [E, K/32, N] e8m0: one exponent per 32 consecutive k, stored k-block-major so
 *                             a k-tile's scales of consecutive columns are contiguous
 *                             (checkpoints store [E, N, K/32]);
 *   bias   [E, N] fp32, or null.
 * W[e][n, k] = e2m1(code) * 2^(scale - 127). Activations and outputs are bf16.
 */
#ifndef KF_MXFP4_MOE_ARGS_H
#define KF_MXFP4_MOE_ARGS_H

#include <stdint.h>

typedef struct kf_mxfp4_moe_gemm_args {
  const void* x;             /* gemm1: [T, K] tokens; gemm2: [T * top_k, K], one row per slot */
  const uint8_t* weight;     /* [E, N, K/2] */
  const uint8_t* scales;     /* [E, K/32, N] */
  const float* bias;         /* [E, N] or null */
  const float* topk_weights; /* [T * top_k]: gemm2 scales each slot's row by it */
  const int32_t* sorted_ids; /* from moe_align with this kernel's block_m */
  const int32_t* expert_ids;
  const int32_t* num_padded;
  void* y;                   /* [T * top_k, N] (gemm1 swiglu: N / 2) */
  int t, top_k, experts;
  int n, k;                  /* checked by the runtime against the kernel's shape */
  float swiglu_alpha, swiglu_limit;
} kf_mxfp4_moe_gemm_args;

#endif
