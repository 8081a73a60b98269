// The pack's key strings as numbers: w4a16_linear shape keys (n12288_k2048_g128_bf16_sym,
// per-channel "gch"), w4a16_moe shape keys (e256_topk8_n1024_k2048_g128_bf16_sym), the
// generic kernels' shape keys (any_bf16_sym), config keys (bm64_bn128_bk64_w4_sk1_s2) and
// sparse_mla_decode shape and config keys (h128_topk2048_x0_bf16, bh16_bk16_w4_sp8_s2), and
// mxfp4_moe ones (e128_topk4_n5760_k2880_swiglu, bm16_bn96_bk64_w4_s3_ep1).
// The formats are the generator's (linear_family.h, moe_family.h, mla_family.h,
// mxfp4_family.h); the
// runtime parses them itself, without allocating, because kf_select parses a caller's
// key on every call for shapes that were never tuned.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kf {
namespace rt {

struct LinearShapeKey {
  int64_t n = 0;
  int64_t k = 0;
  int64_t group = 0;  // 0 = per-channel
  bool bf16 = true;
  bool asym = false;

  int64_t effective_group() const { return group == 0 ? k : group; }
};

// Ordering for binary search over tuned shapes.
bool operator<(const LinearShapeKey& a, const LinearShapeKey& b);
bool operator==(const LinearShapeKey& a, const LinearShapeKey& b);

// Exactly the generator's format; false for anything else (trailing text included).
bool parse_linear_shape_key(const char* text, LinearShapeKey* key);
// "any_<bf16|fp16>_<sym|asym>".
bool parse_generic_shape_key(const char* text, bool* bf16, bool* asym);
// Writes the canonical key (as the generator writes it) into buf.
void format_linear_shape_key(const LinearShapeKey& key, char* buf, size_t size);

// What the generic kernel can do (generic.h): N % 8 == 0, K % 32 == 0, the group size a
// multiple of 32 that divides K (per-channel: K), and sizes that fit its int arguments.
bool generic_can_do(const LinearShapeKey& key);

// A w4a16_moe GEMM's shape: E experts, top_k of them per token, each expert's weight a
// w4a16_linear shape. gemm 1 (w4a16_moe_gemm1, gate_up) or 2 (w4a16_moe_gemm2, down):
// the op, which the key string does not carry.
struct MoeShapeKey {
  int gemm = 1;
  int64_t experts = 0;
  int64_t top_k = 0;
  LinearShapeKey expert;
};

bool operator<(const MoeShapeKey& a, const MoeShapeKey& b);
bool operator==(const MoeShapeKey& a, const MoeShapeKey& b);

// "w4a16_moe_gemm1" -> 1, "w4a16_moe_gemm2" -> 2, else 0.
int moe_gemm_of_op(const char* op);
const char* moe_op_name(int gemm);
// e<E>_topk<top_k>_<linear shape key>, exactly the generator's format; key->gemm is kept.
bool parse_moe_shape_key(const char* text, MoeShapeKey* key);
void format_moe_shape_key(const MoeShapeKey& key, char* buf, size_t size);

// What the w4a16_moe family can do (generator/moe_family.h): the generator's
// w4a16_linear rules per expert (N % 64 == 0, K % 32 == 0, group 32, 64, 128 or
// per-channel dividing K) and 1 <= top_k <= E <= kf::moe::kMaxExperts. nullptr when it
// can, else which rule fails (a static string).
const char* moe_shape_problem(const MoeShapeKey& key);

struct LinearConfigKey {
  int block_m = 0, block_n = 0, block_k = 0, warps = 0, split_k = 0, stages = 0;
  bool silu = false;  // _silu: the fused SiLU-and-mul epilogue (w4a16_moe_gemm1 only)
  bool red = false;   // _red: the epilogue summing over top_k into y [T, N] (w4a16_moe_gemm2 only)
  bool swapped = false;  // _sw: the skinny kind's swapped form at block_m 16 (w4a16_linear only)
  int stream_blocks = 0;  // _stk<B>: a stream-K grid of at most B blocks (w4a16_linear's wgmma kind only)
};

// bm<M>_bn<N>_bk<K>_w<W>_sk<S>_s<stages>, optionally followed by _stk<B>, then _sw, then
// _silu or _red.
bool parse_linear_config_key(const char* text, LinearConfigKey* config);

// A sparse_mla_decode shape: H query heads, topk index slots per query, the extras
// tuning bucket (extra rows per query; the kernels take any count) and the dtype.
struct MlaShapeKey {
  int64_t heads = 0;
  int64_t topk = 0;
  int64_t extras = 0;
  bool bf16 = true;
};

// Ordered by (heads, topk, bf16, extras): a shape's extras buckets lie side by side.
bool operator<(const MlaShapeKey& a, const MlaShapeKey& b);
bool operator==(const MlaShapeKey& a, const MlaShapeKey& b);
// Same heads, topk and dtype (extras may differ).
bool same_mla_family(const MlaShapeKey& a, const MlaShapeKey& b);

// h<H>_topk<topk>_x<extras>_<bf16|fp16>, exactly the generator's format.
bool parse_mla_shape_key(const char* text, MlaShapeKey* key);
void format_mla_shape_key(const MlaShapeKey& key, char* buf, size_t size);
// What the sparse_mla family can do (generator/mla_family.h): H a multiple of 16 from
// 16 to 256, 1 <= topk <= 65536, 0 <= extras <= 65536. nullptr when it can, else which
// rule fails (a static string).
const char* mla_shape_problem(const MlaShapeKey& key);

struct MlaConfigKey {
  int block_h = 0, block_k = 0, warps = 0, splits = 0, stages = 0;
};

// bh<block_h>_bk<block_k>_w<warps>_sp<splits>_s<stages>.
bool parse_mla_config_key(const char* text, MlaConfigKey* config);

// An mxfp4_moe GEMM's shape: E experts, top_k of them per token, each expert's weight
// N x K (MXFP4), and for gemm1 whether gpt-oss's clamped SwiGLU is fused (then the
// kernel writes N / 2 columns). gemm 1 (mxfp4_moe_gemm1) or 2 (mxfp4_moe_gemm2): the op,
// which the key string does not carry.
struct Mxfp4ShapeKey {
  int gemm = 1;
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool swiglu = false;
};

bool operator<(const Mxfp4ShapeKey& a, const Mxfp4ShapeKey& b);
bool operator==(const Mxfp4ShapeKey& a, const Mxfp4ShapeKey& b);

// "mxfp4_moe_gemm1" -> 1, "mxfp4_moe_gemm2" -> 2, else 0.
int mxfp4_gemm_of_op(const char* op);
const char* mxfp4_op_name(int gemm);
// e<E>_topk<top_k>_n<N>_k<K>[_swiglu], exactly the generator's format; key->gemm is kept.
bool parse_mxfp4_shape_key(const char* text, Mxfp4ShapeKey* key);
void format_mxfp4_shape_key(const Mxfp4ShapeKey& key, char* buf, size_t size);
// What the mxfp4_moe family can do (generator/mxfp4_family.h): 1 <= top_k <= E <=
// kf::moe::kMaxExperts, N and K positive multiples of 32 that fit an int, SwiGLU on
// gemm1 only. nullptr when it can, else which rule fails (a static string).
const char* mxfp4_shape_problem(const Mxfp4ShapeKey& key);

struct Mxfp4ConfigKey {
  int block_m = 0, block_n = 0, block_k = 0, warps = 0, stages = 0, subtiles = 0;
  int persistent = 0;  // blocks per SM of a persistent launch (wgmma kind), 0 = none
  int split_k = 1;     // blocks of one cluster sharing K (decode kind, sm_90a)
};

// bm<M>_bn<N>_bk<K>_w<W>_s<stages>_ep<subtiles>[_p<persistent>][_sk<split_k>].
bool parse_mxfp4_config_key(const char* text, Mxfp4ConfigKey* config);

}  // namespace rt
}  // namespace kf
