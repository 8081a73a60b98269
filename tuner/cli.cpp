#include "csv_list.h"
#include "cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "arch.h"
#include "autotune.h"
#include "error.h"
#include "hip_measurer.h"
#include "model.h"
#include "pack.h"
#include "results_db.h"
#include "vllm_export.h"

namespace kf {

namespace {

StopSignal g_stop;

// First SIGINT/SIGTERM while measuring: finish the measurement, commit, exit 128+sig.
// A second one, or one while compiling (genkernels is kill-safe), kills at once.
extern "C" void on_signal(int sig) {
  if (!g_stop.graceful || g_stop.requested) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop.requested = sig;
  static const char msg[] =
      "\nautotune: stopping after the current measurement (signal again to stop at once, losing this batch)\n";
  const ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

void install_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

using kf::split_csv;

// --measurer auto: CUDA when a CUDA GPU is present, else HIP; no GPU from either is
// NoGpuError naming both reasons. A GPU of either kind that cannot be used (bad
// --device, an arch kforge has no target for) is an error, not a reason to try the other.
std::unique_ptr<Measurer> make_gpu_measurer(const std::string& kind, const CudaOptions& cuda) {
  const HipOptions hip{cuda.device, cuda.seed, cuda.host_threads, cuda.hang_timeout_s};
  if (kind == "cuda") return make_cuda_measurer(cuda);
  if (kind == "hip") return make_hip_measurer(hip);
  std::string cuda_why;
  try {
    return make_cuda_measurer(cuda);
  } catch (const NoGpuError& e) {
    cuda_why = e.what();
  }
  try {
    return make_hip_measurer(hip);
  } catch (const NoGpuError& e) {
    throw NoGpuError("CUDA: " + cuda_why + "; " + e.what());
  }
}

int64_t parse_int(const std::string& v, const std::string& what) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw Error("bad " + what + " value '" + v + "'");
}

std::vector<int> parse_group_sizes(const std::string& s) {
  std::vector<int> out;
  for (const auto& g : split_csv(s))
    out.push_back(g == "channel" || g == "ch" || g == "-1" ? 0 : static_cast<int>(parse_int(g, "--group-size")));
  if (out.empty()) throw Error("--group-size needs a value");
  return out;
}

}  // namespace

// --export-vllm: no measuring, so no GPU; the arch is --arch or the one the DB has MoE
// winners for.
int export_vllm(const AutotuneOptions& opt, const std::string& dir) {
  Pack::open(opt.db, false);  // refuses (untouched) what is not a kforge pack; migrates version 1
  std::string arch = opt.arch;
  if (arch.empty()) {
    sqlite3* db = nullptr;
    std::vector<std::string> archs;
    if (sqlite3_open_v2(opt.db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT DISTINCT arch FROM winners WHERE op = 'w4a16_moe_gemm1' AND routing = ''",
                             -1, &st, nullptr) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) archs.push_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    if (archs.size() != 1)
      throw Error("--export-vllm: the DB has MoE winners for " + std::to_string(archs.size()) +
                  " archs; say which with --arch");
    arch = archs.front();
  }
  const auto shapes = moe_tune_shapes(resolve_model(opt.select), opt.select, resolve_ops(opt.ops));
  const auto written = export_vllm_configs(opt.db, arch, shapes, !opt.warm, dir, std::cout);
  if (written.empty()) {
    std::cerr << "autotune: error: no tuned w4a16_moe_gemm1 winners for " << arch << " in " << opt.db
              << " to export\n";
    return 1;
  }
  return 0;
}

// --recompute-winners: no measuring, so no GPU.
int recompute_winners(const AutotuneOptions& opt) {
  Pack::open(opt.db, false);  // refuses (untouched) what is not a kforge pack; migrates version 1
  const ResultsDb::Recomputed done = ResultsDb::open(opt.db).recompute_winners();
  std::cout << "autotune: recomputed the winners of " << done.keys << " (arch, device, op, shape, routing) keys in "
            << opt.db << " from its stored measurements\n";
  if (done.kept > 0)
    std::cout << "autotune: kept the winners of " << done.kept
              << " keys as they were: their kernels' own measurements are gone (dropped when those kernels were"
                 " rebuilt), so recomputing would pick among the rows left; tune that device again to refresh them\n";
  return 0;
}

int autotune_main(int argc, char** argv) {
  CLI::App app{"kforge autotune: verify and time every kernel of a pack on this GPU, store the winners per M range"};
  AutotuneOptions opt;
  std::string groups = "128", dtypes = "bf16", quants = "sym", ops, ms, measurer_kind = "auto";
  std::string archetypes = "uniform,zipf1,zipf2", export_dir;
  uint64_t seed = std::random_device{}();
  CudaOptions cuda;
  FakeOptions fake;
  bool quiet = false;
  app.add_option("--model", opt.select.model, std::string("built-in model (default ") + default_model_name() + ")");
  app.add_option("--config", opt.select.config_path, "Hugging Face config.json to derive the shapes from");
  app.add_option("--arch", opt.arch, "target arch (default: the GPU's, e.g. sm_90a for compute capability 9.0, gfx942)");
  app.add_option("--ops", ops,
                 "kernel families, comma-separated: w4a16_linear, w4a16_moe_gemm1, w4a16_moe_gemm2, w4a16_moe (both),"
                 " sparse_mla_decode, mxfp4_moe_gemm1, mxfp4_moe_gemm2, mxfp4_moe (both); default all");
  app.add_option("--m", ms,
                 "M buckets (MoE and MXFP4 MoE: token counts T, sparse_mla_decode: query counts Q) to tune,"
                 " comma-separated (default 1,2,4,...,4096; for sparse_mla_decode 1,2,4,...,1024)");
  app.add_option("--archetypes", archetypes,
                 "routing archetypes the MoE and MXFP4 MoE ops are timed under (uniform, zipf1, zipf2, balanced,"
                 " hot16)")
      ->capture_default_str();
  app.add_option("--routing-seed", opt.routing_seed, "seed of the synthetic routings")->capture_default_str();
  app.add_option("--export-vllm", export_dir,
                 "write the tuned w4a16 MoE winners as vLLM fused-MoE config JSON files into this directory (no"
                 " measuring; the MXFP4 ops are not exported)");
  bool rewin = false;
  app.add_flag("--recompute-winners", rewin,
               "recompute every winner from the stored measurements, over the kernels whose code object the DB"
               " holds (no measuring, no GPU); a key whose winners lost their own measurements keeps them");
  app.add_option("--db", opt.db, "tuning DB = kernel pack; what it lacks is generated into it")->capture_default_str();
  app.add_option("--jobs,-j", opt.jobs, "parallel compiles and reference threads (default: CPU count)");
  app.add_option("--time-budget", opt.time_budget_s, "stop after this many seconds (a rerun continues)");
  app.add_flag("--warm", opt.warm, "no L2 flush between timed runs (stored as cold_l2 = 0)");
  app.add_flag("--plan", opt.plan_only,
               "print what the run would measure (per op, shape, kind and M, skipping what the DB stores for this"
               " device) and measure nothing; without the GPU: --measurer fake --fake-device NAME. It first brings"
               " the DB's kernels up to date as a run does (a rebuilt kernel whose code may differ loses its"
               " measurements); --no-generate leaves the DB as it is");
  app.add_option("--retime-before", opt.retime_before,
                 "a UTC time like 2026-12-01T21:00:00Z: stored measurements taken before it are timed again and"
                 " replaced, so a winner is picked among timings of one run (a rerun with the same time resumes)");
  app.add_option("--group-size", groups, "quantisation group sizes: 32, 64, 128, channel")->capture_default_str();
  app.add_option("--dtype", dtypes, "activation types: bf16, fp16")->capture_default_str();
  app.add_option("--quant", quants, "weight quantisation: sym, asym")->capture_default_str();
  app.add_option("--reps", opt.reps, "timed runs per kernel and M (median and min are stored)")->capture_default_str();
  app.add_option("--confirm-rounds", opt.confirm_rounds,
                 "extra timings of each close contender (within --confirm-within of a batch's fastest), which"
                 " then stores the median of its timings; 0 = off")
      ->capture_default_str();
  app.add_option("--confirm-within", opt.confirm_within, "what counts as a close contender: this fraction of the fastest")
      ->capture_default_str();
  app.add_option("--seed", seed, "seed of the random inputs (default: random, printed)");
  app.add_option("--max-candidates", opt.max_candidates, "per shape, for quick runs (0 = all)")->capture_default_str();
  app.add_option("--filter", opt.filter, "only kernels whose name matches this regex");
  app.add_option("--measurer", measurer_kind,
                 "auto (CUDA if a CUDA GPU is present, else HIP), cuda, hip, or fake (synthetic times, for tests and CI)")
      ->check(CLI::IsMember({"auto", "cuda", "hip", "fake"}))
      ->capture_default_str();
  app.add_option("--device", cuda.device, "GPU ordinal (after CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES)")->capture_default_str();
  app.add_option("--hang-timeout", cuda.hang_timeout_s, "seconds after which a running kernel counts as hung")
      ->capture_default_str();
  bool no_generate = false;
  app.add_flag("--no-generate", no_generate, "tune what the pack has; compile nothing");
  app.add_option("--cache", opt.cache_dir, "compile cache directory (default $KF_CACHE_DIR or ~/.cache/kforge)");
  app.add_option("--templates", opt.templates_dir, "kernel templates directory (default: the source tree's)");
  app.add_option("--clang", opt.tools.clang, "clang 19+ for AMD archs (default $KF_CLANG, clang++-19)");
  app.add_option("--nvcc", opt.tools.nvcc, "nvcc for sm_90a (default $KF_NVCC, nvcc)");
  app.add_flag("--quiet,-q", quiet, "no progress bar");
  const std::string testing = "Testing (--measurer fake)";
  app.add_option("--fake-incorrect", fake.incorrect, "regex: these kernels verify as incorrect")->group(testing);
  app.add_option("--fake-failed", fake.failed, "regex: these kernels fail to launch")->group(testing);
  app.add_option("--fake-die-after", fake.die_after, "exit 137 (as if killed) after N measurements")->group(testing);
  app.add_option("--fake-delay-ms", fake.delay_ms, "sleep per measurement")->group(testing);
  app.add_option("--fake-device", fake.device, "device name the fake reports")->group(testing);
  CLI11_PARSE(app, argc, argv);

  try {
    opt.select.group_sizes = parse_group_sizes(groups);
    opt.select.dtypes = split_csv(dtypes);
    opt.select.quants = split_csv(quants);
    opt.ops = split_csv(ops);
    opt.archetypes = parse_routing_archetypes(archetypes);
    if (!ms.empty()) {
      opt.ms.clear();
      for (const auto& m : split_csv(ms)) opt.ms.push_back(parse_int(m, "--m"));
      opt.mla_qs = opt.ms;
    }
    opt.generate = !no_generate;
    opt.progress = !quiet;
    opt.stop = &g_stop;
    if (!opt.arch.empty()) arch_info(opt.arch);  // an unknown --arch is an error even without a GPU
    if (!export_dir.empty()) return export_vllm(opt, export_dir);
    if (rewin) return recompute_winners(opt);

    std::unique_ptr<Measurer> measurer;
    if (measurer_kind == "fake") {
      fake.arch = opt.arch.empty() ? "sm_90a" : opt.arch;
      measurer = std::make_unique<FakeMeasurer>(fake);
    } else {
      cuda.seed = seed;
      cuda.host_threads = opt.jobs;
      measurer = make_gpu_measurer(measurer_kind, cuda);
    }
    std::cout << "autotune: seed " << seed << "\n";
    install_handlers();
    const AutotuneStats st = run_autotune(opt, *measurer, std::cout, std::cerr);
    if (st.stop_signal) return 128 + st.stop_signal;
    if (st.device_lost) return 1;
    if (st.measured > 0 && st.passed == 0 && st.shapes_with_winners == 0) {
      std::cerr << "autotune: error: no candidate passed verification\n";
      return 1;
    }
    return 0;
  } catch (const NoGpuError& e) {
    std::cerr << "autotune: no GPU: " << e.what() << "; nothing was measured\n";
    return 77;
  } catch (const Error& e) {
    std::cerr << "autotune: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "autotune: internal error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace kf
