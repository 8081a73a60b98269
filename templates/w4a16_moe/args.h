/* Kernel arguments of the MoE kernels (plain C: the runtime and engines build these
 * structs and pass each by value as its kernel's only parameter).
 *
 * A mixture-of-experts layer over T tokens, each routed to top_k of E experts:
 *   routed slot s = t * top_k + j  (token t, its j-th expert topk_ids[t, j])
 *   moe_align      topk_ids -> sorted_ids, expert_ids, num_padded
 *   w4a16_moe_gemm1  h1[s, :]  = x[t, :] . W1[e]^T             (gate_up, N = 2 I)
 *   moe_silu_mul     h[s, i]   = silu(h1[s, i]) * h1[s, I + i]
 *   w4a16_moe_gemm2  h2[s, :]  = topk_weights[s] * (h[s, :] . W2[e]^T)   (down)
 *   moe_sum          y[t, :]   = sum_j h2[t * top_k + j, :]  over the j with an expert in [0, E)
 * A gemm1 with the fused SiLU-and-mul epilogue (config suffix _silu) writes h itself,
 * [T * top_k, I] (N = 2 I is still its GEMM's N), and moe_silu_mul is not run.
 * A gemm2 that reduces over top_k in its epilogue (config suffix _red) adds each slot's
 * scaled row into its token's row, y[t, :] += topk_weights[s] * (h[s, :] . W2[e]^T), with
 * packed 16-bit atomics (w4a16_moe/atomic_add.h), and moe_sum is not run; y [T, H] must
 * be zero first, which the layer's moe_align does (its zero / zero_count). The sum is
 * rounded to the 16-bit type after every add and its order is not fixed.
 * Expert ids outside [0, E) (e.g. -1 for an expert on another rank) route nowhere: align
 * drops the slot and moe_sum skips it.
 *
 * sorted_ids lists each expert's slots together, experts in order, each run padded to a
 * multiple of block_m with the out-of-range id T * top_k; expert_ids[b] is the expert of
 * sorted_ids[b * block_m .. (b + 1) * block_m); num_padded[0] is how many entries are in
 * use. Buffers are sized for the worst case by the formulas of w4a16_moe/launch.h, and
 * the GEMMs launch that worst-case grid: blocks past num_padded return at once, so no
 * host ever reads num_padded (no sync, graph-capturable).
 *
 * Expert weights: every expert in the w4a16_linear GPTQ layout (see
 * w4a16_linear/args.h), stacked: qweight int32 [E, K/8, N], scales [E, K/G, N], qzeros
 * int32 [E, K/G, N/8] (asymmetric only).
 */
#ifndef KF_W4A16_MOE_ARGS_H
#define KF_W4A16_MOE_ARGS_H

#include <stdint.h>

typedef struct kf_moe_align_args {
  const int32_t* topk_ids; /* [T, top_k] */
  int32_t* sorted_ids;     /* [kf::moe::sorted_capacity(T, top_k, E, block_m)] */
  int32_t* expert_ids;     /* [sorted_capacity / block_m] */
  int32_t* num_padded;     /* [1] */
  int t, top_k, experts, block_m;
  /* Optional: zero_count 16-bit values at `zero` set to 0 by the same launch (a reducing
   * gemm2's y, [T, H]), by blocks 1 .. of its grid (w4a16_moe/launch.h's align_blocks);
   * NULL = nothing (grid of one block). zero 16-byte aligned, zero_count % 8 == 0. */
  void* zero;
  int64_t zero_count;
} kf_moe_align_args;

typedef struct kf_moe_gemm_args {
  const void* x;             /* gemm1: [T, K] tokens; gemm2: [T * top_k, K], one row per slot */
  const void* qweight;       /* [E, K/8, N] int32 */
  const void* scales;        /* [E, K/G, N] 16-bit */
  const void* qzeros;        /* [E, K/G, N/8] int32, asymmetric kernels only */
  const float* topk_weights; /* [T * top_k]: gemm2 scales each slot's row by it; gemm1 ignores it */
  const int32_t* sorted_ids; /* from moe_align with this kernel's block_m */
  const int32_t* expert_ids;
  const int32_t* num_padded;
  void* y;                   /* [T * top_k, N], one row per routed slot; fused SiLU gemm1: N / 2;
                                reducing gemm2 (_red): [T, N], zero before the launch, added into */
  float* workspace;          /* split-K kernels: see w4a16_moe/launch.h */
  int* counters;
  int t, top_k, experts;
  int n, k, group;           /* checked by the runtime against the kernel's shape */
} kf_moe_gemm_args;

/* h[s, i] = silu(h1[s, i]) * h1[s, n + i] for s < rows, i < n (h1 has 2n columns). */
typedef struct kf_moe_silu_mul_args {
  const void* x; /* [rows, 2 n] */
  void* y;       /* [rows, n] */
  int rows, n;
} kf_moe_silu_mul_args;

/* y[t, :] = sum over j < top_k with topk_ids[t, j] in [0, E) of x[t * top_k + j, :],
 * summed in fp32 in j order (deterministic); a token with no such j gets zeros. */
typedef struct kf_moe_sum_args {
  const void* x;           /* [T * top_k, n] */
  const int32_t* topk_ids; /* [T, top_k] */
  void* y;                 /* [T, n] */
  int t, top_k, experts, n;
} kf_moe_sum_args;

#endif
