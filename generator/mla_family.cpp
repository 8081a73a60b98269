#include "mla_family.h"

#include <regex>

#include "error.h"
#include "key_number.h"
#include "kf_mma_layouts.h"
#include "sparse_mla/launch.h"
#include "sparse_mla/wgmma_tiling.h"

namespace kf {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// 32-bit registers one lane spends on a warp's Q fragments and output accumulators: the
// part of the register budget the config decides (decode.h keeps both for the whole
// kernel). Above ~112 the rest of the kernel spills on every target.
template <class L>
int fragment_regs(const MlaConfig& c) {
  const int wd = c.warps / (c.block_h / 16);
  const int qsteps = (mla::kHeadDim / 16 + wd - 1) / wd;
  const int otiles = mla::kLatentDim / 16 / wd;
  return qsteps * L::kAPairs + otiles * L::kCElems;
}
constexpr int kMaxFragmentRegs = 112;

int fragment_regs(const MlaConfig& c, const ArchInfo& arch) {
  if (arch.mma == "v_wmma") return fragment_regs<layout::Wmma16Gfx11>(c);
  if (arch.mma == "v_mfma") return fragment_regs<layout::Mfma16Gfx9>(c);
  return fragment_regs<layout::Mma16Sm80>(c);
}

}  // namespace

std::string MlaShape::key() const {
  return "h" + str(heads) + "_topk" + str(topk) + "_x" + str(extras) + (bf16 ? "_bf16" : "_fp16");
}

MlaShape parse_mla_shape(const std::string& key) {
  static const std::regex re("h([0-9]{1,6})_topk([0-9]{1,7})_x([0-9]{1,7})_(bf16|fp16)");
  std::smatch m;
  if (!std::regex_match(key, m, re))
    throw Error("bad sparse_mla_decode shape key '" + key + "' (expected like h128_topk2048_x0_bf16)");
  MlaShape s;
  s.heads = key_number(m[1], key);
  s.topk = key_number(m[2], key);
  s.extras = key_number(m[3], key);
  s.bf16 = m[4] == "bf16";
  return s;
}

void validate_mla_shape(const MlaShape& s, const std::string& layer) {
  const std::string where = std::string(kMlaDecodeOp) + " layer '" + layer + "' (" + s.key() + "): ";
  if (s.heads < 16 || s.heads > 256 || s.heads % 16 != 0)
    throw Error(where + "H = " + str(s.heads) + " heads not supported (a multiple of 16, 16 to 256)");
  if (s.topk < 1 || s.topk > 65536) throw Error(where + "topk = " + str(s.topk) + " (1 to 65536 supported)");
  if (s.extras < 0 || s.extras > 65536)
    throw Error(where + "extras = " + str(s.extras) + " (0 to 65536 supported)");
}

std::string MlaConfig::key() const {
  return "bh" + str(block_h) + "_bk" + str(block_k) + "_w" + str(warps) + "_sp" + str(splits) + "_s" + str(stages);
}

const char* mla_kind_name(MlaKind kind) { return kind == MlaKind::wgmma ? "wgmma" : "decode"; }

MlaConfig parse_mla_config(const std::string& key, const std::string& kind) {
  if (kind != "decode" && kind != "wgmma") throw Error("unknown sparse_mla_decode kind '" + kind + "' (decode, wgmma)");
  static const std::regex re("bh([1-9][0-9]{0,3})_bk([1-9][0-9]{0,3})_w([1-9][0-9]?)_sp([1-9][0-9]{0,2})_s([1-9])");
  std::smatch m;
  if (!std::regex_match(key, m, re))
    throw Error("bad sparse_mla_decode config '" + key + "' (expected like bh16_bk16_w4_sp1_s2)");
  MlaConfig c;
  c.block_h = static_cast<int>(key_number(m[1], key));
  c.block_k = static_cast<int>(key_number(m[2], key));
  c.warps = static_cast<int>(key_number(m[3], key));
  c.splits = static_cast<int>(key_number(m[4], key));
  c.stages = static_cast<int>(key_number(m[5], key));
  c.kind = kind == "wgmma" ? MlaKind::wgmma : MlaKind::decode;
  return c;
}

int mla_dynamic_shared(const MlaConfig& cfg) { return cfg.kind == MlaKind::wgmma ? mla::wgmma::smem_bytes() : 0; }

std::string mla_kernel_name(const MlaShape& shape, const MlaConfig& cfg) {
  const std::string kind = cfg.kind == MlaKind::wgmma ? "wgmma_" : "";
  return std::string(kMlaDecodeOp) + "_" + kind + shape.key() + "_" + cfg.key();
}

std::string mla_config_problem(const MlaShape& s, const MlaConfig& c, const ArchInfo& arch) {
  if (c.kind == MlaKind::wgmma) {
    if (!arch.warpgroup_mma) return "the wgmma kind needs the warpgroup MMA (sm_90a)";
    if (s.heads % mla::wgmma::kBlockH != 0)
      return "the wgmma kind takes H in multiples of " + str(mla::wgmma::kBlockH) + ", not H = " + str(s.heads);
    if (!mla::wgmma::config_valid(static_cast<int>(s.heads), c.block_h, c.block_k, c.warps, c.splits, c.stages))
      return "wgmma rules (templates/sparse_mla/wgmma_tiling.h: bh64_bk64_w8_s2, splits 1.." + str(mla::kMaxSplits) + ")";
    if (c.warps * arch.wave_size != 256) return "the wgmma kind is two warpgroups of 128 threads";
    return "";  // its fixed shared-memory plan fits sm_90a (static_assert in wgmma_tiling.h)
  }
  if (c.block_h < 16 || c.block_h % 16 != 0) return "block_h " + str(c.block_h) + " is not a multiple of 16";
  if (s.heads % c.block_h != 0) return "block_h " + str(c.block_h) + " does not divide H = " + str(s.heads);
  if (c.block_k < 16 || c.block_k % 16 != 0) return "block_k " + str(c.block_k) + " is not a multiple of 16";
  const int head_tiles = c.block_h / 16;
  if (c.warps % head_tiles != 0) return "warps " + str(c.warps) + " is not a multiple of block_h / 16";
  const int wd = c.warps / head_tiles;
  if ((mla::kLatentDim / 16) % wd != 0) return "d-slices " + str(wd) + " do not divide the 512 output dims";
  if (c.warps * arch.wave_size > 1024) return "more than 1024 threads";
  const int threads = c.warps * arch.wave_size;
  const int per_row = c.block_k / std::max(1, c.block_h * c.block_k / threads);
  if (per_row > arch.wave_size) return "softmax rows span more than one wave";
  if (c.splits < 1 || c.splits > mla::kMaxSplits) return "splits " + str(c.splits) + " outside 1.." + str(mla::kMaxSplits);
  if (c.stages < 1 || c.stages > 4) return "stages " + str(c.stages) + " outside 1..4";
  if (mla::decode_smem_bytes(c.block_h, c.block_k, c.warps, c.stages) > arch.max_lds_per_block)
    return "shared memory over the arch's per-block limit";
  if (fragment_regs(c, arch) > kMaxFragmentRegs) return "fragments alone take over " + str(kMaxFragmentRegs) + " registers";
  return "";
}

std::vector<MlaConfig> enumerate_mla_configs(const MlaShape& s, const ArchInfo& arch) {
  std::vector<MlaConfig> out;
  for (int bh : {16, 32, 64})
    for (int w : {4, 8, 16})
      for (int bk : {16, 32})
        for (int st : {1, 2})
          // Splits put enough blocks in flight when Q x H / block_h is small (decode of
          // a few queries); the tuner times them only where they can help.
          for (int sp : {1, 2, 4, 8, 16, 32}) {
            const MlaConfig c{bh, bk, w, sp, st};
            if (mla_config_problem(s, c, arch).empty()) out.push_back(c);
          }
  // The warpgroup MMA for H >= 64: one config but for the splits.
  if (arch.warpgroup_mma)
    for (int sp : {1, 2, 4, 8, 16, 32}) {
      MlaConfig c{mla::wgmma::kBlockH, mla::wgmma::kBlockK, mla::wgmma::kWarps, sp, mla::wgmma::kStages};
      c.kind = MlaKind::wgmma;
      if (mla_config_problem(s, c, arch).empty()) out.push_back(c);
    }
  return out;
}

Candidate make_mla_candidate(const MlaShape& s, const MlaConfig& cfg, const ArchInfo& arch) {
  const std::string why = mla_config_problem(s, cfg, arch);
  if (!why.empty()) throw Error("sparse_mla_decode config " + cfg.key() + " for " + s.key() + " on " + arch.name + ": " + why);
  Candidate c;
  c.op = kMlaDecodeOp;
  c.kind = mla_kind_name(cfg.kind);
  c.arch = arch.name;
  c.shape = s.key();
  c.config = cfg.key();
  c.name = mla_kernel_name(s, cfg);
  c.instance = cfg.kind == MlaKind::wgmma ? "sparse_mla/decode_wgmma.cu.in" : "sparse_mla/decode.cu.in";
  c.threads = cfg.warps * arch.wave_size;
  c.needs_mma = true;
  c.dynamic_shared = mla_dynamic_shared(cfg);
  c.min_occupancy = 1;
  c.params = {{"name", c.name},
              {"config", c.op + " " + c.shape + " " + c.config + " " + arch.name},
              {"threads", str(c.threads)},
              {"heads", str(s.heads)},
              {"topk", str(s.topk)},
              {"bf16", s.bf16 ? "true" : "false"},
              {"block_h", str(cfg.block_h)},
              {"block_k", str(cfg.block_k)},
              {"warps", str(cfg.warps)},
              {"splits", str(cfg.splits)},
              {"stages", str(cfg.stages)}};
  if (cfg.kind == MlaKind::wgmma)  // decode_wgmma.cu.in: the tile is fixed (wgmma_tiling.h)
    for (const char* fixed : {"block_h", "block_k", "warps", "stages"}) c.params.erase(fixed);
  return c;
}

Candidate make_mla_combine_candidate(bool bf16, const ArchInfo& arch) {
  Candidate c;
  c.op = kMlaCombineOp;
  c.kind = "combine";
  c.arch = arch.name;
  c.shape = bf16 ? "any_bf16" : "any_fp16";
  c.config = "t" + str(mla::kCombineThreads);
  c.name = c.op + "_" + c.shape;
  c.threads = mla::kCombineThreads;
  c.instance = "sparse_mla/combine.cu.in";
  c.params = {{"name", c.name},
              {"config", c.op + " " + c.shape + " " + c.config + " " + arch.name},
              {"threads", str(c.threads)},
              {"bf16", bf16 ? "true" : "false"}};
  return c;
}

int64_t mla_part_floats(const MlaShape& s, const MlaConfig& cfg, int64_t queries) {
  return mla::part_o_floats(cfg.splits, queries, s.heads) + mla::part_lse_floats(cfg.splits, queries, s.heads);
}

}  // namespace kf
