#include "mxfp4_family.h"

#include <regex>

#include "error.h"
#include "key_number.h"
#include "kf_mma_layouts.h"
#include "mxfp4_moe/decode_tiling.h"
#include "mxfp4_moe/tiling.h"
#include "mxfp4_moe/wgmma_tiling.h"
#include "w4a16_moe/launch.h"

namespace kf {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// 32-bit accumulator registers per lane of a warp tile: above ~96 the rest of the
// kernel spills on every target.
int accumulator_regs(const Mxfp4Config& c, const ArchInfo& arch) {
  const int wm = mxfp4::warps_m(c.block_m, c.block_n, c.warps);
  if (wm == 0) return 1 << 20;
  const int atoms = (c.block_m / wm / 16) * (c.block_n / (c.warps / wm) / 16);
  const int per_atom = arch.mma == "v_mfma" ? layout::Mfma16Gfx9::kCElems : layout::Mma16Sm80::kCElems;
  return atoms * per_atom;
}
constexpr int kMaxAccumulatorRegs = 96;

}  // namespace

std::string Mxfp4MoeShape::op() const { return gemm == 1 ? "mxfp4_moe_gemm1" : "mxfp4_moe_gemm2"; }

std::string Mxfp4MoeShape::key() const {
  return "e" + str(experts) + "_topk" + str(top_k) + "_n" + str(n) + "_k" + str(k) + (swiglu ? "_swiglu" : "");
}

Mxfp4MoeShape parse_mxfp4_shape(const std::string& op, const std::string& key) {
  if (op != "mxfp4_moe_gemm1" && op != "mxfp4_moe_gemm2")
    throw Error("unknown MXFP4 MoE op '" + op + "' (mxfp4_moe_gemm1, mxfp4_moe_gemm2)");
  static const std::regex re("e([1-9][0-9]{0,5})_topk([1-9][0-9]{0,5})_n([1-9][0-9]{0,6})_k([1-9][0-9]{0,6})(_swiglu)?");
  std::smatch m;
  if (!std::regex_match(key, m, re))
    throw Error("bad " + op + " shape key '" + key + "' (expected like e128_topk4_n5760_k2880_swiglu)");
  Mxfp4MoeShape s;
  s.gemm = op == "mxfp4_moe_gemm1" ? 1 : 2;
  s.experts = key_number(m[1], key);
  s.top_k = key_number(m[2], key);
  s.n = key_number(m[3], key);
  s.k = key_number(m[4], key);
  s.swiglu = m[5].matched;
  return s;
}

void validate_mxfp4_shape(const Mxfp4MoeShape& s, const std::string& layer) {
  const std::string where = s.op() + " layer '" + layer + "' (" + s.key() + "): ";
  if (s.experts < 1 || s.experts > moe::kMaxExperts)
    throw Error(where + "E = " + str(s.experts) + " experts (1 to " + str(moe::kMaxExperts) + " supported)");
  if (s.top_k < 1 || s.top_k > s.experts)
    throw Error(where + "top_k = " + str(s.top_k) + " must be between 1 and E = " + str(s.experts));
  if (s.k < 32 || s.k % 32 != 0) throw Error(where + "K = " + str(s.k) + " is not a multiple of 32 (the MXFP4 block)");
  if (s.n < 32 || s.n % 32 != 0) throw Error(where + "N = " + str(s.n) + " is not a multiple of 32");
  if (s.swiglu && s.gemm != 1) throw Error(where + "the SwiGLU epilogue is gemm1's (gate_up)");
}

std::string Mxfp4Config::key() const {
  return "bm" + str(block_m) + "_bn" + str(block_n) + "_bk" + str(block_k) + "_w" + str(warps) + "_s" + str(stages) +
         "_ep" + str(subtiles) + (persistent > 0 ? "_p" + str(persistent) : "") +
         (split_k > 1 ? "_sk" + str(split_k) : "");
}

const char* mxfp4_kind_name(Mxfp4Kind kind) {
  switch (kind) {
    case Mxfp4Kind::decode: return "decode";
    case Mxfp4Kind::wgmma: return "wgmma";
    default: return "mma";
  }
}

Mxfp4Config parse_mxfp4_config(const std::string& key, const std::string& kind) {
  if (kind != "mma" && kind != "decode" && kind != "wgmma")
    throw Error("unknown mxfp4_moe kind '" + kind + "' (mma, decode, wgmma)");
  static const std::regex re("bm([1-9][0-9]{0,3})_bn([1-9][0-9]{0,3})_bk([1-9][0-9]{0,3})_w([1-9][0-9]?)_s([1-9])_ep([1-9][0-9]?)(?:_p([1-9]))?(?:_sk([2-9]))?");
  std::smatch m;
  if (!std::regex_match(key, m, re))
    throw Error("bad mxfp4_moe config '" + key + "' (expected like bm16_bn64_bk64_w4_s2_ep1)");
  Mxfp4Config c;
  c.block_m = static_cast<int>(key_number(m[1], key));
  c.block_n = static_cast<int>(key_number(m[2], key));
  c.block_k = static_cast<int>(key_number(m[3], key));
  c.warps = static_cast<int>(key_number(m[4], key));
  c.stages = static_cast<int>(key_number(m[5], key));
  c.subtiles = static_cast<int>(key_number(m[6], key));
  c.persistent = m[7].matched ? static_cast<int>(key_number(m[7], key)) : 0;
  c.split_k = m[8].matched ? static_cast<int>(key_number(m[8], key)) : 1;
  c.kind = kind == "decode" ? Mxfp4Kind::decode : kind == "wgmma" ? Mxfp4Kind::wgmma : Mxfp4Kind::mma;
  return c;
}

std::string mxfp4_kernel_name(const Mxfp4MoeShape& shape, const Mxfp4Config& cfg) {
  const std::string kind = cfg.kind == Mxfp4Kind::mma ? "" : std::string(mxfp4_kind_name(cfg.kind)) + "_";
  return shape.op() + "_" + kind + shape.key() + "_" + cfg.key();
}

int mxfp4_dynamic_shared(const Mxfp4Config& c) {
  return c.kind == Mxfp4Kind::wgmma ? mxfp4::wgmma::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages) : 0;
}

LaunchGrid mxfp4_grid(const Mxfp4MoeShape& s, const Mxfp4Config& c, int64_t capacity, int compute_units) {
  const unsigned shared = static_cast<unsigned>(mxfp4_dynamic_shared(c));
  if (c.persistent > 0)
    return {static_cast<unsigned>(
                mxfp4::wgmma::persistent_blocks(s.n, capacity, c.block_m, c.block_n, c.persistent, compute_units)),
            1, 1, shared};
  const mxfp4::Grid g = mxfp4::gemm_grid(s.n, capacity, c.block_m, c.block_n);
  return {g.x, g.y, g.z * static_cast<unsigned>(c.split_k), shared};  // split-K: the cluster's blocks along z
}

std::string mxfp4_config_problem(const Mxfp4MoeShape& s, const Mxfp4Config& c, const ArchInfo& arch) {
  if (c.persistent < 0 || c.persistent > mxfp4::wgmma::kMaxPersistentPerUnit)
    return "persistent launches take 1 to " + str(mxfp4::wgmma::kMaxPersistentPerUnit) + " blocks per SM";
  if (c.persistent > 0 && c.kind != Mxfp4Kind::wgmma) return "only the wgmma kind has a persistent launch";
  if (c.split_k != 1) {
    if (c.kind != Mxfp4Kind::decode) return "only the decode kind splits K";
    if (!arch.warpgroup_mma) return "split-K sums through a thread-block cluster (sm_90a)";
    if (!mxfp4::decode_split_valid(static_cast<int>(s.k), c.split_k))
      return "split_k " + str(c.split_k) + " must divide K / 32 = " + str(s.k / 32) + " and be at most " +
             str(mxfp4::kMaxDecodeSplitK);
  }
  if (c.kind == Mxfp4Kind::wgmma) {
    if (!arch.warpgroup_mma) return "the wgmma kind needs the warpgroup MMA (sm_90a)";
    if (c.subtiles != 1) return "the wgmma kind has one epilogue pass (ep 1)";
    if (!mxfp4::wgmma::config_valid(static_cast<int>(s.n), static_cast<int>(s.k), s.swiglu, c.block_m, c.block_n,
                                    c.block_k, c.warps, c.stages))
      return "wgmma rules (templates/mxfp4_moe/wgmma_tiling.h)";
    return "";
  }
  if (c.kind == Mxfp4Kind::decode) {
    if (c.block_k != 32 || c.stages != 1 || c.subtiles != 1) return "the decode kind is block_k 32, stages 1, ep 1";
    if (c.warps * arch.wave_size > 1024) return "more than 1024 threads";
    if (!mxfp4::decode_config_valid(static_cast<int>(s.n), static_cast<int>(s.k), s.swiglu, c.block_m, c.block_n,
                                    c.warps, arch.wave_size))
      return "decode rules (templates/mxfp4_moe/decode_tiling.h)";
    if (mxfp4::decode_smem_bytes(c.block_m, c.block_n, static_cast<int>(s.k), c.split_k) > arch.max_lds_per_block)
      return "shared memory over the arch's per-block limit";
    return "";
  }
  if (!mxfp4::config_valid(static_cast<int>(s.n), static_cast<int>(s.k), s.swiglu, c.block_m, c.block_n, c.block_k,
                           c.warps, c.stages, c.subtiles))
    return "tiling rules (templates/mxfp4_moe/tiling.h)";
  if (c.warps * arch.wave_size > 1024) return "more than 1024 threads";
  if (mxfp4::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, c.subtiles) > arch.max_lds_per_block)
    return "shared memory over the arch's per-block limit";
  if (accumulator_regs(c, arch) > kMaxAccumulatorRegs)
    return "accumulators alone take over " + str(kMaxAccumulatorRegs) + " registers";
  return "";
}

std::vector<Mxfp4Config> enumerate_mxfp4_configs(const Mxfp4MoeShape& s, const ArchInfo& arch) {
  std::vector<Mxfp4Config> out;
  // The decode kind for a handful of slots per expert: block_m up to 8, a weight row per
  // 4-16 threads.
  // Split-K (sm_90a) for one or two slots per block, where a tile's blocks are fewest.
  for (int bm : {1, 2, 4, 8})
    for (int bn : {16, 32, 64})
      for (int w : {4, 8})
        for (int sk : {1, 2, 3}) {
          if (sk > 1 && bm > 2) continue;
          Mxfp4Config c{bm, bn, 32, w, 1, 1};
          c.kind = Mxfp4Kind::decode;
          c.split_k = sk;
          if (mxfp4_config_problem(s, c, arch).empty()) out.push_back(c);
        }
  // block_m follows tokens per expert (T top_k / E): 16 for decode, up to 128 for
  // prefill; block_n and block_k 96 and 192 divide gpt-oss's 2880. A decode-sized stage
  // (16 rows, 64 columns, 64 k) is under 3 KB, so 6 and 8 stages are what keeps enough
  // weight bytes in flight per block when few tokens reach each expert.
  for (int bm : {16, 32, 64, 128})
    for (int bn : {32, 64, 96, 128, 192})
      for (int bk : {32, 64, 96, 128})
        for (int w : {4, 8})
          for (int st : {2, 3, 4, 6, 8})
            for (int ep : {1, 2}) {
              const Mxfp4Config c{bm, bn, bk, w, st, ep};
              if (st > 4 && bm > 32) continue;  // deep rings only for the memory-bound sizes
              // A second epilogue pass only where one pass would not fit beside the stages.
              if (ep == 2 && mxfp4::epilogue_bytes(bm, bn, 1) <= mxfp4::main_loop_bytes(bm, bn, bk, st)) continue;
              if (mxfp4_config_problem(s, c, arch).empty()) out.push_back(c);
            }
  // The warpgroup MMA for prefill loads (tens of slots per expert and up): the slots are
  // the instruction's N (64-256), 64 weight rows per warpgroup.
  if (arch.warpgroup_mma)
    for (int bm : {64, 128, 256})
      for (int w : {4, 8, 12})
        for (int bk : {64, 128})
          for (int st : {3, 4, 6})
            // One tile per block, or one walker per SM (two per SM never won on an H200:
            // bench/NOTES.md MXFP4 v4; the key takes any count).
            for (int persistent : {0, 1}) {
              Mxfp4Config c{bm, 16 * w, bk, w, st, 1};
              c.kind = Mxfp4Kind::wgmma;
              c.persistent = persistent;
              if (mxfp4_config_problem(s, c, arch).empty()) out.push_back(c);
            }
  return out;
}

Candidate make_mxfp4_candidate(const Mxfp4MoeShape& s, const Mxfp4Config& cfg, const ArchInfo& arch) {
  const std::string why = mxfp4_config_problem(s, cfg, arch);
  if (!why.empty()) throw Error(s.op() + " config " + cfg.key() + " for " + s.key() + " on " + arch.name + ": " + why);
  Candidate c;
  c.op = s.op();
  c.kind = mxfp4_kind_name(cfg.kind);
  c.arch = arch.name;
  c.shape = s.key();
  c.config = cfg.key();
  c.name = mxfp4_kernel_name(s, cfg);
  c.instance = cfg.kind == Mxfp4Kind::decode  ? "mxfp4_moe/gemv.cu.in"
               : cfg.kind == Mxfp4Kind::wgmma ? "mxfp4_moe/gemm_wgmma.cu.in"
                                              : "mxfp4_moe/gemm.cu.in";
  c.threads = cfg.warps * arch.wave_size;
  c.needs_mma = cfg.kind != Mxfp4Kind::decode;
  c.dynamic_shared = mxfp4_dynamic_shared(cfg);
  c.min_occupancy = 1;
  c.params = {{"name", c.name},
              {"config", c.op + " " + c.shape + " " + c.config + " " + arch.name},
              {"threads", str(c.threads)},
              {"gemm", str(s.gemm)},
              {"n", str(s.n)},
              {"k", str(s.k)},
              {"swiglu", s.swiglu ? "true" : "false"},
              {"block_m", str(cfg.block_m)},
              {"block_n", str(cfg.block_n)},
              {"block_k", str(cfg.block_k)},
              {"warps", str(cfg.warps)},
              {"stages", str(cfg.stages)},
              {"subtiles", str(cfg.subtiles)}};
  if (cfg.kind == Mxfp4Kind::decode) {  // gemv.cu.in has no pipeline or epilogue passes
    for (const char* unused : {"block_k", "stages", "subtiles"}) c.params.erase(unused);
    c.params["split_k"] = str(cfg.split_k);
    c.params["cluster"] = cfg.split_k > 1 ? "__cluster_dims__(1, 1, " + str(cfg.split_k) + ")" : "";
  }
  if (cfg.kind == Mxfp4Kind::wgmma) {  // gemm_wgmma.cu.in: one epilogue pass, maybe persistent
    c.params.erase("subtiles");
    c.params["persistent"] = cfg.persistent > 0 ? "true" : "false";
  }
  return c;
}

}  // namespace kf
