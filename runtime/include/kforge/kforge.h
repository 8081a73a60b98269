/* kforge runtime: the C ABI an inference engine links (libkforge.so, or the static
 * libkforge_runtime.a) to pick and launch the kernels of a kforge pack.
 *
 * Life cycle:
 *   kf_open(path, &db)             once, at start-up: reads the pack's kernels (code
 *                                  objects) and tuning winners for the current GPU into
 *                                  memory; nothing reads the file afterwards.
 *   kf_db_max_workspace(db, ...)   once: size of the split-K scratch to allocate.
 *   kf_prepare(db)                 once per device, before CUDA/HIP graph capture: loads
 *                                  every code object, so no launch loads one.
 *   kf_run_linear(db, &args, ...)  every forward, from the engine's custom op: picks the
 *                                  kernel for args->m/n/k/group and launches it on
 *                                  `stream`. No allocation, no file I/O, no device sync.
 *   kf_run_moe(db, &shape, &args, ...)  the same for a mixture-of-experts layer (scratch
 *                                  sized once with kf_moe_scratch_bytes).
 *   kf_run_mla(db, &shape, &args, ...)  the same for sparse MLA attention decode (scratch
 *                                  sized once with kf_mla_scratch_bytes).
 *   kf_run_mxfp4_moe(db, &shape, &args, ...)  the same for a gpt-oss style MoE layer with
 *                                  MXFP4 experts (scratch: kf_mxfp4_moe_scratch_bytes).
 *   kf_close(db)
 *
 * Every function returns a kf_status (KF_OK = 0); on failure kf_last_error() says
 * which value was wrong. Functions never throw, exit or abort. Everything is
 * thread-safe: a kf_db may be shared by any number of threads.
 *
 * Plain C89 with <stdint.h>; the kernel argument structs come from the kernel templates
 * (templates/w4a16_linear/args.h, templates/w4a16_moe/args.h, templates/sparse_mla/args.h,
 * templates/mxfp4_moe/args.h), which are the kernels' ABI.
 */
#ifndef KFORGE_KFORGE_H
#define KFORGE_KFORGE_H

#include <stddef.h>
#include <stdint.h>

#include "mxfp4_moe/args.h"
#include "sparse_mla/args.h"
#include "w4a16_linear/args.h"
#include "w4a16_moe/args.h"

#if defined(__GNUC__)
#define KF_API __attribute__((visibility("default")))
#else
#define KF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* An opened pack (thread-safe, immutable but for lazily loaded code objects). */
typedef struct kf_db kf_db;
/* One kernel of an opened pack; valid until kf_close of its kf_db. */
typedef struct kf_kernel kf_kernel;

typedef enum kf_status {
  KF_OK = 0,
  KF_ERR_INVALID_ARGUMENT = 1,  /* a null pointer, m < 1, a mismatched or misaligned tensor */
  KF_ERR_IO = 2,                /* the pack cannot be read (missing, unreadable, a directory) */
  KF_ERR_SCHEMA = 3,            /* not an SQLite file, not a kforge pack, or another schema version */
  KF_ERR_NOT_FOUND = 4,         /* unknown op, or no kernel for the arch in the pack */
  KF_ERR_UNSUPPORTED_SHAPE = 5, /* never tuned and the generic kernel cannot do it */
  KF_ERR_BACKEND = 6,           /* the CUDA/HIP driver failed (its message is in kf_last_error) */
  KF_ERR_NO_DEVICE = 7,         /* no GPU, no driver, or no device of the pack's arch */
  KF_ERR_INTERNAL = 8           /* out of memory or a bug: the message says which */
} kf_status;

/* "0.1.0": the kforge version this runtime was built from. */
KF_API const char* kf_version(void);
/* "KF_ERR_IO" etc.; "KF_ERR_?" for a value outside the enum. */
KF_API const char* kf_status_name(kf_status status);
/* The message of the calling thread's most recent failure, naming the bad value ("" if
 * none yet). Successful calls leave it as it was. Valid until the thread's next failure. */
KF_API const char* kf_last_error(void);

/* Opens `path` for the GPU the calling thread uses (CUDA: the current context's device,
 * else device 0, arch "sm_XY" with the "a" suffix for 9.0, e.g. "sm_90a"; HIP: the
 * current device, arch from gcnArchName up to ':', e.g. "gfx1151"). Winners measured on
 * a device of the same name are preferred. KF_ERR_NO_DEVICE without a usable GPU. */
KF_API kf_status kf_open(const char* path, kf_db** db);
/* Opens `path` for `arch` without touching a GPU: selection works anywhere; kf_launch
 * and kf_prepare return KF_ERR_NO_DEVICE unless a device of that arch is present.
 * `device_name` (may be NULL) picks which device's winners are preferred. */
KF_API kf_status kf_open_for_arch(const char* path, const char* arch, const char* device_name, kf_db** db);
/* Frees the pack and unloads its code objects. NULL is accepted. */
KF_API void kf_close(kf_db* db);
/* The arch and device name the pack was opened for ("" when no device name). */
KF_API const char* kf_db_arch(const kf_db* db);
KF_API const char* kf_db_device_name(const kf_db* db);

/* The kernel for op `op` ("w4a16_linear"), shape key `shape_key` (for w4a16_linear:
 * n<N>_k<K>_g<group|ch>_<bf16|fp16>_<sym|asym>, e.g. "n12288_k2048_g128_bf16_sym") and
 * M = m rows: the tuned winner whose M range covers m (the nearest range below it when
 * none does, the first above when m is below them all). A shape nobody tuned gets the
 * generic kernel when it can do the shape (kf_kernel_is_fallback says so, and stderr
 * says so once per shape), else KF_ERR_UNSUPPORTED_SHAPE. m < 1: KF_ERR_INVALID_ARGUMENT. */
KF_API kf_status kf_select(const kf_db* db, const char* op, const char* shape_key, int64_t m,
                           const kf_kernel** kernel);
/* The same for w4a16_linear by numbers: group 0 = per-channel (a group equal to K is
 * read as per-channel too), bf16 = 1 for bf16 (0: fp16), asym = 1 for packed zero points. */
KF_API kf_status kf_select_linear(const kf_db* db, int64_t n, int64_t k, int group, int bf16, int asym, int64_t m,
                                  const kf_kernel** kernel);

/* The kernel's symbol, e.g. w4a16_linear_decode_n2048_k4096_g128_bf16_sym_bm1_bn64_bk32_w4_sk1_s1. */
KF_API const char* kf_kernel_name(const kf_kernel* kernel);
/* 1 when the generic kernel serves a shape that has no tuned kernel, else 0. */
KF_API int kf_kernel_is_fallback(const kf_kernel* kernel);
/* Split-K scratch a launch of `kernel` for m rows needs: floats for args.workspace and
 * ints for args.counters (both 0 when the kernel does not split K, or splits it on chip:
 * the skinny and wgmma kinds' split tiles sum within a thread-block cluster; a stream-K
 * wgmma kernel, _stkB, needs B tiles and B flags whatever m). Counters must be zeroed once
 * when allocated; kernels leave them zero. One buffer serves one stream: two launches
 * running at once on other streams need their own. */
KF_API kf_status kf_kernel_workspace(const kf_kernel* kernel, int64_t m, int64_t* workspace_floats,
                                     int64_t* counter_ints);
/* The largest kf_kernel_workspace of any kernel kf_select can return for any m <= max_m:
 * allocate this once and pass it to every launch. */
KF_API kf_status kf_db_max_workspace(const kf_db* db, int64_t max_m, int64_t* workspace_floats,
                                     int64_t* counter_ints);

/* Loads every code object of the pack on the calling thread's current device (each is
 * otherwise loaded on its first launch on a device). Call before graph capture. */
KF_API kf_status kf_prepare(kf_db* db);
/* Launches `kernel` with `args` (passed by value) on `stream` (cudaStream_t/hipStream_t;
 * NULL = the default stream), asynchronously. Checks first: args->m >= 1; n/k/group equal
 * to a specialised kernel's shape (group K or 0 for per-channel); what the generic needs
 * (N % 8 == 0, K % 32 == 0, group a multiple of 32 dividing K); x and qweight 16-byte
 * aligned, scales and y 8-byte aligned, qzeros (asym) 4-byte aligned; workspace and
 * counters set for split-K and stream-K kernels.
 * Kernels of the skinny kind (decode, linear and MoE) wait for the kernel before them on
 * the stream before they read or write anything, so on CUDA drivers from 12.3 they are
 * launched to overlap it (programmatic dependent launch): each is launched as the kernel
 * before it ends instead of after that one's grid has completed, about 1 us less per
 * kernel boundary on an H200. Stream capture keeps that in the graph. Setting
 * KFORGE_OVERLAP_LAUNCHES=0 before kf_open launches every kernel after the one before it. */
KF_API kf_status kf_launch(const kf_kernel* kernel, const kf_linear_args* args, void* stream);
/* kf_select_linear(db, args->n, args->k, args->group, bf16, asym, args->m) + kf_launch:
 * the one call an engine's linear op makes per forward. */
KF_API kf_status kf_run_linear(const kf_db* db, const kf_linear_args* args, int bf16, int asym, void* stream);

/* The kernels read GPTQ checkpoint tensors exactly as stored (qweight int32 [K/8, N],
 * scales 16-bit [K/G, N], qzeros int32 [K/G, N/8]), so there is nothing to repack: this
 * copies nothing and changes nothing. It only checks that the buffers fit the shape
 * (sizes in bytes, exactly) and are aligned as kf_launch requires, so a loader can fail
 * early with a clear message. qzeros may be NULL (size 0) for symmetric weights. */
KF_API kf_status kf_repack_weights(int64_t n, int64_t k, int group, int asym, const void* qweight,
                                   size_t qweight_bytes, const void* scales, size_t scales_bytes,
                                   const void* qzeros, size_t qzeros_bytes);

/* ---- Mixture-of-experts layers (ops w4a16_moe_gemm1 / w4a16_moe_gemm2, moe_align,
 * moe_silu_mul, moe_sum; kernel ABI and data flow in templates/w4a16_moe/args.h) ---- */

/* One MoE layer's shape: E experts, top_k per token, hidden size H and expert
 * intermediate size I. gemm1 (gate_up) is N = 2 I, K = H; gemm2 (down) is N = H, K = I. */
typedef struct kf_moe_shape {
  int64_t experts;
  int64_t top_k;
  int64_t hidden;
  int64_t intermediate;
  int group; /* 32, 64, 128; 0 = per-channel */
  int bf16;  /* 1 = bf16, 0 = fp16 */
  int asym;  /* 1 = packed zero points */
} kf_moe_shape;

/* The MoE GEMMs read each expert's GPTQ tensors as checkpoints store them, stacked along
 * a leading E axis (gemm 1, gate_up: qweight int32 [E, H/8, 2I], scales [E, H/G, 2I],
 * qzeros [E, H/G, 2I/8]; gemm 2, down: [E, I/8, H], [E, I/G, H], [E, I/G, H/8]), so
 * nothing is repacked: like kf_repack_weights this only checks a loader's buffers (sizes
 * in bytes, exactly, and the alignment kf_run_moe needs) and names the first bad one.
 * qzeros may be NULL (size 0) for symmetric weights. */
KF_API kf_status kf_check_moe_weights(const kf_moe_shape* shape, int gemm, const void* qweight, size_t qweight_bytes,
                                      const void* scales, size_t scales_bytes, const void* qzeros, size_t qzeros_bytes);

/* The gemm1 (gemm = 1) or gemm2 (gemm = 2) kernel for T = t tokens: the tuned winner
 * whose T range covers t (the routing-robust pick of autotune), chosen like kf_select
 * (also reachable as kf_select(db, "w4a16_moe_gemm1", "e8_topk2_n256_k256_g128_bf16_sym",
 * t, ...)). A shape nobody tuned: KF_ERR_UNSUPPORTED_SHAPE naming the op and shape key
 * (MoE GEMMs have no generic fallback). Bad values (gemm not 1 or 2, t < 1, top_k
 * outside [1, E], E outside [1, 1024], sizes the family cannot do: per expert N % 64,
 * K % 32, group 32/64/128/per-channel dividing K): KF_ERR_INVALID_ARGUMENT naming it.
 * A group equal to a GEMM's K is read as per-channel for that GEMM. */
KF_API kf_status kf_select_moe(const kf_db* db, int gemm, const kf_moe_shape* shape, int64_t t,
                               const kf_kernel** kernel);
/* The rows of sorted_ids a block of the MoE GEMM `kernel` (w4a16_moe or mxfp4_moe) takes
 * (its moe_align block size); KF_ERR_INVALID_ARGUMENT for any other kernel. */
KF_API kf_status kf_kernel_block_m(const kf_kernel* kernel, int* block_m);
/* 1 when `kernel` is a gemm1 (gate_up) with SiLU-and-mul fused into its epilogue (config
 * suffix _silu): it writes h = silu(gate) * up, [T * top_k, I], instead of the gate_up
 * product [T * top_k, 2 I], so no moe_silu_mul follows it (args->n is still 2 I). Else 0
 * (NULL included). */
KF_API int kf_kernel_fuses_silu(const kf_kernel* kernel);
/* 1 when `kernel` is a gemm2 (down) that sums each token's top_k slots in its epilogue
 * (config suffix _red): it adds topk_weights[s] * (h[s, :] . W2[e]^T) into y[t, :], [T, H],
 * with atomic adds, instead of writing one row per slot, so no moe_sum follows it; y must
 * be zero before it runs (kf_launch_moe_align's zero / zero_count does that in the
 * layer's first launch). The sum rounds to the 16-bit type after every add, in no fixed
 * order, so it is not bit-reproducible. Else 0 (NULL included). */
KF_API int kf_kernel_reduces_topk(const kf_kernel* kernel);

/* Launch one piece, asynchronously on `stream` (grids and buffer sizes:
 * templates/w4a16_moe/launch.h). Each checks first and launches nothing on a bad value:
 * KF_ERR_INVALID_ARGUMENT naming it for t < 1, top_k outside [1, E], E outside [1, 1024],
 * null buffers, n/k/group/E/top_k not the GEMM kernel's, split-K without workspace and
 * counters (sizes: kf_kernel_workspace with m = t), n % 8 != 0 for the elementwise steps,
 * misaligned tensors (GEMMs as kf_launch, and every int32/float buffer 4 bytes;
 * silu_mul and sum x and y 16 bytes). KF_ERR_NOT_FOUND when the pack lacks the helper. */
KF_API kf_status kf_launch_moe_align(const kf_db* db, const kf_moe_align_args* args, void* stream);
KF_API kf_status kf_launch_moe_gemm(const kf_kernel* kernel, const kf_moe_gemm_args* args, void* stream);
KF_API kf_status kf_launch_moe_silu_mul(const kf_db* db, int bf16, const kf_moe_silu_mul_args* args, void* stream);
KF_API kf_status kf_launch_moe_sum(const kf_db* db, int bf16, const kf_moe_sum_args* args, void* stream);

/* A whole layer in one call: align (once per distinct block_m of the two winners),
 * gemm1, silu_mul (not when the gemm1 winner fuses it: kf_kernel_fuses_silu), gemm2
 * (times the routing weights), sum into y (not when the gemm2 winner sums over top_k
 * itself: kf_kernel_reduces_topk; then the first align also zeroes y, so y must not
 * overlap x); every piece checked before the first launch.
 * Intermediates live in `scratch`, one buffer per stream (layout: runtime/src/moe_layer.h). */
typedef struct kf_moe_layer_args {
  const void* x;              /* [T, H], 16-byte aligned */
  const int32_t* topk_ids;    /* [T, top_k]; ids outside [0, E) route nowhere */
  const float* topk_weights;  /* [T, top_k] */
  const void* w1_qweight;     /* gate_up: [E, H/8, 2I] int32 */
  const void* w1_scales;      /* [E, H/G, 2I] */
  const void* w1_qzeros;      /* [E, H/G, 2I/8] (asym only) */
  const void* w2_qweight;     /* down: [E, I/8, H] int32 */
  const void* w2_scales;      /* [E, I/G, H] */
  const void* w2_qzeros;      /* [E, I/G, H/8] (asym only) */
  void* y;                    /* [T, H], 16-byte aligned */
  void* scratch;              /* device memory, 256-byte aligned, zeroed once when allocated */
  size_t scratch_bytes;       /* >= kf_moe_scratch_bytes(db, shape, max_t) */
  int t;                      /* tokens of this call, 1 <= t <= max_t */
  int max_t;                  /* the max_t scratch was sized for: the same in every call
                                 with this scratch (it places the split-K counters, which
                                 must stay where they were zeroed) */
} kf_moe_layer_args;
/* Scratch kf_run_moe needs for any t <= max_t with the kernels kf_select_moe can
 * return. A scratch shared by layers of several shapes (one stream): the largest of
 * their sizes, with one max_t. */
KF_API kf_status kf_moe_scratch_bytes(const kf_db* db, const kf_moe_shape* shape, int64_t max_t, size_t* bytes);
KF_API kf_status kf_run_moe(const kf_db* db, const kf_moe_shape* shape, const kf_moe_layer_args* args,
                            void* stream);

/* ---- Sparse MLA attention decode (op sparse_mla_decode and its combine kernel
 * sparse_mla_combine; data layout and kernel ABI in templates/sparse_mla/args.h) ---- */

/* One attention layer's shape (its key: h<heads>_topk<topk>_x<extras>_<bf16|fp16>). */
typedef struct kf_mla_shape {
  int heads;  /* H, query heads per rank: a multiple of 16 from 16 to 256 */
  int topk;   /* index slots per query, 1 to 65536 */
  int extras; /* extra rows per query (e.g. a sliding window) the layer was tuned for:
                 0 or a tuned bucket such as 128; the kernels take any count at run time */
  int bf16;   /* 1 = bf16 q, kv and o; 0 = fp16 */
} kf_mla_shape;

/* The decode kernel for Q = queries: the tuned winner whose Q range covers it (ranges
 * as kf_select's: above the largest tuned Q the last range serves). When the shape's
 * extras bucket has no winners but another bucket of the same heads, topk and dtype
 * has, the nearest tuned bucket serves (a tie: the larger one), flagged by
 * kf_kernel_is_fallback and reported once per shape on stderr. No bucket of that H,
 * topk and dtype: KF_ERR_UNSUPPORTED_SHAPE naming the H values the pack tunes (sparse
 * MLA has no generic kernel). queries < 1 or a shape the family cannot do:
 * KF_ERR_INVALID_ARGUMENT. Also reachable as kf_select(db, "sparse_mla_decode",
 * "h128_topk2048_x0_bf16", queries, ...). */
KF_API kf_status kf_select_mla(const kf_db* db, const kf_mla_shape* shape, int64_t queries,
                               const kf_kernel** kernel);
/* Scratch for the split-KV partials (part_o [splits, Q, H, 512] fp32 at offset 0, then
 * part_lse [splits, Q, H] fp32 at the next 16-byte boundary) of the largest need of
 * any kernel kf_select_mla can return for 1 <= Q <= max_queries: allocate it once, 16-
 * byte aligned (no zeroing needed). 0 when no such kernel splits. KF_ERR_NOT_FOUND when
 * one splits and the pack lacks the combine kernel of the dtype. One scratch per stream,
 * shared by every layer of the shape (each launch's combine reads it before the next
 * decode on that stream writes it). */
KF_API kf_status kf_mla_scratch_bytes(const kf_db* db, const kf_mla_shape* shape, int64_t max_queries,
                                      size_t* bytes);
/* Launches the decode kernel (grid (H / block_h, Q, splits)) and, when it splits KV, the
 * combine kernel (grid (ceil(Q H / 8)), 256 threads) after it on `stream`; args->part_o
 * and args->part_lse are ignored: they are placed in `scratch` (NULL, 0 for unsplit
 * kernels). Checks first and launches nothing on a bad value (KF_ERR_INVALID_ARGUMENT
 * naming it): NULL q, kv, indices or o; queries < 1; heads not a multiple of 16 in
 * [16, 256] or not the kernel's; topk outside [1, 65536] or not the kernel's;
 * kv_rows < 1; extra_start and extra_count not both set or both NULL; softmax_scale
 * not finite or <= 0; q, kv, o not 16-byte aligned (o: the combine stores 16 bytes),
 * indices, extra_start, extra_count, lse not 4-byte aligned; scratch of a split kernel
 * NULL, not 16-byte aligned or smaller than its need at this Q. queries > 65535 (the
 * grid's y): KF_ERR_UNSUPPORTED_SHAPE. A split kernel without the pack's combine kernel:
 * KF_ERR_NOT_FOUND. Index values are not checked (device memory; the kernels read
 * nothing for a slot outside [0, kv_rows)): see kf_check_mla_indices. */
KF_API kf_status kf_launch_mla(const kf_kernel* kernel, const kf_mla_decode_args* args, void* scratch,
                               size_t scratch_bytes, void* stream);
/* kf_select_mla(db, shape, args->queries) + kf_launch_mla: the one call an engine's
 * attention op makes per forward (args->heads and args->topk must be the shape's). */
KF_API kf_status kf_run_mla(const kf_db* db, const kf_mla_shape* shape, const kf_mla_decode_args* args,
                            void* scratch, size_t scratch_bytes, void* stream);
/* For engines' debug builds: checks a host copy of indices [queries, topk] (int32).
 * KF_OK when every entry is -1 (unused) or a KV row in [0, kv_rows); else
 * KF_ERR_INVALID_ARGUMENT naming the first bad entry's position, query, slot and value,
 * and its flat position (query * topk + slot) in *bad_position (may be NULL; -1 when
 * none is bad). */
KF_API kf_status kf_check_mla_indices(const int32_t* host_indices, int64_t queries, int64_t topk, int64_t kv_rows,
                                      int64_t* bad_position);

/* ---- MXFP4 mixture-of-experts layers, gpt-oss style (ops mxfp4_moe_gemm1 /
 * mxfp4_moe_gemm2 with the w4a16_moe helpers moe_align and moe_sum; kernel ABI, weight
 * layout and data flow in templates/mxfp4_moe/args.h). Activations are bf16. ---- */

/* One layer's shape: E experts, top_k per token, hidden size H and expert intermediate
 * size I. gemm1 (gate_up) is N = 2 I, K = H; gemm2 (down) is N = H, K = I.
 * swiglu = 1: gemm1 fuses gpt-oss's clamped SwiGLU (gate/up columns interleaved as the
 * checkpoint stores them) and writes [T * top_k, I]; its shape key is
 * e<E>_topk<top_k>_n<2I>_k<H>_swiglu (gpt-oss-120b: e128_topk4_n5760_k2880_swiglu).
 * swiglu = 0 names the unfused gemm1 (key without _swiglu, output [T * top_k, 2 I]):
 * kf_select_mxfp4_moe serves it from a pack that tunes it (no built-in model does: it is
 * KF_ERR_UNSUPPORTED_SHAPE there), and kf_mxfp4_moe_scratch_bytes and kf_run_mxfp4_moe
 * refuse it with KF_ERR_UNSUPPORTED_SHAPE (the family has no separate activation
 * kernel). gemm2's key is e<E>_topk<top_k>_n<H>_k<I> whatever swiglu says. */
typedef struct kf_mxfp4_moe_shape {
  int experts;
  int top_k;
  int hidden;
  int intermediate;
  int swiglu;
} kf_mxfp4_moe_shape;

/* The gemm1 (gemm = 1) or gemm2 (gemm = 2) kernel for T = t tokens: the tuned winner
 * whose T range covers t (the routing-robust pick of autotune), chosen like
 * kf_select_moe (also reachable as kf_select(db, "mxfp4_moe_gemm1",
 * "e128_topk4_n5760_k2880_swiglu", t, ...)); kf_kernel_block_m gives its moe_align block.
 * A shape nobody tuned: KF_ERR_UNSUPPORTED_SHAPE naming the op and shape key (no generic
 * fallback). Bad values (gemm not 1 or 2, t < 1, top_k outside [1, E], E outside
 * [1, 1024], the GEMM's N or K not a positive multiple of 32): KF_ERR_INVALID_ARGUMENT
 * naming it. */
KF_API kf_status kf_select_mxfp4_moe(const kf_db* db, int gemm, const kf_mxfp4_moe_shape* shape, int64_t t,
                                     const kf_kernel** kernel);

/* Launches one mxfp4_moe GEMM asynchronously on `stream`: grid (N / block_n,
 * sorted_capacity(t, top_k, E, block_m) / block_m, 1) (templates/mxfp4_moe/tiling.h and
 * w4a16_moe/launch.h), with z = N for a split-K decode config (_skN: the N blocks of one
 * thread-block cluster, mxfp4_moe/decode_tiling.h), or, for a persistent wgmma config
 * (_pP), P blocks per SM of the current device but no more than that grid's blocks
 * (mxfp4_moe/wgmma_tiling.h); sorted_ids, expert_ids and num_padded from kf_launch_moe_align
 * with this kernel's block_m. args->n and args->k are the GEMM's (gemm1: n = 2 I even
 * when the SwiGLU is fused and y gets n / 2 columns). For a SwiGLU kernel,
 * args->swiglu_alpha and args->swiglu_limit of 0 mean gpt-oss's 1.702 and 7.0; other
 * kernels ignore them. Checks first and launches nothing on a bad value
 * (KF_ERR_INVALID_ARGUMENT naming it): not an mxfp4_moe kernel; NULL x, weight, scales,
 * sorted_ids, expert_ids, num_padded, y, or (gemm2) topk_weights (bias may be NULL);
 * t < 1, top_k outside [1, E], E outside [1, 1024], or E, top_k not the kernel's; k not
 * a multiple of 32; n, k not the kernel's; swiglu_alpha or swiglu_limit negative or not
 * finite; x, weight, scales, y not 16-byte aligned (16-byte copies), bias, topk_weights
 * and the routing ints not 4-byte aligned. A grid over 65535 blocks in y:
 * KF_ERR_UNSUPPORTED_SHAPE. */
KF_API kf_status kf_launch_mxfp4_moe_gemm(const kf_kernel* kernel, const kf_mxfp4_moe_gemm_args* args,
                                          void* stream);

/* A whole layer in one call: moe_align (once per distinct block_m of the two winners),
 * gemm1 (bias, SwiGLU), gemm2 (bias, times the routing weights), moe_sum into y; every
 * piece checked before the first launch; no allocation, no host sync (graph-capturable
 * once kf_prepare has loaded the code objects). Intermediates live in `scratch`, one
 * buffer per stream (layout: runtime/src/mxfp4_layer.h). */
typedef struct kf_mxfp4_moe_layer_args {
  const void* x;             /* [T, H] bf16, 16-byte aligned */
  const int32_t* topk_ids;   /* [T, top_k]; ids outside [0, E) route nowhere */
  const float* topk_weights; /* [T, top_k] */
  const uint8_t* w1_weight;  /* gate_up: [E, 2I, H/2] MXFP4 bytes, the checkpoint's */
  const uint8_t* w1_scales;  /* [E, H/32, 2I] e8m0 (kf_repack_mxfp4_scales) */
  const float* w1_bias;      /* [E, 2I] or NULL */
  const uint8_t* w2_weight;  /* down: [E, H, I/2] */
  const uint8_t* w2_scales;  /* [E, I/32, H] */
  const float* w2_bias;      /* [E, H] or NULL */
  void* y;                   /* [T, H] bf16, 16-byte aligned */
  void* scratch;             /* device memory, 256-byte aligned (no zeroing needed) */
  size_t scratch_bytes;      /* >= kf_mxfp4_moe_scratch_bytes(db, shape, max_t) */
  int t;                     /* tokens of this call, 1 <= t <= max_t */
  int max_t;                 /* the max_t scratch was sized for */
  float swiglu_alpha;        /* 0: gpt-oss's 1.702 */
  float swiglu_limit;        /* 0: gpt-oss's 7.0 (the config's swiglu_limit) */
} kf_mxfp4_moe_layer_args;
/* Scratch kf_run_mxfp4_moe needs for any t <= max_t with the kernels
 * kf_select_mxfp4_moe can return (a scratch shared by layers of several shapes on one
 * stream: the largest of their sizes). */
KF_API kf_status kf_mxfp4_moe_scratch_bytes(const kf_db* db, const kf_mxfp4_moe_shape* shape, int64_t max_t,
                                            size_t* bytes);
/* Checks, before any launch (KF_ERR_INVALID_ARGUMENT naming the value): the shape as
 * kf_select_mxfp4_moe; t < 1 or t > max_t; NULL x, topk_ids, topk_weights, weights,
 * scales, y, scratch (biases may be NULL); x, weights, scales, y not 16-byte aligned,
 * topk_ids, topk_weights, biases not 4, scratch not 256; swiglu_alpha or swiglu_limit
 * negative or not finite; scratch_bytes below this t's need (the message says how many
 * bytes). shape->swiglu = 0 or an untuned shape: KF_ERR_UNSUPPORTED_SHAPE. */
KF_API kf_status kf_run_mxfp4_moe(const kf_db* db, const kf_mxfp4_moe_shape* shape,
                                  const kf_mxfp4_moe_layer_args* args, void* stream);

/* For loaders: checkpoints store MXFP4 scales [E, N, K/32] (one e8m0 byte per 32 values
 * of a weight row); the kernels read them [E, K/32, N]. Copies host memory `src` into
 * `dst` (both E * N * K/32 bytes, not overlapping) in the kernels' order.
 * KF_ERR_INVALID_ARGUMENT naming the value for NULL buffers, E, N < 1, K not a positive
 * multiple of 32 (the MXFP4 block), sizes past 64 bits, or overlapping buffers. */
KF_API kf_status kf_repack_mxfp4_scales(int64_t experts, int64_t n, int64_t k, const uint8_t* src, uint8_t* dst);

#ifdef __cplusplus
}
#endif

#endif /* KFORGE_KFORGE_H */
