/* Kernel arguments of the sparse_mla family (plain C: the runtime and engines build these
 * structs and pass each by value as its kernel's only parameter).
 *
 * DeepSeek-V3.2-style sparse attention decode over a latent KV cache shared by all heads:
 *   q       [Q, H, 576] 16-bit (512 latent + 64 rope dims)
 *   kv      [S, 576]    16-bit, one row per cached token; v = its first 512 dims
 *   indices [Q, topk]   int32, the KV rows query q attends; -1 = unused slot
 *   extras  optional: query q also attends rows extra_start[q] .. + extra_count[q]
 *           (e.g. a sliding window), after its topk slots
 *   o[q, h] = sum_j softmax_j(scale * q[q, h] . kv[j]) * kv[j, :512]   [Q, H, 512] 16-bit
 *   lse[q, h] = log(sum_j exp(scale * q[q, h] . kv[j]))                 [Q, H] fp32, optional
 * A row listed twice counts twice. A slot whose row is outside [0, S) reads nothing and
 * counts as unused (the kernels stay in bounds whatever the indices hold; validating them
 * is the caller's job, off the hot path). A query with no key gets o = 0, lse = -inf.
 *
 * Split-KV kernels (splits > 1) cut each query's slot list (topk slots then its extras)
 * into `splits` contiguous parts (sparse_mla/launch.h), write each part's normalised
 * output and lse to the fp32 scratch, and sparse_mla_combine merges them into o and lse.
 */
#ifndef KF_SPARSE_MLA_ARGS_H
#define KF_SPARSE_MLA_ARGS_H

#include <stdint.h>

typedef struct kf_mla_decode_args {
  const void* q;               /* [Q, H, 576] */
  const void* kv;              /* [S, 576] */
  const int32_t* indices;      /* [Q, topk] */
  const int32_t* extra_start;  /* [Q] or null (then extra_count is null too) */
  const int32_t* extra_count;  /* [Q] or null */
  void* o;                     /* [Q, H, 512]: unsplit kernels write it */
  float* lse;                  /* [Q, H] or null: unsplit kernels write it when given */
  float* part_o;               /* [splits, Q, H, 512]: split kernels write it */
  float* part_lse;             /* [splits, Q, H] */
  int queries, kv_rows;        /* Q, S */
  int heads, topk;             /* checked by the runtime against the kernel's shape */
  float softmax_scale;
} kf_mla_decode_args;

/* o, lse from the split kernel's partials: lse = log(sum_i exp(lse_i)),
 * o = sum_i exp(lse_i - lse) * o_i; every part empty -> o = 0, lse = -inf. */
typedef struct kf_mla_combine_args {
  const float* part_o;   /* [splits, Q, H, 512] */
  const float* part_lse; /* [splits, Q, H] */
  void* o;               /* [Q, H, 512] */
  float* lse;            /* [Q, H] or null */
  int queries, heads, splits;
} kf_mla_combine_args;

#endif
