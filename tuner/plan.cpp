#include "plan.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "arch.h"
#include "error.h"
#include "util_family.h"

namespace kf {

namespace {

void check_selection(const ShapeSelection& sel) {
  for (const auto& dt : sel.dtypes)
    if (dt != "bf16" && dt != "fp16") throw Error("unknown dtype '" + dt + "' (bf16, fp16)");
  for (const auto& q : sel.quants)
    if (q != "sym" && q != "asym") throw Error("unknown quantisation '" + q + "' (sym, asym)");
  if (sel.group_sizes.empty() || sel.dtypes.empty() || sel.quants.empty())
    throw Error("--group-size, --dtype and --quant need at least one value each");
}

}  // namespace

std::vector<RoutingArchetype> default_archetypes() {
  return {RoutingArchetype::uniform, RoutingArchetype::zipf1, RoutingArchetype::zipf2};
}

ModelDesc resolve_model(const ShapeSelection& sel) {
  if (!sel.config_path.empty()) {
    if (!sel.model.empty()) throw Error("give --model or --config, not both");
    return model_from_hf_config(sel.config_path);
  }
  return builtin_model(sel.model.empty() ? default_model_name() : sel.model);
}

std::vector<TuneShape> tune_shapes(const ModelDesc& model, const ShapeSelection& sel) {
  check_selection(sel);
  std::vector<TuneShape> out;
  for (const auto& l : model.linears)
    for (int g : sel.group_sizes)
      for (const auto& dt : sel.dtypes)
        for (const auto& q : sel.quants) {
          const LinearShape s{l.n, l.k, g, dt == "bf16", q == "asym"};
          validate_linear_shape(s, l.layer);
          const std::string key = s.key();
          auto it = std::find_if(out.begin(), out.end(), [&](const TuneShape& t) { return t.key == key; });
          if (it == out.end()) it = out.insert(out.end(), TuneShape{s, key, {}});
          it->layers.push_back(l.layer);
        }
  return out;
}

std::vector<MoeTuneShape> moe_tune_shapes(const ModelDesc& model, const ShapeSelection& sel,
                                          const std::vector<std::string>& ops) {
  check_selection(sel);
  std::vector<MoeTuneShape> out;
  for (const auto& l : model.moe) {
    if (l.mxfp4) continue;  // the mxfp4_moe family's (mxfp4_tune_shapes)
    const int gemm = l.layer.find("gate_up") != std::string::npos ? 1
                     : l.layer.find("down") != std::string::npos  ? 2
                                                                  : 0;
    if (gemm == 0) throw Error("MoE layer '" + l.layer + "': neither gate_up nor down");
    for (int g : sel.group_sizes)
      for (const auto& dt : sel.dtypes)
        for (const auto& q : sel.quants) {
          const MoeShape s{gemm, l.experts, l.top_k, l.n, l.k, g, dt == "bf16", q == "asym"};
          if (std::find(ops.begin(), ops.end(), s.op()) == ops.end()) continue;
          validate_moe_shape(s, l.layer);
          const std::string key = s.key();
          auto it = std::find_if(out.begin(), out.end(),
                                 [&](const MoeTuneShape& t) { return t.key == key && t.op == s.op(); });
          if (it == out.end()) it = out.insert(out.end(), MoeTuneShape{s, s.op(), key, {}});
          it->layers.push_back(l.layer);
        }
  }
  return out;
}

std::vector<Mxfp4TuneShape> mxfp4_tune_shapes(const ModelDesc& model, const std::vector<std::string>& ops) {
  std::vector<Mxfp4TuneShape> out;
  for (const auto& l : model.moe) {
    if (!l.mxfp4) continue;
    const int gemm = l.layer.find("gate_up") != std::string::npos ? 1
                     : l.layer.find("down") != std::string::npos  ? 2
                                                                  : 0;
    if (gemm == 0) throw Error("MoE layer '" + l.layer + "': neither gate_up nor down");
    const Mxfp4MoeShape s{gemm, l.experts, l.top_k, l.n, l.k, l.swiglu};
    if (std::find(ops.begin(), ops.end(), s.op()) == ops.end()) continue;
    validate_mxfp4_shape(s, l.layer);
    const std::string key = s.key();
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const Mxfp4TuneShape& t) { return t.key == key && t.op == s.op(); });
    if (it == out.end()) it = out.insert(out.end(), Mxfp4TuneShape{s, s.op(), key, {}});
    it->layers.push_back(l.layer);
  }
  return out;
}

std::vector<MlaTuneShape> mla_tune_shapes(const ModelDesc& model, const ShapeSelection& sel,
                                          const std::vector<std::string>& ops) {
  check_selection(sel);
  std::vector<MlaTuneShape> out;
  if (std::find(ops.begin(), ops.end(), kMlaDecodeOp) == ops.end()) return out;
  for (const auto& l : model.mla)
    for (const auto& dt : sel.dtypes) {
      const MlaShape s{l.heads, l.topk, l.extras, dt == "bf16"};
      validate_mla_shape(s, l.layer);
      const std::string key = s.key();
      auto it = std::find_if(out.begin(), out.end(), [&](const MlaTuneShape& t) { return t.key == key; });
      if (it == out.end()) it = out.insert(out.end(), MlaTuneShape{s, kMlaDecodeOp, key, {}});
      it->layers.push_back(l.layer);
    }
  return out;
}

std::vector<std::string> expected_kernels(const std::vector<TuneShape>& shapes, const ShapeSelection& sel,
                                          const std::string& arch_name, const std::regex& filter,
                                          const std::vector<MoeTuneShape>& moe_shapes,
                                          const std::vector<MlaTuneShape>& mla_shapes,
                                          const std::vector<Mxfp4TuneShape>& mxfp4_shapes) {
  const ArchInfo& arch = arch_info(arch_name);
  std::vector<std::string> out;
  auto add = [&](const std::string& name) {
    if (std::regex_search(name, filter)) out.push_back(name);
  };
  for (const auto& ts : shapes)
    for (const auto& cfg : enumerate_linear_configs(ts.shape, arch)) add(linear_kernel_name(ts.shape, cfg));
  for (const auto& dt : sel.dtypes)
    for (const auto& q : sel.quants) add(make_linear_generic_candidate(dt == "bf16", q == "asym", arch).name);
  for (const auto& ms : moe_shapes)
    for (const auto& cfg : enumerate_moe_configs(ms.shape, arch)) add(moe_kernel_name(ms.shape, cfg));
  out.push_back(make_util_candidate(arch).name);
  // The MoE helpers come with the GEMMs: align sorts the slots while tuning, and the
  // runtime needs all three (and the tuned DB ships them) to serve a whole layer.
  if (!moe_shapes.empty()) {
    for (const Candidate& c : make_moe_align_candidates(arch)) out.push_back(c.name);
    for (const auto& dt : sel.dtypes) {
      out.push_back(make_moe_silu_mul_candidate(dt == "bf16", arch).name);
      out.push_back(make_moe_sum_candidate(dt == "bf16", arch).name);
    }
  }
  // MXFP4 layers sort their slots with align and sum in bf16 (genkernels emits the bf16
  // silu_mul with them too).
  for (const auto& ms : mxfp4_shapes)
    for (const auto& cfg : enumerate_mxfp4_configs(ms.shape, arch)) add(mxfp4_kernel_name(ms.shape, cfg));
  if (!mxfp4_shapes.empty()) {
    for (const Candidate& c : make_moe_align_candidates(arch)) out.push_back(c.name);
    for (const Candidate& c : {make_moe_silu_mul_candidate(true, arch), make_moe_sum_candidate(true, arch)})
      out.push_back(c.name);
  }
  // Split MLA kernels are timed together with the combine kernel of their dtype.
  for (const auto& ms : mla_shapes) {
    for (const auto& cfg : enumerate_mla_configs(ms.shape, arch)) add(mla_kernel_name(ms.shape, cfg));
    out.push_back(make_mla_combine_candidate(ms.shape.bf16, arch).name);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<const PackKernel*> select_candidates(const std::vector<PackKernel>& rows, const std::regex& filter,
                                                 int max_candidates) {
  std::vector<const PackKernel*> own_ok, rest;
  for (const auto& k : rows) {
    if (!std::regex_search(k.name, filter)) continue;
    (k.status == "ok" && k.kind != "generic" ? own_ok : rest).push_back(&k);
  }
  auto by_name = [](const PackKernel* a, const PackKernel* b) { return a->name < b->name; };
  std::sort(own_ok.begin(), own_ok.end(), by_name);
  if (max_candidates > 0 && static_cast<int>(own_ok.size()) > max_candidates) {
    std::vector<const PackKernel*> spread;
    // Evenly spaced, both ends included (the first and the last by name).
    const size_t n = own_ok.size(), k = static_cast<size_t>(max_candidates);
    for (size_t i = 0; i < k; ++i) spread.push_back(own_ok[k == 1 ? 0 : (i * (n - 1) + (k - 1) / 2) / (k - 1)]);
    own_ok = spread;
  }
  own_ok.insert(own_ok.end(), rest.begin(), rest.end());
  std::sort(own_ok.begin(), own_ok.end(), by_name);
  return own_ok;
}

std::string mla_split_prune_reason(const MlaShape& s, const MlaConfig& c, int64_t q, int compute_units) {
  if (c.splits <= 1) return "";
  const int64_t blocks = s.heads / c.block_h * q, half = blocks * (c.splits / 2);
  if (compute_units > 0 && half >= 2 * static_cast<int64_t>(compute_units))
    return "split KV: " +
           (c.splits == 2 ? std::string("unsplit") : "with " + std::to_string(c.splits / 2) + " splits") +
           " the grid already has " + std::to_string(half) + " blocks, 2 or more per multiprocessor (" +
           std::to_string(compute_units) + "): more splits only add partials to write and merge";
  const int64_t slots = s.topk + s.extras;
  if (slots / c.splits < c.block_k)
    return "split KV: " + std::to_string(c.splits) + " splits of " + std::to_string(slots) +
           " slots leave a split fewer than block_k = " + std::to_string(c.block_k);
  return "";
}

std::string mxfp4_block_m_prune_reason(const Mxfp4MoeShape& s, const Mxfp4Config& c, int64_t t) {
  // L = T top_k / E compared as T top_k against multiples of E (no rounding).
  const int64_t slots = t * s.top_k, bm = c.block_m;
  char why[320];
  // The decode kind (CUDA cores) reads an expert's weights once per block_m <= 8 slots:
  // only worth timing while a few slots reach each expert.
  if (c.kind == Mxfp4Kind::decode) {
    if (slots <= kMxfp4DecodeMaxLoad * s.experts) return "";
    std::snprintf(why, sizeof why,
                  "decode kind: T = %lld routes %.3g slots per expert on average, over %lld; it is timed up to T = %lld",
                  static_cast<long long>(t), static_cast<double>(slots) / s.experts,
                  static_cast<long long>(kMxfp4DecodeMaxLoad),
                  static_cast<long long>(kMxfp4DecodeMaxLoad * s.experts / s.top_k));
    return why;
  }
  const bool wgmma = c.kind == Mxfp4Kind::wgmma;
  const int64_t fill = wgmma ? kMxfp4WgmmaMinFill : kMxfp4LargeBlockMinFill;
  if (bm >= 64 && slots * fill < bm * s.experts) {
    std::snprintf(why, sizeof why,
                  "%sblock_m %lld: T = %lld routes %.3g slots per expert on average (%lld slots, %lld experts), "
                  "under block_m / %lld: the blocks would be mostly padding; %sblock_m %lld is timed from T = %lld",
                  wgmma ? "wgmma " : "", static_cast<long long>(bm), static_cast<long long>(t),
                  static_cast<double>(slots) / s.experts, static_cast<long long>(slots),
                  static_cast<long long>(s.experts), static_cast<long long>(fill), wgmma ? "wgmma " : "",
                  static_cast<long long>(bm), static_cast<long long>((bm * s.experts + fill * s.top_k - 1) / (fill * s.top_k)));
    return why;
  }
  if (bm == 16 && slots >= kMxfp4SmallBlockMaxLoad * s.experts) {
    std::snprintf(why, sizeof why,
                  "block_m 16: T = %lld routes %.3g slots per expert on average, %lld or more: each expert's weights "
                  "would be read once per 16 slots; block_m 16 is timed below T = %lld",
                  static_cast<long long>(t), static_cast<double>(slots) / s.experts,
                  static_cast<long long>(kMxfp4SmallBlockMaxLoad),
                  static_cast<long long>((kMxfp4SmallBlockMaxLoad * s.experts + s.top_k - 1) / s.top_k));
    return why;
  }
  return "";
}

Verdict static_verdict(const PackKernel& k, int64_t m, int compute_units) {
  if (k.status == "compile_error") return {"failed", "did not compile (the compiler's output is in kernels.log)"};
  if (k.status.rfind("pruned:", 0) == 0)
    return {"pruned", "genkernels pruned it (" + k.status.substr(7) + "); not run"};
  if (k.status != "ok") return {"failed", "unknown pack status '" + k.status + "'"};
  if (k.op == kMlaDecodeOp) {
    const std::string why = mla_split_prune_reason(parse_mla_shape(k.shape), parse_mla_config(k.config, k.kind), m,
                                                   compute_units);
    if (!why.empty()) return {"pruned", why};
    if (k.code_object.empty()) return {"failed", "status ok but no code object in the pack"};
    return {"", ""};
  }
  if (k.op == "mxfp4_moe_gemm1" || k.op == "mxfp4_moe_gemm2") {
    const std::string why = mxfp4_block_m_prune_reason(parse_mxfp4_shape(k.op, k.shape),
                                                       parse_mxfp4_config(k.config, k.kind), m);
    if (!why.empty()) return {"pruned", why};
    if (k.code_object.empty()) return {"failed", "status ok but no code object in the pack"};
    return {"", ""};
  }
  const bool moe_gemm = k.op == "w4a16_moe_gemm1" || k.op == "w4a16_moe_gemm2";
  if (k.kind == "skinny" && moe_gemm) {
    const MoeShape s = parse_moe_shape(k.op, k.shape);
    if (m * s.top_k > kMoeSkinnyMaxLoad * s.experts) {
      char why[256];
      std::snprintf(why, sizeof why,
                    "skinny MoE kernels are timed only while T * top_k / E <= %lld (T <= %lld): T = %lld routes %.3g "
                    "slots per expert on average, and they read an expert's weights once per block_m of its slots",
                    static_cast<long long>(kMoeSkinnyMaxLoad),
                    static_cast<long long>(kMoeSkinnyMaxLoad * s.experts / s.top_k), static_cast<long long>(m),
                    static_cast<double>(m * s.top_k) / s.experts);
      return {"pruned", why};
    }
  } else if ((k.kind == "decode" || k.kind == "skinny") && m > kDecodeMaxM) {
    return {"pruned", k.kind + " kernels are timed only for M <= " + std::to_string(kDecodeMaxM) +
                          ": they stream the weights once per block_m rows, a prefill tile reuses them"};
  }
  if (k.kind == "wgmma") {
    const int64_t bm = parse_linear_config(k.kind, k.config).block_m;
    if (moe_gemm) {
      const MoeShape s = parse_moe_shape(k.op, k.shape);
      const int64_t min_load = std::min<int64_t>(kMoeWgmmaMinLoad, bm / 4);
      if (m * s.top_k < min_load * s.experts) {
        char why[256];
        std::snprintf(why, sizeof why,
                      "block_m %lld wgmma MoE kernels are timed only from T * top_k / E >= %lld (T >= %lld): T = %lld "
                      "routes %.3g slots per expert on average, and their blocks take %lld",
                      static_cast<long long>(bm), static_cast<long long>(min_load),
                      static_cast<long long>((min_load * s.experts + s.top_k - 1) / s.top_k),
                      static_cast<long long>(m), static_cast<double>(m * s.top_k) / s.experts,
                      static_cast<long long>(bm));
        return {"pruned", why};
      }
    } else if (const int64_t from = std::min<int64_t>(kWgmmaMinM, bm / 2 + 1); m < from) {
      return {"pruned", "block_m " + std::to_string(bm) + " wgmma kernels are timed only for M >= " +
                            std::to_string(from) + ": below half their tile they are mostly padding, and the decode "
                            "and skinny kinds serve fewer"};
    }
  }
  if (k.kind == "wgmma" && m > kSplitWgmmaMaxM && k.config.find("_sk1_") == std::string::npos)
    return {"pruned", "split-K wgmma kernels are timed only for M <= " + std::to_string(kSplitWgmmaMaxM) +
                          ": they exist to fill the GPU when M has few tiles, and their fp32 partials grow with M"};
  if (k.kind == "prefill" && m > kSplitPrefillMaxM && k.config.find("_sk1_") == std::string::npos)
    return {"pruned", "split-K prefill kernels are timed only for M <= " + std::to_string(kSplitPrefillMaxM) +
                          ": they exist to put blocks in flight when M has few tiles, and their fp32 partials grow with M"};
  if (k.code_object.empty()) return {"failed", "status ok but no code object in the pack"};
  return {"", ""};
}

}  // namespace kf
