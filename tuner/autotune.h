// autotune as a library call (main.cpp parses the command line; tests drive this
// directly): make sure the pack holds the kernels, then for each shape and M bucket
// verify and time every candidate on the measurer, store each (shape, M) batch with its
// winners in one transaction, and print the winners per M range.
#pragma once
#include <csignal>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "backend.h"
#include "measurer.h"
#include "plan.h"

namespace kf {

// Cooperative stop, shared with a signal handler: `requested` is set by the handler
// (to the signal number); run_autotune sets `graceful` while it measures, the phase in
// which stopping means "finish this measurement, commit, return". Outside it (while
// compiling) the handler lets the signal kill the process: genkernels is kill-safe.
struct StopSignal {
  volatile std::sig_atomic_t requested = 0;
  volatile std::sig_atomic_t graceful = 0;
};

// 1, 2, 4, ..., 4096.
std::vector<int64_t> default_m_buckets();
// sparse_mla_decode query counts: 1, 2, 4, ..., 1024.
std::vector<int64_t> default_mla_q_buckets();

struct AutotuneOptions {
  ShapeSelection select;
  std::vector<std::string> ops;  // empty = every family (w4a16_linear, w4a16_moe_gemm1/2, sparse_mla_decode,
                                 // mxfp4_moe_gemm1/2)
  std::string arch;              // "" = the measurer's device
  std::vector<int64_t> ms = default_m_buckets();  // MoE and MXFP4 ops: token counts T
  std::vector<int64_t> mla_qs = default_mla_q_buckets();  // sparse_mla_decode: query counts Q (--m sets both)
  std::vector<RoutingArchetype> archetypes = default_archetypes();  // MoE and MXFP4 ops are timed under each
  uint64_t routing_seed = 1;     // of generate_routing: fixed, so reruns and other processes meet the same routing
  std::string db = "tuned_db/kforge.sqlite";
  int jobs = 0;                  // parallel compiles; 0 = hardware threads
  double time_budget_s = 0;      // stop (as on Ctrl-C) after this much wall time, compiling included; 0 = none
  bool warm = false;             // no L2 flush between runs (rows get cold_l2 = 0)
  // "" = off; a UTC time as stored in results.measured_at (2026-12-01T21:00:00Z): stored
  // measurements taken before it are not skipped but timed again and replaced, so that
  // every candidate a winner is picked from was timed in the same run (timings of one
  // kernel taken in different runs differed by up to 0.5 us on the H200, bench/NOTES.md
  // linear v29). A resumed run passes the same time and skips what it already redid.
  std::string retime_before;
  int reps = 50;
  // Close contenders: the passed candidates of a batch (one shape, M and routing) within
  // confirm_within of its fastest are timed confirm_rounds more times each, interleaved,
  // and store the median of their timings, so a single lucky timing does not pick the
  // winner among near-ties. 0 rounds: off.
  int confirm_rounds = 2;
  double confirm_within = 0.03;
  int max_candidates = 0;        // per shape, 0 = all
  std::string filter;            // regex on kernel names (generation and candidates)
  bool generate = true;          // compile what the pack lacks (else tune what it has)
  std::string cache_dir;         // genkernels' compile cache ("" = its default)
  std::string templates_dir;     // kernel templates ("" = the source tree's, as built)
  ToolPaths tools;
  bool progress = true;
  // Print what the run would measure (per op, shape, kind and M, after skipping what the
  // DB stores for this device) and stop there, measuring nothing: after a partial retune
  // it shows the M values some kernels still lack. With the fake measurer and its device
  // name it runs without that GPU.
  bool plan_only = false;
  StopSignal* stop = nullptr;
};

struct AutotuneStats {
  int generated = 0;  // kernels genkernels added to the pack
  int dropped = 0;    // kernels of the selection the templates no longer generate, removed
  int measured = 0;   // candidates timed (Measurer::measure calls, re-timings not counted)
  int retimed = 0;    // extra timings of close contenders (AutotuneOptions::confirm_rounds)
  int skipped = 0;    // (kernel, M) already stored for this device: not redone
  int stored = 0;     // result rows written
  int passed = 0, incorrect = 0, failed = 0, pruned = 0;
  int remaining = 0;  // measurements left when the run stopped early
  int shapes_with_winners = 0;  // of the selection, in the DB after the run
  int stop_signal = 0;       // the signal that stopped it (0: none)
  bool out_of_time = false;  // --time-budget reached
  bool device_lost = false;  // a measurement left the device unusable
};

// Throws kf::Error for bad input (unknown arch, model, op; an unreadable or foreign
// pack, left untouched) before measuring anything.
AutotuneStats run_autotune(const AutotuneOptions& opt, Measurer& measurer, std::ostream& out, std::ostream& err);

}  // namespace kf
