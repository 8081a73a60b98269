// The mxfp4_moe family ("OGS" tiles): gather-matmul-scatter MoE GEMMs with MXFP4 expert
// weights and bf16 activations (templates/mxfp4_moe/args.h), gpt-oss style:
//   mxfp4_moe_gemm1 (gate_up): x rows gathered by token, bias, and, for layers whose
//                   activation is swiglu, gpt-oss's clamped SwiGLU fused (N / 2 outputs);
//   mxfp4_moe_gemm2 (down): one input row per slot, bias, scaled by the routing weight.
// Three kinds: `mma` (the arch's 16x16x16 matrix instruction, weights decoded into shared
// memory), `decode` (CUDA cores, a few slots per expert) and `wgmma` (sm_90a's warpgroup
// MMA, weights decoded in registers); configs: block_m (also moe_align's block), block_n,
// block_k, warps, pipeline stages, epilogue subtiles. Routing and the top-k sum are the
// w4a16_moe helpers (moe_align, moe_sum), which every pack with MoE kernels carries.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "arch.h"
#include "candidate.h"
#include "linear_family.h"  // LaunchGrid

namespace kf {

struct Mxfp4MoeShape {
  int gemm = 1;  // 1 = gate_up, 2 = down
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t n = 0;  // per expert: W[e] is n x k
  int64_t k = 0;
  bool swiglu = false;  // gemm1: the fused clamped SwiGLU epilogue (the layer's activation)

  std::string op() const;   // mxfp4_moe_gemm1 / mxfp4_moe_gemm2
  std::string key() const;  // e128_topk4_n5760_k2880_swiglu (gemm1), e128_topk4_n2880_k2880
};

Mxfp4MoeShape parse_mxfp4_shape(const std::string& op, const std::string& key);

// What the family can do: K a multiple of 32 (the MXFP4 block), N a multiple of 32,
// 1 <= top_k <= E <= 1024, SwiGLU only on gemm1. Throws kf::Error naming the layer and
// the bad value.
void validate_mxfp4_shape(const Mxfp4MoeShape& shape, const std::string& layer);

enum class Mxfp4Kind { mma, decode, wgmma };

struct Mxfp4Config {
  int block_m = 16;
  int block_n = 64;
  int block_k = 64;
  int warps = 4;
  int stages = 2;
  int subtiles = 1;  // epilogue passes of block_m / subtiles rows
  // mma: templates/mxfp4_moe/gemm.h.
  // decode (gemv.h, CUDA cores): block_m <= 8 slots, block_n weight rows, warps;
  //   block_k 32, stages 1, subtiles 1.
  // wgmma (gemm_wgmma.h, sm_90a): block_m 64/128/256, block_n 16 x warps, block_k 64/128,
  //   stages >= 3, subtiles 1; its ring is dynamic shared memory (mxfp4_dynamic_shared).
  Mxfp4Kind kind = Mxfp4Kind::mma;
  // wgmma only: 0 = one tile per block on the sorted capacity's grid; P = a persistent
  // launch of P blocks per SM walking the routed tiles (key suffix _pP).
  int persistent = 0;
  // decode only, sm_90a: blocks of one cluster sharing a tile's K (key suffix _skN when
  // N > 1; templates/mxfp4_moe/decode_tiling.h).
  int split_k = 1;

  std::string key() const;  // bm16_bn64_bk64_w4_s2_ep1[_p1][_sk2] (the kind is in the kernel name)
  bool operator==(const Mxfp4Config& o) const { return kind == o.kind && key() == o.key(); }
};

const char* mxfp4_kind_name(Mxfp4Kind kind);  // "mma", "decode", "wgmma"

// `kind` is the pack row's: "mma", "decode" or "wgmma".
Mxfp4Config parse_mxfp4_config(const std::string& key, const std::string& kind = "mma");

// mxfp4_moe_gemm1_<shape key>_<config key>; the other kinds name themselves:
// mxfp4_moe_gemm1_decode_<...>, mxfp4_moe_gemm1_wgmma_<...>
std::string mxfp4_kernel_name(const Mxfp4MoeShape& shape, const Mxfp4Config& cfg);

// Dynamic shared memory a launch passes: the wgmma kind's ring, 0 for the others.
int mxfp4_dynamic_shared(const Mxfp4Config& cfg);

// The launch for T tokens' sorted capacity (moe::sorted_capacity with cfg.block_m):
// tiling.h's grid, or a persistent config's fixed block count on a GPU of compute_units
// SMs, with mxfp4_dynamic_shared's bytes.
LaunchGrid mxfp4_grid(const Mxfp4MoeShape& shape, const Mxfp4Config& cfg, int64_t capacity, int compute_units);

// Why the template cannot take this config here ("" = it can).
std::string mxfp4_config_problem(const Mxfp4MoeShape& shape, const Mxfp4Config& cfg, const ArchInfo& arch);

std::vector<Mxfp4Config> enumerate_mxfp4_configs(const Mxfp4MoeShape& shape, const ArchInfo& arch);

Candidate make_mxfp4_candidate(const Mxfp4MoeShape& shape, const Mxfp4Config& cfg, const ArchInfo& arch);

}  // namespace kf
