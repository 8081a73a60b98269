#include "moe_family.h"

#include <regex>

#include "error.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/tiling.h"
#include "w4a16_linear/wgmma_tiling.h"
#include "w4a16_moe/align_cluster_tiling.h"
#include "w4a16_moe/launch.h"

namespace kf {

std::string MoeShape::op() const { return gemm == 1 ? "w4a16_moe_gemm1" : "w4a16_moe_gemm2"; }

std::string MoeShape::key() const {
  return "e" + std::to_string(experts) + "_topk" + std::to_string(top_k) + "_" + expert().key();
}

MoeShape parse_moe_shape(const std::string& op, const std::string& key) {
  if (op != "w4a16_moe_gemm1" && op != "w4a16_moe_gemm2")
    throw Error("unknown MoE op '" + op + "' (w4a16_moe_gemm1, w4a16_moe_gemm2)");
  static const std::regex re("e([1-9][0-9]{0,5})_topk([1-9][0-9]{0,5})_(.*)");
  std::smatch m;
  if (!std::regex_match(key, m, re))
    throw Error("bad " + op + " shape key '" + key + "' (expected like e256_topk8_n1024_k2048_g128_bf16_sym)");
  MoeShape s;
  s.gemm = op == "w4a16_moe_gemm1" ? 1 : 2;
  s.experts = std::stoll(m[1]);
  s.top_k = std::stoll(m[2]);
  const LinearShape e = parse_linear_shape(m[3]);
  s.n = e.n;
  s.k = e.k;
  s.group = e.group;
  s.bf16 = e.bf16;
  s.asym = e.asym;
  return s;
}

void validate_moe_shape(const MoeShape& s, const std::string& layer) {
  const std::string where = s.op() + " layer '" + layer + "' (" + s.key() + "): ";
  if (s.experts < 1 || s.experts > moe::kMaxExperts)
    throw Error(where + "E = " + std::to_string(s.experts) + " experts (1 to " +
                std::to_string(moe::kMaxExperts) + " supported)");
  if (s.top_k < 1 || s.top_k > s.experts)
    throw Error(where + "top_k = " + std::to_string(s.top_k) + " must be between 1 and E = " +
                std::to_string(s.experts));
  validate_linear_shape(s.expert(), layer);
}

std::string moe_kernel_name(const MoeShape& shape, const LinearConfig& cfg) {
  return shape.op() + "_" + kind_name(cfg.kind) + "_" + shape.key() + "_" + cfg.key();
}

std::vector<LinearConfig> enumerate_moe_configs(const MoeShape& s, const ArchInfo& arch) {
  std::vector<LinearConfig> out;
  const int n = static_cast<int>(s.n), k = static_cast<int>(s.k), g = s.expert().effective_group();
  // Decode: an expert sees T * top_k / E rows on average, so up to 8 rows per block;
  // split-K puts enough blocks in flight when few experts are hit.
  for (int bm : {1, 2, 4, 8})
    for (int bn : {64, 128})
      for (int bk : {32, 64})
        for (int sk : {1, 2, 4}) {
          const int w = 4, threads = w * arch.wave_size;
          if (w4a16::decode_valid(n, k, g, bn, bk, threads, sk)) out.push_back({LinearKind::decode, bm, bn, bk, w, sk, 1});
        }
  // Wide blocks for one or two rows per expert: 8 or 16 warps of k-lanes keep as many
  // bytes in flight as split-K 4 does, reduced on chip instead of through partials in
  // memory, a fence and an atomic.
  // Narrow column blocks for a handful of tokens: at T = 1 the 64-wide ones give only
  // 8 experts x N / 64 blocks, one per multiprocessor, too few bytes in flight.
  for (int bm : {1, 2})
    for (int bk : {32, 64})
      for (int w : {4, 8, 16})
        for (int sk : {1, 2}) {
          const int threads = w * arch.wave_size;
          if (threads <= 1024 && w4a16::decode_valid(n, k, g, 32, bk, threads, sk))
            out.push_back({LinearKind::decode, bm, 32, bk, w, sk, 1});
        }
  for (int bm : {1, 2})
    for (int bn : {64, 128})
      for (int w : {8, 16}) {
        const int threads = w * arch.wave_size;
        if (threads <= 1024 && w4a16::decode_valid(n, k, g, bn, 64, threads, 1))
          out.push_back({LinearKind::decode, bm, bn, 64, w, 1, 1});
      }
  // Skinny (NVIDIA): the decode kind's few rows per expert on the tensor cores, one
  // 16- or 8-slot block per expert run (templates/w4a16_moe/gemm_skinny.h).
  append_skinny_configs(s.expert(), arch, {1, 2, 4}, {2, 4, 8}, out, {16, 8});
  // gemm2's swapped form also at block_n 32: twice the column blocks (bench/NOTES.md
  // linear v18; gemm1's fused SiLU needs whole 64-column gate and up halves).
  if (s.gemm == 2) append_skinny_configs(s.expert(), arch, {1, 2, 4}, {2, 4, 8}, out, {8}, {32});
  for (int bm : {16, 32, 64, 128})
    for (int bn : {64, 128})
      for (int bk : {32, 64})
        for (int w : {4, 8})
          for (int st : {1, 2})
            if (w4a16::prefill_valid(n, k, g, bm, bn, bk, w)) out.push_back({LinearKind::prefill, bm, bn, bk, w, 1, st});
  // Split-K matrix kernels for tens of tokens: one or two rows per hit expert leave the
  // decode kind issue-bound, and an unsplit tile walks all of K alone.
  for (int bm : {16, 32})
    for (int bn : {64, 128})
      for (int sk : {2, 4})
        if (w4a16::prefill_valid(n, k, g, bm, bn, 64, 4, sk)) out.push_back({LinearKind::prefill, bm, bn, 64, 4, sk, 2});
  append_pipelined_prefill_configs(s.expert(), arch, out);
  // The warpgroup MMA (sm_90a; templates/w4a16_moe/gemm_wgmma.h) for experts with tens
  // to hundreds of slots: 16- to 128-slot blocks (16 and 32 for the T where experts hold
  // tens of slots, which 64 would pad to twice), one, two or four warpgroups (four: 256
  // weight rows per block, so each gathered x tile feeds twice the columns), rings of 3 or 4.
  if (arch.warpgroup_mma)
    for (int bm : {16, 32, 64, 128})
      for (int w : {4, 8, 16})
        for (int bk : {64, 128})
          for (int st : {3, 4})
            if (w4a16::wgmma::valid_gathered(n, k, g, bm, 16 * w, bk, w, st, s.asym))
              out.push_back({LinearKind::wgmma, bm, 16 * w, bk, w, 1, st});
  // gemm1: the fused SiLU-and-mul epilogue (templates/w4a16_linear/silu.h) of every
  // decode config, where the launch it saves is a large part of a few tokens' layer, and
  // of the prefetching prefill ones (stages >= 2), where it saves writing and reading
  // back the N-wide product; stage-1 prefill seldom wins and is left unfused.
  if (s.gemm == 1) {
    const size_t unfused = out.size();
    for (size_t i = 0; i < unfused; ++i) {
      LinearConfig c = out[i];
      c.silu = true;
      const bool ok = c.kind == LinearKind::decode   ? w4a16::decode_silu_valid(n, c.block_n)
                      : c.kind == LinearKind::skinny ? w4a16::skinny::silu_valid(c.block_n)
                      : c.kind == LinearKind::wgmma  ? true  // gate and up halves of whole 32-column chunks
                                                     : c.stages >= 2 && w4a16::prefill_silu_valid(n, c.block_m, c.block_n,
                                                                                                  c.warps, c.stages, s.asym);
      if (ok) out.push_back(c);
    }
  }
  // gemm2: the epilogue that sums each token's top_k slots into y with atomic adds
  // (templates/w4a16_moe/gemm.h), for every decode config and the prefetching prefill
  // ones, as for the SiLU twins: it saves moe_sum's launch and the [T * top_k, H] round
  // trip, and costs atomics where a token's slots meet.
  if (s.gemm == 2) {
    const size_t plain = out.size();
    for (size_t i = 0; i < plain; ++i) {
      LinearConfig c = out[i];
      c.red = true;
      if (c.kind != LinearKind::prefill || c.stages >= 2) out.push_back(c);
    }
  }
  return out;
}

Candidate make_moe_candidate(const MoeShape& s, const LinearConfig& cfg, const ArchInfo& arch) {
  if (cfg.silu && s.gemm != 1) throw Error("the fused SiLU epilogue (" + cfg.key() + ") is for w4a16_moe_gemm1 only");
  if (cfg.red && s.gemm != 2) throw Error("the top_k reduction epilogue (" + cfg.key() + ") is for w4a16_moe_gemm2 only");
  if (cfg.swapped) throw Error("the swapped skinny form at block_m 16 (" + cfg.key() + ") is w4a16_linear's only");
  if (cfg.stream_blocks > 0)
    throw Error("a stream-K grid (" + cfg.key() + ") is w4a16_linear's only: routed rows take one block per tile");
  LinearConfig body = cfg;  // the w4a16_linear parameters: everything but the epilogue
  body.silu = body.red = false;
  Candidate c = make_linear_candidate(s.expert(), body, arch);
  c.params.erase("paired");  // gemm_skinny.cu.in: the MoE GEMMs take block_m 16 unswapped
  c.op = s.op();
  c.config = cfg.key();
  c.shape = s.key();
  c.name = moe_kernel_name(s, cfg);
  c.instance = std::string("w4a16_moe/gemm_") + c.kind + ".cu.in";
  c.params["name"] = c.name;
  c.params["config"] = c.op + " " + c.kind + " " + c.shape + " " + c.config + " " + arch.name;
  c.params["gemm"] = std::to_string(s.gemm);
  c.params["silu"] = cfg.silu ? "true" : "false";
  c.params["red"] = cfg.red ? "true" : "false";
  if (cfg.kind == LinearKind::wgmma) {  // gemm_wgmma.cu.in: never split
    c.threads = w4a16::wgmma::gathered_block_threads(cfg.warps);
    c.params["threads"] = std::to_string(c.threads);
    c.params.erase("split_k");
    c.params.erase("cluster");
    c.params.erase("stream_blocks");
  }
  return c;
}

namespace {

Candidate helper_candidate(const std::string& op, const std::string& shape, const std::string& instance,
                           int threads, const ArchInfo& arch) {
  Candidate c;
  c.op = op;
  c.kind = op.substr(4);  // align, silu_mul, sum
  c.arch = arch.name;
  c.shape = shape;
  c.config = "t" + std::to_string(threads);
  c.name = op + "_" + shape;
  c.threads = threads;
  c.instance = instance;
  c.params = {{"name", c.name}, {"config", op + " " + shape + " " + c.config + " " + arch.name},
              {"threads", std::to_string(threads)}};
  c.min_occupancy = 1;
  return c;
}

}  // namespace

Candidate make_moe_align_candidate(const ArchInfo& arch) {
  return helper_candidate("moe_align", "any", "w4a16_moe/align.cu.in", moe::kAlignThreads, arch);
}

std::vector<Candidate> make_moe_align_candidates(const ArchInfo& arch) {
  std::vector<Candidate> out = {make_moe_align_candidate(arch)};
  // The cluster form needs thread-block clusters: the sm_90 archs, the ones with wgmma.
  if (arch.warpgroup_mma) {
    Candidate c = helper_candidate("moe_align", "any", "w4a16_moe/align_cluster.cu.in", moe::kAlignThreads, arch);
    c.kind = "align_cluster";
    c.config += "_c" + std::to_string(moe::kAlignCluster);
    c.name = "moe_align_cluster_any";
    c.params["name"] = c.name;
    c.params["config"] = c.op + " " + c.shape + " " + c.config + " " + arch.name;
    c.params["cluster"] = std::to_string(moe::kAlignCluster);
    out.push_back(std::move(c));
  }
  return out;
}

Candidate make_moe_silu_mul_candidate(bool bf16, const ArchInfo& arch) {
  Candidate c = helper_candidate("moe_silu_mul", bf16 ? "any_bf16" : "any_fp16", "w4a16_moe/silu_mul.cu.in",
                                 moe::kEltThreads, arch);
  c.params["bf16"] = bf16 ? "true" : "false";
  return c;
}

Candidate make_moe_sum_candidate(bool bf16, const ArchInfo& arch) {
  Candidate c = helper_candidate("moe_sum", bf16 ? "any_bf16" : "any_fp16", "w4a16_moe/sum.cu.in",
                                 moe::kEltThreads, arch);
  c.params["bf16"] = bf16 ? "true" : "false";
  return c;
}

// As linear_workspace_floats: none for the kinds that split on chip.
int64_t moe_workspace_floats(const MoeShape& s, const LinearConfig& cfg, int64_t t) {
  if (splits_on_chip(cfg)) return 0;
  return moe::gemm_workspace_floats(cfg.split_k, s.n, moe::sorted_capacity(t, s.top_k, s.experts, cfg.block_m));
}

int64_t moe_counter_ints(const MoeShape& s, const LinearConfig& cfg, int64_t t) {
  if (splits_on_chip(cfg)) return 0;
  return moe::gemm_counter_ints(cfg.split_k, cfg.block_m, cfg.block_n, s.n,
                                moe::sorted_capacity(t, s.top_k, s.experts, cfg.block_m));
}

}  // namespace kf
