/* Kernel arguments of every w4a16_linear kernel (plain C: the runtime and engines
 * build this struct and pass it by value as the kernel's only parameter).
 *
 *   y[m, n] = sum_k x[m, k] * (q[n, k] - z[n, k / G]) * s[n, k / G]
 *
 * GPTQ layout, read as stored in checkpoints (no repack):
 *   qweight  int32 [K/8, N]   eight 4-bit q along k, k % 8 == 0 in the low nibble
 *   scales   16-bit [K/G, N]  same type as x and y (fp16 or bf16)
 *   qzeros   int32 [K/G, N/8] eight 4-bit zero points along n (asymmetric kernels
 *                             only; symmetric "uint4b8" kernels use z = 8 and ignore it)
 *   x [M, K], y [M, N]        row-major 16-bit
 * Split-K kernels (sk > 1) also need `workspace` (split_k * M * N floats) and
 * `counters` ((N / block_n) * ceil(M / block_m) ints, zeroed once at allocation; every
 * kernel leaves them zero again, so one buffer serves all launches and graph replays);
 * stream-K kernels (_stkB) need B * block_m * block_n floats and B ints
 * (w4a16_linear/wgmma_tiling.h). Launches running at once need buffers of their own.
 * The generic kernel (generic.h) takes N, K and the group size at run time and serves
 * any shape with N % 8 == 0, K % 32 == 0 and the group size a multiple of 32.
 */
#ifndef KF_W4A16_LINEAR_ARGS_H
#define KF_W4A16_LINEAR_ARGS_H

typedef struct kf_linear_args {
  const void* x;
  const void* qweight;
  const void* scales;
  const void* qzeros;
  void* y;
  float* workspace;
  int* counters;
  int m;      /* rows of x and y */
  int n;      /* N, K and the group size (K for per-channel): read by the generic */
  int k;      /* kernel; kernels specialised for one shape ignore them */
  int group;
} kf_linear_args;

#endif
