// The w4a16_linear family: int4-weight x 16-bit-activation linear layers in the GPTQ
// layout (see templates/w4a16_linear/args.h), in four kinds: `decode` (small M,
// memory-bound, no matrix instructions), `skinny` (M <= 16 on NVIDIA: the decode
// kind's streaming and launch geometry, the arithmetic on mma.sync), `prefill`
// (tiled, matrix instructions) and `wgmma` (prefill on Hopper's warpgroup MMA, sm_90a).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "arch.h"
#include "candidate.h"

namespace kf {

struct LinearShape {
  int64_t n = 0;
  int64_t k = 0;
  int group = 128;    // quantisation group along K; 0 = per-channel (one group of K)
  bool bf16 = true;   // activation/scale/output type: bf16 or fp16
  bool asym = false;  // asymmetric (packed zero points) or symmetric uint4b8

  int effective_group() const { return group == 0 ? static_cast<int>(k) : group; }
  // n12288_k2048_g128_bf16_sym; per-channel is written gch.
  std::string key() const;
};

// Parses a key made by LinearShape::key(); throws kf::Error naming the bad part.
LinearShape parse_linear_shape(const std::string& key);

// Checks what the family can do: N a multiple of 64, K a multiple of 8 and of the
// group size, group in {32, 64, 128} or per-channel. Throws kf::Error naming the value.
void validate_linear_shape(const LinearShape& shape, const std::string& layer);

enum class LinearKind { decode, prefill, generic, skinny, wgmma };
const char* kind_name(LinearKind kind);

struct LinearConfig {
  LinearKind kind = LinearKind::decode;
  int block_m = 1;   // rows of M per block
  int block_n = 64;  // columns of N per block
  int block_k = 32;  // decode: k per thread step; prefill: k per shared-memory tile;
                     // skinny: always 32, the k per warp span
  int warps = 4;     // waves (AMD) or warps (NVIDIA) per block
  int split_k = 1;   // blocks sharing one output tile's K range
  int stages = 1;    // decode: register ring of k-steps (1, 2, 4); skinny: register ring of
                     // 32-k spans (1, 2, 4); prefill: 2 = next tile's loads before this
                     // tile's math, 3+ = cp.async shared-memory ring
  bool silu = false;  // fused SiLU-and-mul epilogue (templates/w4a16_linear/silu.h): the
                      // MoE family's gemm1 only; w4a16_linear never enumerates it
  bool red = false;   // epilogue that sums the top_k slots of a token into y [T, N] with
                      // atomic adds (templates/w4a16_moe/gemm.h): the MoE family's gemm2 only
  bool swapped = false;  // skinny block_m 16 in the swapped form (weights as the A operand,
                         // dequantised once for both 8-row halves: skinny.h PAIRED); key _sw
  int stream_blocks = 0;  // wgmma only: stream-K over at most this many blocks (key _stkB;
                          // templates/w4a16_linear/wgmma_tiling.h); 0: a block per tile

  // bm64_bn128_bk64_w4_sk1_s2, then _stkB for a stream-K wgmma grid, _sw for the swapped
  // skinny form at block_m 16, and _silu or _red for those epilogues: fixed
  // order, every knob, so within a kind equal keys = equal configs (the kernel name adds
  // the kind).
  std::string key() const;
  bool operator==(const LinearConfig& o) const { return kind == o.kind && key() == o.key(); }
};

// w4a16_linear_<kind>_<shape key>_<config key>: the kernel symbol and pack name.
std::string linear_kernel_name(const LinearShape& shape, const LinearConfig& cfg);

// Every config the templates accept for this shape on this arch: decode first, then
// skinny (NVIDIA archs only; templates/w4a16_linear/skinny_tiling.h), then prefill, then
// wgmma (archs with the warpgroup MMA; templates/w4a16_linear/wgmma_tiling.h).
std::vector<LinearConfig> enumerate_linear_configs(const LinearShape& shape, const ArchInfo& arch);

// The pipelined prefill configs (stages 3 and 4: templates/w4a16_linear/prefill.h) for
// this shape on this arch, appended to `out`; shared by the MoE GEMMs, whose prefill is
// the same body.
void append_pipelined_prefill_configs(const LinearShape& shape, const ArchInfo& arch, std::vector<LinearConfig>& out);

// The skinny configs (templates/w4a16_linear/skinny.h: M <= 16 on the tensor cores,
// NVIDIA only) of this shape over the given block_m, block_n, split_k and stages values
// and 2, 4, 8 or 16 warps, in that order (skinny::valid drops what the shape or the shared
// memory cannot take); nothing on other vendors.
// block_ms: 16 (x as the A operand, or with `swapped` the weights, as block_m 8's swapped
// form, for both 8-row halves) and 8 (the swapped form, M <= 8); both families emit 16 and 8,
// only w4a16_linear the swapped 16.
void append_skinny_configs(const LinearShape& shape, const ArchInfo& arch, std::initializer_list<int> splits,
                           std::initializer_list<int> stages, std::vector<LinearConfig>& out,
                           std::initializer_list<int> block_ms = {16}, std::initializer_list<int> block_ns = {64, 128},
                           bool swapped = false);

Candidate make_linear_candidate(const LinearShape& shape, const LinearConfig& cfg,
                                const ArchInfo& arch);

// The generic kernel of a dtype/quantisation (N, K, group size given at run time), in
// every pack so a runtime can serve shapes nobody tuned. Its shape key is
// any_<dtype>_<quant>, e.g. w4a16_linear_generic_any_bf16_sym_bm4_bn128_bk32_w4_sk1_s1.
Candidate make_linear_generic_candidate(bool bf16, bool asym, const ArchInfo& arch);
std::string linear_generic_shape_key(bool bf16, bool asym);

// Whether a kind's split tiles sum within a thread-block cluster (the skinny and wgmma
// kinds, sm_90), so its launches need no split-K workspace or counters.
bool splits_on_chip(const LinearConfig& cfg);

// Workspace a split-K launch needs (floats and counters), for runtimes and tests.
int64_t linear_workspace_floats(const LinearShape& shape, const LinearConfig& cfg, int64_t m);
int64_t linear_counter_ints(const LinearShape& shape, const LinearConfig& cfg, int64_t m);

}  // namespace kf

namespace kf {

// Inverse of LinearConfig::key() for a kind; throws kf::Error naming the bad key.
LinearConfig parse_linear_config(const std::string& kind, const std::string& key);

// Launch geometry of a kernel (block = threads, 1, 1): linear_grid's for a w4a16_linear
// kernel at M rows (the skinny kind launches on the decode kind's grid), mxfp4_grid's for
// an MXFP4 MoE GEMM.
struct LaunchGrid {
  unsigned x, y, z;
  unsigned shared = 0;  // dynamic shared memory bytes (linear_dynamic_shared, mxfp4_dynamic_shared)
};
// The dynamic shared memory a config's kernel launches with (and opts in to at load):
// the skinny kind's rings above 48 KiB, the wgmma kind's whole ring; 0 for everything
// else (the MoE GEMMs pass their expert's shape).
int linear_dynamic_shared(const LinearShape& shape, const LinearConfig& cfg);
// `compute_units`: the device's SMs, which bound a stream-K grid (0: unknown, B blocks).
LaunchGrid linear_grid(const LinearShape& shape, const LinearConfig& cfg, int64_t m, int compute_units = 0);

}  // namespace kf
