// genkernels: generate, compile and resource-check kforge kernels for a model.
//
//   genkernels --arch gfx1151                      # default model, every family
//   genkernels --arch gfx1151,sm_90a --model qwen3-35b --out ./kforge-pack
//   genkernels --arch gfx942 --config path/to/config.json --list
//   genkernels --routing-report --tokens 1,64,4096     # MoE routing, nothing compiled
#include <CLI/CLI.hpp>

#include <iostream>
#include <sstream>

#include "csv_list.h"
#include "arch.h"
#include "error.h"
#include "genkernels.h"
#include "model.h"
#include "routing_report.h"

namespace {

using kf::split_csv;

std::vector<int> parse_group_sizes(const std::string& s) {
  std::vector<int> out;
  for (const auto& g : split_csv(s)) {
    if (g == "channel" || g == "ch" || g == "-1") {
      out.push_back(0);
      continue;
    }
    try {
      size_t used = 0;
      const int v = std::stoi(g, &used);
      if (used != g.size() || v <= 0) throw std::invalid_argument(g);
      out.push_back(v);
    } catch (const std::exception&) {
      throw kf::Error("bad --group-size '" + g + "' (32, 64, 128 or channel)");
    }
  }
  if (out.empty()) throw kf::Error("--group-size needs a value");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kforge genkernels: ahead-of-time W4A16 kernel generator"};
  kf::GenOptions opt;
  std::string archs = "gfx1151", groups = "128", dtypes = "bf16", quants = "sym", ops;
  app.add_option("--arch", archs, "target archs, comma-separated: gfx1151, gfx1100, gfx942, sm_90a")
      ->capture_default_str();
  app.add_option("--model", opt.model, std::string("built-in model: qwen3-35b, deepseek-v3.2, gpt-oss-120b, gpt-oss-20b (default ") + kf::default_model_name() + ")");
  app.add_option("--config", opt.config_path, "Hugging Face config.json to derive the shapes from");
  app.add_option("--ops", ops,
                 "kernel families, comma-separated: w4a16_linear, w4a16_moe_gemm1, w4a16_moe_gemm2, w4a16_moe (both), "
                 "sparse_mla_decode, mxfp4_moe_gemm1, mxfp4_moe_gemm2, mxfp4_moe (both); default all");
  app.add_option("--group-size", groups, "quantisation group sizes: 32, 64, 128, channel")->capture_default_str();
  app.add_option("--dtype", dtypes, "activation types: bf16, fp16")->capture_default_str();
  app.add_option("--quant", quants, "weight quantisation: sym (uint4b8), asym (uint4 + zeros)")->capture_default_str();
  app.add_option("--filter", opt.filter, "only kernels whose name matches this regex");
  app.add_option("--jobs,-j", opt.jobs, "parallel compiles (default: CPU count)");
  app.add_option("--out", opt.out_dir, "output directory (pack and sources)")->capture_default_str();
  app.add_option("--cache", opt.cache_dir, "compile cache directory (default $KF_CACHE_DIR or ~/.cache/kforge)");
  app.add_option("--templates", opt.templates_dir, "kernel templates directory (default: the source tree's)");
  app.add_option("--clang", opt.tools.clang, "clang 19+ for AMD archs (default $KF_CLANG, clang++-19)");
  app.add_option("--nvcc", opt.tools.nvcc, "nvcc for sm_90a (default $KF_NVCC, nvcc)");
  app.add_flag("--list", opt.list_only, "print the candidate space without compiling");
  bool quiet = false;
  app.add_flag("--quiet,-q", quiet, "no progress bar");
  bool routing_report = false;
  std::string r_tokens, r_archetypes, r_block_m, r_seed;
  auto* rr = app.add_flag("--routing-report", routing_report,
                          "print MoE routing load and block_m padding per archetype and T, then exit");
  app.add_option("--tokens", r_tokens, "routing report: token counts (default 1,2,4,...,4096)")->needs(rr);
  app.add_option("--archetypes", r_archetypes,
                 "routing report: balanced, uniform, zipf1, zipf2, hot16 (default uniform,zipf1,zipf2)")
      ->needs(rr);
  app.add_option("--block-m", r_block_m, "routing report: block_m values (default 16,32,64,128)")->needs(rr);
  app.add_option("--seed", r_seed, "routing report: random seed (default 0)")->needs(rr);
  CLI11_PARSE(app, argc, argv);

  try {
    if (routing_report) {
      // Same model choice as a generation run, but nothing is compiled or written.
      if (!opt.config_path.empty() && !opt.model.empty()) throw kf::Error("give --model or --config, not both");
      const kf::ModelDesc model = !opt.config_path.empty() ? kf::model_from_hf_config(opt.config_path)
                                  : kf::builtin_model(opt.model.empty() ? kf::default_model_name() : opt.model);
      kf::print_routing_report(std::cout, model, r_tokens, r_archetypes, r_block_m, r_seed);
      return 0;
    }
    opt.archs = kf::parse_arch_list(archs);
    opt.group_sizes = parse_group_sizes(groups);
    opt.dtypes = split_csv(dtypes);
    opt.quants = split_csv(quants);
    opt.ops = split_csv(ops);
    opt.progress = !quiet;
    const kf::GenStats stats = kf::run_genkernels(opt, std::cout, std::cerr);
    return stats.candidates > 0 && stats.ok == 0 && !opt.list_only ? 3 : 0;
  } catch (const kf::Error& e) {
    std::cerr << "genkernels: error: " << e.what() << "\n";
    return 2;
  }
}
