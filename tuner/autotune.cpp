#include "autotune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <climits>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <tuple>

#include "arch.h"
#include "device_plan.h"
#include "error.h"
#include "genkernels.h"
#include "mxfp4_problem.h"
#include "pack.h"
#include "pack_setup.h"
#include "report.h"
#include "results_db.h"

namespace kf {

namespace {

using Clock = std::chrono::steady_clock;

// One shape's candidates and which of them run at some M (with the largest such M).
struct ShapePlan {
  TuneShape ts;
  MoeTuneShape moe;  // MoE shapes: ts is unused
  MlaTuneShape mla;  // MLA shapes: ts is unused
  Mxfp4TuneShape mx;  // MXFP4 shapes: ts is unused
  bool is_moe = false, is_mla = false, is_mxfp4 = false;
  std::vector<PackKernel> rows;  // owns what `candidates` points to
  std::vector<const PackKernel*> candidates;
  std::vector<PlannedKernel> planned;
  const std::string& op() const { return is_moe ? moe.op : is_mla ? mla.op : is_mxfp4 ? mx.op : ts_op; }
  const std::string& key() const { return is_moe ? moe.key : is_mla ? mla.key : is_mxfp4 ? mx.key : ts.key; }
  std::string ts_op = "w4a16_linear";
};

void validate(const AutotuneOptions& opt) {
  resolve_ops(opt.ops);  // an unknown op is an error naming the known ones
  if (opt.archetypes.empty()) throw Error("--archetypes needs at least one value");
  if (opt.reps < 1) throw Error("--reps must be at least 1");
  if (opt.confirm_rounds < 0) throw Error("--confirm-rounds must be at least 0 (got " + std::to_string(opt.confirm_rounds) + ")");
  if (!(opt.confirm_within >= 0 && opt.confirm_within <= 1))
    throw Error("--confirm-within must be a fraction in [0, 1] (got " + std::to_string(opt.confirm_within) + ")");
  if (opt.max_candidates < 0) throw Error("--max-candidates must not be negative");
  if (opt.time_budget_s < 0) throw Error("--time-budget must not be negative");
  // The form results.measured_at is stored in, so that text order is time order.
  static const std::regex utc("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z");
  if (!opt.retime_before.empty() && !std::regex_match(opt.retime_before, utc))
    throw Error("--retime-before '" + opt.retime_before + "' is not a UTC time like 2026-12-01T21:00:00Z");
  for (const auto* list : {&opt.ms, &opt.mla_qs}) {
    if (list->empty()) throw Error("--m needs at least one value");
    for (int64_t m : *list)
      if (m < 1 || m > INT_MAX) throw Error("--m value " + std::to_string(m) + " out of range (1 to " +
                                            std::to_string(INT_MAX) + ")");
  }
}

std::regex compile_filter(const std::string& f) {
  try {
    return std::regex(f.empty() ? ".*" : f);
  } catch (const std::regex_error& e) {
    throw Error("bad --filter regex '" + f + "': " + e.what());
  }
}

void plan_candidates(ShapePlan& p, const AutotuneOptions& opt, const std::regex& filter,
                     const std::vector<int64_t>& ms, int compute_units) {
  p.candidates = select_candidates(p.rows, filter, opt.max_candidates);
  for (const PackKernel* k : p.candidates) {
    int64_t max_m = 0;
    for (int64_t m : ms)
      if (static_verdict(*k, m, compute_units).disposition.empty()) max_m = std::max(max_m, m);
    if (max_m > 0) p.planned.push_back({k, max_m});
  }
}

ShapePlan plan_shape(const Pack& pack, const TuneShape& ts, const std::string& arch, const AutotuneOptions& opt,
                     const std::regex& filter, const std::vector<int64_t>& ms) {
  ShapePlan p;
  p.ts = ts;
  // Keys and arch are validated identifiers ([a-z0-9_]), safe to inline.
  p.rows = pack.kernels("arch = '" + arch + "' AND op = 'w4a16_linear' AND shape IN ('" + ts.key + "', '" +
                        linear_generic_shape_key(ts.shape.bf16, ts.shape.asym) + "')");
  plan_candidates(p, opt, filter, ms, 0);
  return p;
}

// MoE: the shape's own kernels only (no generic MoE kernel exists).
ShapePlan plan_moe_shape(const Pack& pack, const MoeTuneShape& ms_, const std::string& arch,
                         const AutotuneOptions& opt, const std::regex& filter, const std::vector<int64_t>& ts) {
  ShapePlan p;
  p.is_moe = true;
  p.moe = ms_;
  p.rows = pack.kernels("arch = '" + arch + "' AND op = '" + ms_.op + "' AND shape = '" + ms_.key + "'");
  // gemm1: every unfused candidate is followed by moe_silu_mul in a layer, so its batches
  // time moe_silu_mul too, whatever the filter and --max-candidates, for the fused ones
  // to be compared with the whole step (gemm1_step_times, winners.h); gemm2 likewise
  // with moe_sum, for the kernels that sum over top_k themselves (gemm2_step_times). The
  // helper's row goes at the end of rows, reserved now: candidates point into rows.
  const std::vector<PackKernel> helper =
      pack.kernels("arch = '" + arch + "' AND op = '" + (ms_.shape.gemm == 1 ? "moe_silu_mul" : "moe_sum") +
                   "' AND shape = '" + (ms_.shape.bf16 ? "any_bf16" : "any_fp16") + "' AND status = 'ok'");
  p.rows.reserve(p.rows.size() + 1);
  plan_candidates(p, opt, filter, ts, 0);
  if (!helper.empty() && !p.planned.empty()) {
    p.rows.push_back(helper.front());
    p.candidates.push_back(&p.rows.back());
    p.planned.push_back({&p.rows.back(), *std::max_element(ts.begin(), ts.end())});  // runs at every T
  }
  return p;
}

// MLA: the shape's decode kernels (the combine kernel is run with the split ones).
ShapePlan plan_mla_shape(const Pack& pack, const MlaTuneShape& s, const std::string& arch, const AutotuneOptions& opt,
                         const std::regex& filter, const std::vector<int64_t>& qs, int compute_units) {
  ShapePlan p;
  p.is_mla = true;
  p.mla = s;
  p.rows = pack.kernels("arch = '" + arch + "' AND op = '" + s.op + "' AND shape = '" + s.key + "'");
  plan_candidates(p, opt, filter, qs, compute_units);
  return p;
}

// MXFP4: the shape's own kernels (align is run with each; there is no generic kernel).
ShapePlan plan_mxfp4_shape(const Pack& pack, const Mxfp4TuneShape& s, const std::string& arch,
                           const AutotuneOptions& opt, const std::regex& filter, const std::vector<int64_t>& ts) {
  ShapePlan p;
  p.is_mxfp4 = true;
  p.mx = s;
  p.rows = pack.kernels("arch = '" + arch + "' AND op = '" + s.op + "' AND shape = '" + s.key + "'");
  plan_candidates(p, opt, filter, ts, 0);
  return p;
}

// What one batch measures: the candidates of a shape at one M (T) under one routing.
struct BatchJob {
  const ShapePlan& plan;
  TuneKey key;
  int64_t m;
  std::string label;  // progress line
  std::function<Measurement(const PackKernel&)> measure;
};

ResultRow make_row(const PackKernel& k, int64_t m, const Measurement& r) {
  ResultRow row;
  row.kernel = k.name;
  row.compiler = k.compiler;
  row.m = m;
  row.disposition = r.disposition;
  row.median_us = r.median_us;
  row.min_us = r.min_us;
  row.reps = r.disposition == "passed" ? r.reps : 0;
  row.max_rel_err = r.max_rel_err;
  row.message = r.message;
  return row;
}

void count(AutotuneStats& st, const std::vector<ResultRow>& rows) {
  for (const auto& r : rows) {
    ++st.stored;
    if (r.disposition == "passed") ++st.passed;
    else if (r.disposition == "incorrect") ++st.incorrect;
    else if (r.disposition == "failed") ++st.failed;
    else ++st.pruned;
  }
}

// The measuring loop's state; batch() is one (shape, M).
struct Run {
  const AutotuneOptions& opt;
  Measurer& measurer;
  ResultsDb& db;
  const Provenance& prov;
  AutotuneStats& st;
  MeasureProgress& progress;
  std::ostream& err;
  Clock::time_point t0;
  bool cold;
  int compute_units;  // the device's, for the MLA split pruning

  // Checked before each measurement, never during one: a stop always leaves whole rows.
  bool stop_now() {
    if (opt.stop && opt.stop->requested) {
      st.stop_signal = opt.stop->requested;
      return true;
    }
    const double used = std::chrono::duration<double>(Clock::now() - t0).count();
    if (opt.time_budget_s > 0 && used >= opt.time_budget_s) st.out_of_time = true;
    return st.out_of_time;
  }

  // Records every candidate of `job.plan` at `job.m` not yet stored for this device (and
  // routing), then stores the batch with the shape's new winners in one transaction.
  // `begin` runs once per shape, before its first measurement. False: stop the run.
  bool batch(const BatchJob& job, bool& begun, const std::function<void()>& begin) {
    const ShapePlan& p = job.plan;
    const int64_t m = job.m;
    const TuneKey& key = job.key;
    // Re-read per batch: another process on this DB may have measured some meanwhile.
    const auto done = db.stored(prov, key, opt.retime_before);
    std::vector<ResultRow> rows;
    std::vector<const PackKernel*> timed;  // rows[i] is timed[i]'s (null: not timed here)
    bool go_on = true;
    try {
      for (const PackKernel* k : p.candidates) {
        if (done.count({k->name, m})) {
          ++st.skipped;
          continue;
        }
        const Verdict v = static_verdict(*k, m, compute_units);
        if (!v.disposition.empty()) {
          Measurement r;
          r.disposition = v.disposition;
          r.message = v.message;
          rows.push_back(make_row(*k, m, r));
          timed.push_back(nullptr);
          continue;
        }
        if (stop_now()) {
          go_on = false;
          break;
        }
        if (!begun) begin();  // device buffers only when needed
        begun = true;
        const Measurement r = job.measure(*k);
        ++st.measured;
        rows.push_back(make_row(*k, m, r));
        timed.push_back(k);
        progress.tick(job.label);
        if (r.fatal) {
          err << "\nautotune: " << k->name << " at " << job.label << ": " << r.message << "\n";
          st.device_lost = true;
          go_on = false;
          break;
        }
      }
      if (go_on) go_on = confirm(job, timed, rows);
    } catch (...) {
      if (!rows.empty()) db.store(prov, key, rows);  // what was measured stays measured
      throw;
    }
    if (!rows.empty()) {
      db.store(prov, key, rows);
      count(st, rows);
    }
    return go_on;
  }

  // The batch's close contenders (passed, within opt.confirm_within of its fastest), timed
  // opt.confirm_rounds more times each in interleaved rounds; each row then holds the
  // median of its timings, the least of their minima and the sum of their reps. A
  // contender that fails or comes out wrong when timed again keeps that disposition. A
  // stop between timings keeps the medians of what was timed. False: stop the run.
  bool confirm(const BatchJob& job, const std::vector<const PackKernel*>& timed, std::vector<ResultRow>& rows) {
    if (opt.confirm_rounds < 1) return true;
    double best = INFINITY;
    for (const ResultRow& r : rows)
      if (r.disposition == "passed") best = std::min(best, r.median_us);
    std::vector<size_t> close;
    for (size_t i = 0; i < rows.size(); ++i)
      if (timed[i] && rows[i].disposition == "passed" && rows[i].median_us <= best * (1 + opt.confirm_within))
        close.push_back(i);
    if (close.size() < 2) return true;
    std::vector<std::vector<double>> medians(close.size());
    for (size_t c = 0; c < close.size(); ++c) medians[c].push_back(rows[close[c]].median_us);
    bool go_on = true;
    for (int round = 0; round < opt.confirm_rounds && go_on; ++round)
      for (size_t c = 0; c < close.size(); ++c) {
        ResultRow& row = rows[close[c]];
        if (row.disposition != "passed") continue;
        if (stop_now()) {
          go_on = false;
          break;
        }
        const Measurement r = job.measure(*timed[close[c]]);
        ++st.retimed;
        if (r.disposition != "passed" || r.fatal) {
          row = make_row(*timed[close[c]], job.m, r);
          if (r.fatal) {
            err << "\nautotune: " << row.kernel << " at " << job.label << " (timed again): " << r.message << "\n";
            st.device_lost = true;
            go_on = false;
            break;
          }
          continue;
        }
        medians[c].push_back(r.median_us);
        row.min_us = std::min(row.min_us, r.min_us);
        row.reps += r.reps;
      }
    for (size_t c = 0; c < close.size(); ++c) {
      ResultRow& row = rows[close[c]];
      if (row.disposition == "passed") row.median_us = timing_stats(medians[c]).median;
    }
    return go_on;
  }
};

}  // namespace

std::vector<int64_t> default_m_buckets() {
  std::vector<int64_t> out;
  for (int64_t m = 1; m <= 4096; m *= 2) out.push_back(m);
  return out;
}

std::vector<int64_t> default_mla_q_buckets() {
  std::vector<int64_t> out;
  for (int64_t q = 1; q <= 1024; q *= 2) out.push_back(q);
  return out;
}

AutotuneStats run_autotune(const AutotuneOptions& opt, Measurer& measurer, std::ostream& out, std::ostream& err) {
  const auto t0 = Clock::now();
  AutotuneStats st;
  validate(opt);
  const DeviceInfo& dev = measurer.device();
  const std::string arch = opt.arch.empty() ? dev.arch : opt.arch;
  arch_info(arch);  // unknown arch: error naming the supported ones
  if (arch != dev.arch)
    throw Error("--arch " + arch + " does not match the device " + dev.name + " (" + dev.arch + ")");
  auto sorted = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  const std::vector<int64_t> ms = sorted(opt.ms), qs = sorted(opt.mla_qs);
  const std::regex filter = compile_filter(opt.filter);
  const std::vector<std::string> ops = resolve_ops(opt.ops);
  const bool want_linear = std::count(ops.begin(), ops.end(), "w4a16_linear");
  const ModelDesc model = resolve_model(opt.select);
  const std::vector<TuneShape> shapes = want_linear ? tune_shapes(model, opt.select) : std::vector<TuneShape>{};
  const std::vector<MoeTuneShape> moe_shapes = moe_tune_shapes(model, opt.select, ops);
  const std::vector<MlaTuneShape> mla_shapes = mla_tune_shapes(model, opt.select, ops);
  const std::vector<Mxfp4TuneShape> mx_shapes = mxfp4_tune_shapes(model, ops);

  const PackSetup setup = ensure_pack(opt, arch, shapes, moe_shapes, mla_shapes, mx_shapes, filter, out, err);
  st.generated = setup.generated;
  st.dropped = setup.dropped;
  const Pack pack = Pack::open(opt.db, false);
  ResultsDb db = ResultsDb::open(opt.db);
  if (setup.dropped > 0) {
    // Their winners went with them: every range is taken again from what can still run.
    const ResultsDb::Recomputed done = db.recompute_winners();
    err << "autotune: removed " << setup.dropped << " kernel" << (setup.dropped == 1 ? "" : "s")
        << " of this selection that the templates no longer generate (their measurements stay as history);"
           " winners recomputed without them";
    if (done.kept > 0)
      err << " (" << done.kept << " keys kept as they were: their winners can still run but lost their own"
             " measurements to earlier rebuilds)";
    err << "\n";
  }
  const bool cold = !opt.warm;
  const std::vector<PackKernel> util =
      pack.kernels("arch = '" + arch + "' AND name = 'kf_util_stream_read' AND status = 'ok'");
  if (cold && util.empty())
    throw Error("the pack has no usable kf_util_stream_read for " + arch +
                " (it flushes L2 between runs): run without --no-generate, or time warm with --warm");
  measurer.set_util_kernel(util.empty() ? nullptr : &util.front());
  const std::vector<PackKernel> align =
      pack.kernels("arch = '" + arch + "' AND name = 'moe_align_any' AND status = 'ok'");
  if ((!moe_shapes.empty() || !mx_shapes.empty()) && align.empty())
    err << "autotune: warning: the pack has no usable moe_align_any for " << arch
        << ": every MoE kernel will be recorded failed\n";
  measurer.set_moe_align_kernel(align.empty() ? nullptr : &align.front());
  // Split MLA kernels run with the combine kernel of their dtype.
  const std::vector<PackKernel> combine =
      pack.kernels("arch = '" + arch + "' AND op = '" + kMlaCombineOp + "' AND status = 'ok'");
  auto combine_of = [&](bool bf16) -> const PackKernel* {
    const std::string name = make_mla_combine_candidate(bf16, arch_info(arch)).name;
    for (const auto& k : combine)
      if (k.name == name) return &k;
    for (const auto& s : mla_shapes)
      if (s.shape.bf16 == bf16) {
        err << "autotune: warning: the pack has no usable " << name << " for " << arch
            << ": every split sparse_mla_decode kernel of that dtype will be recorded failed\n";
        break;
      }
    return nullptr;
  };
  measurer.set_mla_combine_kernels(combine_of(true), combine_of(false));
  const Provenance prov{arch, dev.name, dev.driver, dev.runtime, KF_VERSION};

  std::vector<ShapePlan> plans;
  std::vector<std::string> routings;  // MoE and MXFP4: one batch per (T, archetype)
  for (RoutingArchetype a : opt.archetypes) routings.push_back(routing_archetype_name(a));
  int todo = 0;
  // (op, shape, kind) -> M -> measurements to make (over every routing), for --plan.
  std::map<std::tuple<std::string, std::string, std::string>, std::map<int64_t, int>> todo_by;
  auto count_todo = [&](const ShapePlan& p, const std::string& routing, const std::vector<int64_t>& buckets) {
    // As the batches see it: with --retime-before, what was stored before that time is to do.
    const auto done = db.stored(prov, {p.op(), p.key(), cold, routing}, opt.retime_before);
    for (const auto& pk : p.planned)
      for (int64_t m : buckets)
        if (m <= pk.max_m && static_verdict(*pk.kernel, m, dev.compute_units).disposition.empty() &&
            !done.count({pk.kernel->name, m})) {
          ++todo;
          ++todo_by[{p.op(), p.key(), pk.kernel->kind}][m];
        }
  };
  for (const auto& ts : shapes) {
    plans.push_back(plan_shape(pack, ts, arch, opt, filter, ms));
    count_todo(plans.back(), "", ms);
  }
  for (const auto& mts : moe_shapes) {
    plans.push_back(plan_moe_shape(pack, mts, arch, opt, filter, ms));
    for (const auto& r : routings) count_todo(plans.back(), r, ms);
  }
  for (const auto& s : mx_shapes) {
    plans.push_back(plan_mxfp4_shape(pack, s, arch, opt, filter, ms));
    for (const auto& r : routings) count_todo(plans.back(), r, ms);
  }
  for (const auto& s : mla_shapes) {
    plans.push_back(plan_mla_shape(pack, s, arch, opt, filter, qs, dev.compute_units));
    count_todo(plans.back(), "", qs);
  }
  out << "autotune: " << dev.name << " (" << arch << ", driver " << dev.driver << ", " << dev.runtime << ", L2 "
      << dev.l2_bytes / (1 << 20) << " MiB)  db " << opt.db << "\n"
      << "autotune: " << shapes.size() << " linear shapes x " << ms.size() << " M";
  if (!moe_shapes.empty()) {
    out << ", " << moe_shapes.size() << " MoE shapes x " << ms.size() << " T x " << routings.size()
        << " routings (";
    for (size_t i = 0; i < routings.size(); ++i) out << (i ? "," : "") << routings[i];
    out << ")";
  }
  if (!mx_shapes.empty()) {
    out << ", " << mx_shapes.size() << " MXFP4 shapes x " << ms.size() << " T x " << routings.size()
        << " routings (";
    for (size_t i = 0; i < routings.size(); ++i) out << (i ? "," : "") << routings[i];
    out << ")";
  }
  if (!mla_shapes.empty()) out << ", " << mla_shapes.size() << " MLA shapes x " << qs.size() << " Q";
  out << ", " << (cold ? "cold" : "warm") << " L2, "
      << opt.reps << " reps: " << todo << " measurements to make\n"
      << std::flush;
  if (opt.plan_only) {
    auto size_label = [](const std::string& op) {
      return op == "w4a16_linear" ? "M=" : op == kMlaDecodeOp ? "Q=" : "T=";
    };
    for (const auto& [what, by_m] : todo_by) {
      out << "  " << std::get<0>(what) << " " << std::get<1>(what) << " " << std::get<2>(what) << ":";
      for (const auto& [m, n] : by_m) out << " " << size_label(std::get<0>(what)) << m << " x" << n;
      out << "\n";
    }
    st.remaining = todo;
    return st;
  }

  if (opt.stop) opt.stop->graceful = 1;
  MeasureProgress progress(err, todo, opt.progress);
  Run run{opt, measurer, db, prov, st, progress, err, t0, cold, dev.compute_units};
  // The batches of a routed op (the MoE and MXFP4 MoE GEMMs): per T, one per routing
  // archetype, whose routing is drawn only when something is measured. False once a batch
  // stopped the run.
  auto routed_batches = [&](const ShapePlan& p, const std::string& label, const auto& begin, const auto& draw,
                            const auto& measure) {
    bool begun = false;
    for (int64_t t : ms)
      for (size_t a = 0; a < routings.size(); ++a) {
        std::optional<MoeRouting> routing;
        const BatchJob job{p, {p.op(), p.key(), cold, routings[a]}, t,
                           label + " T=" + std::to_string(t) + " " + routings[a], [&](const PackKernel& k) {
                             if (!routing) routing = MoeRouting{routings[a], t, draw(opt.archetypes[a], t)};
                             return measure(k, *routing);
                           }};
        if (!run.batch(job, begun, begin)) return false;
      }
    return true;
  };
  bool stopped = false;
  for (const ShapePlan& p : plans) {
    bool begun = false;
    const std::string short_key = p.key().substr(0, p.key().find("_g"));
    if (p.is_mla) {
      const auto begin = [&] { measurer.begin_mla_shape(p.mla.shape, p.planned); };
      for (int64_t q : qs) {
        const BatchJob job{p, {p.op(), p.key(), cold, ""}, q, "mla " + p.key() + " Q=" + std::to_string(q),
                           [&](const PackKernel& k) {
                             return measurer.measure_mla(k, p.mla.shape, q, cold, opt.reps);
                           }};
        if ((stopped = !run.batch(job, begun, begin))) break;
      }
    } else if (p.is_mxfp4) {
      const auto begin = [&] { measurer.begin_mxfp4_shape(p.mx.shape, p.planned); };
      const std::string gemm = p.mx.shape.gemm == 1 ? "mxfp4 gemm1 " : "mxfp4 gemm2 ";
      stopped = !routed_batches(p, gemm + p.key(), begin, [&](RoutingArchetype a, int64_t t) {
        return mxfp4_tune_routing(a, t, static_cast<int>(p.mx.shape.experts), static_cast<int>(p.mx.shape.top_k),
                                  opt.routing_seed);
      }, [&](const PackKernel& k, const MoeRouting& routing) {
        return measurer.measure_mxfp4(k, p.mx.shape, routing, cold, opt.reps);
      });
    } else if (!p.is_moe) {
      const auto begin = [&] { measurer.begin_shape(p.ts.shape, p.planned); };
      for (int64_t m : ms) {
        const BatchJob job{p, {p.op(), p.key(), cold, ""}, m, short_key + " M=" + std::to_string(m),
                           [&](const PackKernel& k) { return measurer.measure(k, p.ts.shape, m, cold, opt.reps); }};
        if ((stopped = !run.batch(job, begun, begin))) break;
      }
    } else {
      const auto begin = [&] { measurer.begin_moe_shape(p.moe.shape, p.planned); };
      const std::string gemm = p.moe.shape.gemm == 1 ? "gemm1 " : "gemm2 ";
      stopped = !routed_batches(p, gemm + short_key, begin, [&](RoutingArchetype a, int64_t t) {
        return generate_routing(a, t, static_cast<int>(p.moe.shape.experts), static_cast<int>(p.moe.shape.top_k),
                                opt.routing_seed);
      }, [&](const PackKernel& k, const MoeRouting& routing) {
        return measurer.measure_moe(k, p.moe.shape, routing, cold, opt.reps);
      });
    }
    if (stopped) break;
  }
  if (opt.stop) opt.stop->graceful = 0;
  progress.done();
  st.remaining = std::max(0, todo - st.measured);

  st.shapes_with_winners = print_winners(out, db, prov, shapes, cold) +
                           print_moe_winners(out, db, prov, moe_shapes, cold) +
                           print_mxfp4_winners(out, db, prov, mx_shapes, cold) +
                           print_mla_winners(out, db, prov, mla_shapes, cold);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  char line[256];
  std::snprintf(line, sizeof line,
                "%d measured (%d already stored, skipped), %d rows stored: %d passed, %d incorrect, %d failed, "
                "%d pruned in %.1f s\n",
                st.measured, st.skipped, st.stored, st.passed, st.incorrect, st.failed, st.pruned, secs);
  out << line;
  if (st.retimed > 0)
    out << st.retimed << " extra timings of close contenders (within " << opt.confirm_within * 100 << "% of a batch's "
        << "fastest, " << opt.confirm_rounds << " rounds): each stores the median of its timings\n";
  if (stopped) {
    const std::string why = st.device_lost       ? "the device cannot go on after a hung kernel"
                            : st.out_of_time ? "the time budget is used up"
                                             : "interrupted";
    err << "autotune: stopped early (" << why << "): everything measured so far is stored in " << opt.db << "; "
        << st.remaining << " measurements remain. Run the same command again to resume: stored measurements are "
        << "skipped.\n";
  }
  return st;
}

}  // namespace kf
