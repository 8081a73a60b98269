// genkernels as a library call: model -> shapes -> candidates -> generated sources ->
// compiled, resource-checked code objects in the pack. main.cpp only parses the
// command line; tests drive this directly.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "backend.h"

namespace kf {

struct GenOptions {
  std::vector<std::string> archs = {"gfx1151"};
  std::string model;                         // built-in name ("" = default) ...
  std::string config_path;                   // ... or a Hugging Face config.json
  std::vector<std::string> ops;              // empty = every family
  std::vector<int> group_sizes = {128};      // 0 = per-channel
  std::vector<std::string> dtypes = {"bf16"};
  std::vector<std::string> quants = {"sym"};
  std::string filter;                        // regex on kernel names ("" = all)
  std::vector<std::string> names;            // exactly these kernels (empty = all); with filter
  // A pack whose kernels built from the same sources, templates and compiler are
  // skipped ("" = none): autotune builds only what its DB lacks or holds stale.
  std::string skip_current_in;
  int jobs = 0;                              // 0 = hardware threads
  std::string out_dir = "kforge-pack";
  std::string cache_dir;                     // "" = default_cache_dir()
  std::string templates_dir;                 // "" = the source tree's templates/
  ToolPaths tools;
  bool list_only = false;
  bool progress = true;
};

struct GenStats {
  int candidates = 0, compiled = 0, cached = 0, compile_errors = 0, pruned = 0, ok = 0;
  int stale_results = 0;  // measurements dropped because their kernel was rebuilt differently
  int current = 0;        // skipped: skip_current_in holds them as they would be built
  std::vector<std::string> names;  // the kernels this run built (compiled or from the cache)
  double seconds = 0;
};

// Names of the kernel families genkernels knows: w4a16_linear, w4a16_moe_gemm1,
// w4a16_moe_gemm2.
std::vector<std::string> known_ops();
// `ops` as given on a command line, with "w4a16_moe" expanded to both MoE GEMMs and
// every name checked; empty = all. Throws kf::Error naming an unknown op.
std::vector<std::string> resolve_ops(const std::vector<std::string>& ops);

// Runs the whole job; prints the candidate list (list_only) or the summary table to
// `out`, progress to `err`. Throws kf::Error for bad input before anything is written.
GenStats run_genkernels(const GenOptions& opt, std::ostream& out, std::ostream& err);

}  // namespace kf
