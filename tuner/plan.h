// What autotune tunes: the model's w4a16_linear, MoE (w4a16 and MXFP4) and sparse MLA
// shapes (as genkernels derives them), the kernels the pack must hold for them, and per
// (kernel, M) whether a candidate is measured or recorded without running (pruned / failed
// at build time).
#pragma once
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "genkernels.h"  // resolve_ops
#include "linear_family.h"
#include "mla_family.h"
#include "model.h"
#include "moe_family.h"
#include "moe_routing.h"
#include "mxfp4_family.h"
#include "pack.h"

namespace kf {

// Decode and skinny kernels stream every weight once per block_m rows: past this M a
// tiled prefill kernel always reads them fewer times, so they are not timed there.
constexpr int64_t kDecodeMaxM = 64;
// MoE GEMMs go by the load instead, T * top_k / E slots per expert: the skinny kind is
// timed up to 64 (qwen3-35b: T = 2048; it won every T from 1 to 1024 on the H200). A
// block_m 32+ prefill tile reads each hit expert once but pads a few-slot expert to the
// whole tile, whose math costs like real rows; skinny (block_m 8 or 16) reads it once
// per 8 or 16 of its slots at a sixteenth of the math. At T = 256 (8 slots per expert) the prefill kind took 3.7x the read floor
// (bench/NOTES.md MoE v7).
constexpr int64_t kMoeSkinnyMaxLoad = 64;
// Split-K prefill kernels (config _skN_ with N > 1) are timed up to this M (or T).
constexpr int64_t kSplitPrefillMaxM = 256;
// Split-K wgmma kernels are timed up to this M: on the narrow layers 1024 rows still
// leave SMs idle at one slice.
constexpr int64_t kSplitWgmmaMaxM = 1024;
// The wgmma kind is timed from M = min(kWgmmaMinM, block_m / 2 + 1), where its tile is at
// least half full: below that it is mostly padding, and the decode and skinny kinds stream
// the weights at fewer rows anyway. Half a tile, not a whole one: at M = 24 a block_m 32
// tile beat the skinny kind's best by 1.2x on 12288x2048 (bench/NOTES.md linear v43).
constexpr int64_t kWgmmaMinM = 64;
// The MoE GEMMs' wgmma kernels go by load: timed from min(kMoeWgmmaMinLoad, block_m / 4)
// slots per expert on average (qwen3-35b, block_m 64 and 128: T = 512; 32: T = 256;
// 16: T = 128), below which a block is mostly padding and skinny wins.
constexpr int64_t kMoeWgmmaMinLoad = 16;

struct ShapeSelection {
  std::string model, config_path;  // one of them; both empty = the default model
  std::vector<int> group_sizes = {128};
  std::vector<std::string> dtypes = {"bf16"}, quants = {"sym"};
};

struct TuneShape {
  LinearShape shape;
  std::string key;
  std::vector<std::string> layers;  // the model layers it serves (for the report)
};

// autotune tunes the genkernels families: resolve_ops (genkernels.h) reads its --ops.

// The routing archetypes MoE ops are timed under unless told otherwise.
std::vector<RoutingArchetype> default_archetypes();  // uniform, zipf1, zipf2

struct MoeTuneShape {
  MoeShape shape;
  std::string op, key;
  std::vector<std::string> layers;
};

ModelDesc resolve_model(const ShapeSelection& sel);
// Distinct shapes in model order; throws kf::Error for a bad dtype, quantisation or a
// layer the family cannot serve (same checks and messages as genkernels).
std::vector<TuneShape> tune_shapes(const ModelDesc& model, const ShapeSelection& sel);
// The model's w4a16 MoE GEMM shapes of the selected ops (gate_up layers are gemm1, down
// layers gemm2, as genkernels reads them), distinct, in model order; MXFP4 layers are
// mxfp4_tune_shapes'.
std::vector<MoeTuneShape> moe_tune_shapes(const ModelDesc& model, const ShapeSelection& sel,
                                          const std::vector<std::string>& ops);

// mxfp4_moe shapes (m = the token count T): the model's MXFP4 expert layers of the
// selected ops (mxfp4_moe_gemm1 / mxfp4_moe_gemm2), distinct, in model order. Weights,
// activations (bf16) and the SwiGLU epilogue are the layer's: the dtype, quantisation and
// group-size selection does not apply. Throws kf::Error for a layer the family cannot serve.
struct Mxfp4TuneShape {
  Mxfp4MoeShape shape;
  std::string op, key;
  std::vector<std::string> layers;
};
std::vector<Mxfp4TuneShape> mxfp4_tune_shapes(const ModelDesc& model, const std::vector<std::string>& ops);

// sparse_mla_decode shapes (m = the query count Q).
struct MlaTuneShape {
  MlaShape shape;
  std::string op = kMlaDecodeOp, key;
  std::vector<std::string> layers;
};
// The model's MLA layers in each selected dtype, distinct, in model order; none unless
// `ops` holds sparse_mla_decode. Throws kf::Error for a layer the family cannot serve.
std::vector<MlaTuneShape> mla_tune_shapes(const ModelDesc& model, const ShapeSelection& sel,
                                          const std::vector<std::string>& ops);

// Names genkernels would emit for these shapes on `arch` that match `filter` (the
// generic kernel of each dtype/quantisation included), plus the utility kernel (always:
// it flushes L2).
// With MoE shapes, their kernels and the MoE helpers (align, silu_mul and sum per dtype);
// with MXFP4 shapes, their kernels and the helpers genkernels emits with them (align,
// bf16 silu_mul and sum); with MLA shapes, their kernels and the combine kernel of each
// of their dtypes.
std::vector<std::string> expected_kernels(const std::vector<TuneShape>& shapes, const ShapeSelection& sel,
                                          const std::string& arch, const std::regex& filter,
                                          const std::vector<MoeTuneShape>& moe_shapes = {},
                                          const std::vector<MlaTuneShape>& mla_shapes = {},
                                          const std::vector<Mxfp4TuneShape>& mxfp4_shapes = {});

// Candidates of one shape, from the pack's rows of that shape and of the generic shape
// key: every row whose name matches `filter`; with max_candidates > 0 only that many of
// the shape's own status-ok kernels, evenly spaced over the name order, both ends
// included (so both kinds and a spread of tile sizes stay), plus the generic kernel and every non-ok row.
std::vector<const PackKernel*> select_candidates(const std::vector<PackKernel>& rows, const std::regex& filter,
                                                 int max_candidates);

// Why `k` is not run at `m`: {"", ""} when it is measured, else {disposition, message}
// with disposition pruned (pack status pruned:*, decode and skinny above kDecodeMaxM, the
// MoE skinny kind above kMoeSkinnyMaxLoad slots per expert,
// split-K prefill above kSplitPrefillMaxM (split-K wgmma above kSplitWgmmaMaxM), wgmma below kWgmmaMinM (MoE: below
// kMoeWgmmaMinLoad slots per expert), an MLA split that cannot help:
// mla_split_prune_reason, an MXFP4 block_m that does not suit T:
// mxfp4_block_m_prune_reason) or
// failed (compile_error). `compute_units`: the device's SMs / CUs (0: unknown, no rule
// that needs it applies).
struct Verdict {
  std::string disposition, message;
};
Verdict static_verdict(const PackKernel& k, int64_t m, int compute_units = 0);

// sparse_mla_decode at Q queries: a split config (splits s > 1) is timed only while
//   - the grid with half its splits, (H / block_h) x Q x s / 2 blocks, has fewer than two
//     per multiprocessor (for s = 2: the unsplit grid does not already fill the GPU
//     twice; beyond that, more splits only add partials to write and merge), and
//   - every split gets at least block_k slots: floor((topk + extras) / s) >= block_k.
// "" when it is timed, else why not.
std::string mla_split_prune_reason(const MlaShape& shape, const MlaConfig& cfg, int64_t queries, int compute_units);

// mxfp4_moe at T tokens, with L = T * top_k / E the routed slots per expert on average
// (moe_align pads every expert's run to whole blocks of block_m):
//   - block_m >= 64 is timed only from L >= block_m / kMxfp4LargeBlockMinFill: below, the
//     average block is more than three quarters padding, whose rows cost the tile's math
//     and save nothing (an expert's weights are read once per block, and a block_m 32
//     tile covers such a load in one or two blocks with a fraction of the math);
//   - block_m 16 is timed only while L < kMxfp4SmallBlockMaxLoad: above, the average
//     expert's weights are streamed through the SMs once per 16 slots (4+ times) on the
//     smallest, least efficient tile, where block_m 32 to 128 read them 2 to 8 times less.
//   - the wgmma kind (block_m 64 to 256) is timed from L >= block_m / kMxfp4WgmmaMinFill:
//     its padding rows are cheap (the weights are decoded once per block whatever its
//     fill), and the mma kind it replaces is bound by decoding, not by the tile's math.
// For gpt-oss-120b (E 128, top-4): block_m 64 from T = 512, 128 from T = 1024, 16 below
// T = 2048, wgmma 64 / 128 / 256 from T = 128 / 256 / 512; gpt-oss-20b (E 32): 64 from
// T = 128, 128 from T = 256, 16 below T = 512.
// "" when it is timed, else why not.
constexpr int64_t kMxfp4LargeBlockMinFill = 4;
constexpr int64_t kMxfp4WgmmaMinFill = 16;
constexpr int64_t kMxfp4SmallBlockMaxLoad = 64;
// The MXFP4 decode kind is timed while T * top_k / E <= this.
constexpr int64_t kMxfp4DecodeMaxLoad = 8;
std::string mxfp4_block_m_prune_reason(const Mxfp4MoeShape& shape, const Mxfp4Config& cfg, int64_t t);

}  // namespace kf
