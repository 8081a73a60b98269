#include "genkernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "arch.h"
#include "compile_cache.h"
#include "error.h"
#include "linear_family.h"
#include "mla_family.h"
#include "model.h"
#include "moe_family.h"
#include "mxfp4_family.h"
#include "pack.h"
#include "progress.h"
#include "prune.h"
#include "summary.h"
#include "util_family.h"

namespace fs = std::filesystem;

namespace kf {

namespace {

struct LayerShape {
  std::string layer;
  LinearShape shape;
  int count;
};

ModelDesc resolve_model(const GenOptions& opt) {
  if (!opt.config_path.empty()) {
    if (!opt.model.empty()) throw Error("give --model or --config, not both");
    return model_from_hf_config(opt.config_path);
  }
  return builtin_model(opt.model.empty() ? default_model_name() : opt.model);
}

std::vector<LayerShape> linear_shapes(const ModelDesc& model, const GenOptions& opt) {
  std::vector<LayerShape> out;
  for (const auto& l : model.linears)
    for (int g : opt.group_sizes)
      for (const auto& dt : opt.dtypes)
        for (const auto& q : opt.quants) {
          if (dt != "bf16" && dt != "fp16") throw Error("unknown dtype '" + dt + "' (bf16, fp16)");
          if (q != "sym" && q != "asym") throw Error("unknown quantisation '" + q + "' (sym, asym)");
          LinearShape s{l.n, l.k, g, dt == "bf16", q == "asym"};
          validate_linear_shape(s, l.layer);
          out.push_back({l.layer, s, l.count});
        }
  return out;
}

struct MoeLayerShape {
  std::string layer;
  MoeShape shape;
  int count;
};

// gate_up (gemm1) or down (gemm2), from the layer's name as the model tables write it.
int moe_gemm_of(const MoeLayer& l) {
  if (l.layer.find("gate_up") != std::string::npos) return 1;
  if (l.layer.find("down") != std::string::npos) return 2;
  throw Error("MoE layer '" + l.layer + "': neither gate_up nor down");
}

std::vector<MoeLayerShape> moe_shapes(const ModelDesc& model, const GenOptions& opt, bool gemm1, bool gemm2) {
  std::vector<MoeLayerShape> out;
  for (const auto& l : model.moe) {
    if (l.mxfp4) continue;  // the mxfp4_moe family's
    const int gemm = moe_gemm_of(l);
    if ((gemm == 1 && !gemm1) || (gemm == 2 && !gemm2)) continue;
    for (int g : opt.group_sizes)
      for (const auto& dt : opt.dtypes)
        for (const auto& q : opt.quants) {
          MoeShape s{gemm, l.experts, l.top_k, l.n, l.k, g, dt == "bf16", q == "asym"};
          validate_moe_shape(s, l.layer);
          out.push_back({l.layer, s, l.count});
        }
  }
  return out;
}

struct Mxfp4LayerShape {
  std::string layer;
  Mxfp4MoeShape shape;
  int count;
};

std::vector<Mxfp4LayerShape> mxfp4_shapes(const ModelDesc& model, bool gemm1, bool gemm2) {
  std::vector<Mxfp4LayerShape> out;
  for (const auto& l : model.moe) {
    if (!l.mxfp4) continue;
    const int gemm = moe_gemm_of(l);
    if ((gemm == 1 && !gemm1) || (gemm == 2 && !gemm2)) continue;
    Mxfp4MoeShape s{gemm, l.experts, l.top_k, l.n, l.k, l.swiglu};
    validate_mxfp4_shape(s, l.layer);
    out.push_back({l.layer, s, l.count});
  }
  return out;
}

struct MlaLayerShape {
  std::string layer;
  MlaShape shape;
  int count;
};

std::vector<MlaLayerShape> mla_shapes(const ModelDesc& model, const GenOptions& opt) {
  std::vector<MlaLayerShape> out;
  for (const auto& l : model.mla)
    for (const auto& dt : opt.dtypes) {
      MlaShape s{l.heads, l.topk, l.extras, dt == "bf16"};
      validate_mla_shape(s, l.layer);
      out.push_back({l.layer, s, l.count});
    }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read template '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Job {
  Candidate cand;
  std::string source_path, source_text;
  PackKernel row;
  bool cached = false;
};

void compile_one(Job& job, const Backend& backend, const ArchInfo& arch, const CompileCache& cache,
                 const std::string& include_dir, const std::string& digest) {
  const Candidate& c = job.cand;
  PackKernel& row = job.row;
  row.name = c.name;
  row.arch = c.arch;
  row.op = c.op;
  row.kind = c.kind;
  row.shape = c.shape;
  row.config = c.config;
  row.threads = c.threads;
  row.compiler = backend.compiler_identity();
  const CompiledObject obj = cache.compile(backend, job.source_text, job.source_path, c.name, include_dir,
                                           digest, c.needs_mma);
  job.cached = obj.cached;
  row.source_hash = obj.key;  // the whole build, so a template or compiler change shows
  row.log = obj.log;
  row.mma_count = obj.mma_count < 0 ? -1 : obj.mma_count;
  if (!obj.ok) {
    row.status = "compile_error";
    return;
  }
  row.code_object = obj.object;
  row.code_sha256 = sha256_hex(std::string(obj.object.begin(), obj.object.end()));
  try {
    KernelResources res = backend.read_resources(obj.object, obj.log, c.name);
    // Dynamic shared memory is not in the code object: the block holds it all the same,
    // up to the opt-in limit.
    ArchInfo limits = arch;
    if (c.dynamic_shared > 0) {
      res.lds_bytes += c.dynamic_shared;
      limits.max_lds_per_block = arch.max_dynamic_lds_per_block;
    }
    row.vgprs_or_regs = res.vgprs_or_regs;
    row.sgprs = res.sgprs;
    row.agprs = res.agprs;
    row.lds_bytes = res.lds_bytes;
    row.scratch_bytes = res.scratch_bytes;
    row.spills = res.spills;
    row.occupancy = occupancy(limits, res, c.threads);
    const std::string why = prune_reason(c, limits, res, row.occupancy, obj.mma_count);
    row.status = why.empty() ? "ok" : "pruned:" + why;
  } catch (const Error& e) {
    // An object we cannot read is not one we can vouch for.
    row.status = "pruned:unreadable_metadata";
    row.log += std::string("\n") + e.what();
  }
}

}  // namespace

std::vector<std::string> known_ops() {
  return {"w4a16_linear", "w4a16_moe_gemm1", "w4a16_moe_gemm2", kMlaDecodeOp, "mxfp4_moe_gemm1", "mxfp4_moe_gemm2"};
}

std::vector<std::string> resolve_ops(const std::vector<std::string>& ops) {
  const auto known = known_ops();
  if (ops.empty()) return known;
  std::vector<std::string> out;
  auto add = [&](const std::string& op) {
    if (std::find(out.begin(), out.end(), op) == out.end()) out.push_back(op);
  };
  for (const auto& op : ops) {
    if (op == "w4a16_moe" || op == "mxfp4_moe") {
      add(op + "_gemm1");
      add(op + "_gemm2");
    } else if (std::find(known.begin(), known.end(), op) != known.end()) {
      add(op);
    } else {
      throw Error("unknown op '" + op + "' (known: w4a16_linear, w4a16_moe_gemm1, w4a16_moe_gemm2, w4a16_moe, " +
                  kMlaDecodeOp + ", mxfp4_moe_gemm1, mxfp4_moe_gemm2, mxfp4_moe)");
    }
  }
  return out;
}

GenStats run_genkernels(const GenOptions& opt, std::ostream& out, std::ostream& err) {
  const auto t0 = std::chrono::steady_clock::now();
  GenStats stats;

  // ---- validate everything before touching the disk --------------------------------
  std::vector<const ArchInfo*> archs;
  for (const auto& a : opt.archs) archs.push_back(&arch_info(a));
  if (archs.empty()) throw Error("no --arch given");
  const auto ops = resolve_ops(opt.ops);
  auto wanted = [&](const char* op) { return std::count(ops.begin(), ops.end(), op) > 0; };
  const bool want_linear = wanted("w4a16_linear");
  const ModelDesc model = resolve_model(opt);
  std::regex filter;
  try {
    filter = std::regex(opt.filter.empty() ? ".*" : opt.filter);
  } catch (const std::regex_error& e) {
    throw Error("bad --filter regex '" + opt.filter + "': " + e.what());
  }
  const std::set<std::string> only(opt.names.begin(), opt.names.end());
  auto selected = [&](const std::string& name) {
    return (only.empty() || only.count(name)) && std::regex_search(name, filter);
  };

  std::vector<LayerShape> shapes = want_linear ? linear_shapes(model, opt) : std::vector<LayerShape>{};
  const std::vector<MoeLayerShape> moe = moe_shapes(model, opt, wanted("w4a16_moe_gemm1"), wanted("w4a16_moe_gemm2"));
  const std::vector<Mxfp4LayerShape> mx = mxfp4_shapes(model, wanted("mxfp4_moe_gemm1"), wanted("mxfp4_moe_gemm2"));
  const std::vector<MlaLayerShape> mla = wanted(kMlaDecodeOp) ? mla_shapes(model, opt) : std::vector<MlaLayerShape>{};
  std::vector<Job> jobs;
  std::map<std::string, bool> seen;
  for (const ArchInfo* arch : archs)
    for (const auto& ls : shapes) {
      if (seen[arch->name + ls.shape.key()]) continue;
      seen[arch->name + ls.shape.key()] = true;
      const auto configs = enumerate_linear_configs(ls.shape, *arch);
      for (const char* kind : {"decode", "prefill"})
        if (std::none_of(configs.begin(), configs.end(),
                         [&](const LinearConfig& c) { return std::string(kind_name(c.kind)) == kind; }))
          err << "genkernels: warning: no " << kind << " config fits layer '" << ls.layer << "' ("
              << ls.shape.key() << ") on " << arch->name << "; the generic kernel serves it\n";
      for (const auto& cfg : configs) {
        Candidate c = make_linear_candidate(ls.shape, cfg, *arch);
        if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
      }
    }
  // One generic kernel per (arch, dtype, quantisation) of the run: the runtime's
  // fallback for shapes that were never tuned.
  if (want_linear)
    for (const ArchInfo* arch : archs)
      for (const auto& dt : opt.dtypes)
        for (const auto& q : opt.quants) {
          Candidate c = make_linear_generic_candidate(dt == "bf16", q == "asym", *arch);
          if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
        }
  for (const ArchInfo* arch : archs)
    for (const auto& ms : moe) {
      if (seen[arch->name + ms.shape.op() + ms.shape.key()]) continue;
      seen[arch->name + ms.shape.op() + ms.shape.key()] = true;
      for (const auto& cfg : enumerate_moe_configs(ms.shape, *arch)) {
        Candidate c = make_moe_candidate(ms.shape, cfg, *arch);
        if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
      }
    }
  for (const ArchInfo* arch : archs)
    for (const auto& ms : mx) {
      if (seen[arch->name + ms.shape.op() + ms.shape.key()]) continue;
      seen[arch->name + ms.shape.op() + ms.shape.key()] = true;
      for (const auto& cfg : enumerate_mxfp4_configs(ms.shape, *arch)) {
        Candidate c = make_mxfp4_candidate(ms.shape, cfg, *arch);
        if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
      }
    }
  // The MoE layer's shape-independent steps: routing alignment, activation, top-k sum
  // (the MXFP4 layers use align and the bf16 sum).
  if (!moe.empty() || !mx.empty())
    for (const ArchInfo* arch : archs) {
      std::vector<Candidate> helpers = make_moe_align_candidates(*arch);
      std::vector<std::string> dtypes = moe.empty() ? std::vector<std::string>{} : opt.dtypes;
      if (!mx.empty() && std::count(dtypes.begin(), dtypes.end(), "bf16") == 0) dtypes.push_back("bf16");
      for (const auto& dt : dtypes) {
        helpers.push_back(make_moe_silu_mul_candidate(dt == "bf16", *arch));
        helpers.push_back(make_moe_sum_candidate(dt == "bf16", *arch));
      }
      for (auto& c : helpers)
        if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
    }
  for (const ArchInfo* arch : archs)
    for (const auto& ls : mla) {
      if (seen[arch->name + kMlaDecodeOp + ls.shape.key()]) continue;
      seen[arch->name + kMlaDecodeOp + ls.shape.key()] = true;
      for (const auto& cfg : enumerate_mla_configs(ls.shape, *arch)) {
        Candidate c = make_mla_candidate(ls.shape, cfg, *arch);
        if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
      }
    }
  // Split MLA kernels merge their partials with the combine kernel of their dtype.
  for (const ArchInfo* arch : archs)
    for (const auto& dt : opt.dtypes)
      if (std::any_of(mla.begin(), mla.end(), [&](const MlaLayerShape& l) { return l.shape.bf16 == (dt == "bf16"); })) {
        Candidate c = make_mla_combine_candidate(dt == "bf16", *arch);
        if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
      }
  for (const ArchInfo* arch : archs) {
    Candidate c = make_util_candidate(*arch);
    if (selected(c.name)) jobs.push_back({std::move(c), "", "", {}, false});
  }
  stats.candidates = static_cast<int>(jobs.size());

  if (opt.list_only) {
    for (const auto& j : jobs) out << j.cand.arch << "  " << j.cand.name << "  threads=" << j.cand.threads << "\n";
    out << jobs.size() << " candidates for model " << model.name << "\n";
    return stats;
  }

  std::map<std::string, std::unique_ptr<Backend>> backends;
  for (const ArchInfo* arch : archs) backends[arch->name] = make_backend(*arch, opt.tools);

  const std::string templates = opt.templates_dir.empty() ? KF_TEMPLATE_DIR : opt.templates_dir;
  if (!fs::is_directory(templates)) throw Error("templates directory '" + templates + "' not found");
  // Per instance template: the hash of the headers its kernels include.
  std::map<std::string, std::string> digests;
  const CompileCache cache(opt.cache_dir.empty() ? default_cache_dir() : opt.cache_dir);
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  if (ec) throw Error("cannot create output directory '" + opt.out_dir + "': " + ec.message());
  // Open the pack first: a foreign or newer file stops the run before any work.
  Pack pack = Pack::open(opt.out_dir + "/kforge.sqlite", true);

  // ---- emit the generated sources (deterministic, into the output tree) ------------
  std::map<std::string, std::string> instance_text;
  for (auto& j : jobs) {
    auto it = instance_text.find(j.cand.instance);
    if (it == instance_text.end())
      it = instance_text.emplace(j.cand.instance, read_text(templates + "/" + j.cand.instance)).first;
    j.source_text = substitute(it->second, j.cand.params, j.cand.instance);
    if (!digests.count(j.cand.instance)) digests[j.cand.instance] = include_digest(templates, it->second);
    const std::string dir = opt.out_dir + "/src/" + j.cand.arch;
    fs::create_directories(dir);
    j.source_path = fs::absolute(dir + "/" + j.cand.name + ".cu").string();
    std::string existing;
    std::ifstream in(j.source_path, std::ios::binary);
    if (in) existing.assign(std::istreambuf_iterator<char>(in), {});
    if (existing != j.source_text) std::ofstream(j.source_path, std::ios::binary) << j.source_text;
  }

  // ---- skip what the given pack holds as it would be built now ----------------------
  if (!opt.skip_current_in.empty() && fs::exists(opt.skip_current_in)) {
    const Pack held = Pack::open(opt.skip_current_in, false);
    std::map<std::string, std::map<std::string, std::string>> hashes;  // arch -> name -> hash
    for (const ArchInfo* arch : archs) hashes[arch->name] = held.runnable_hashes(arch->name);
    std::vector<Job> todo;
    for (auto& j : jobs) {
      const auto& h = hashes[j.cand.arch];
      const auto it = h.find(j.cand.name);
      if (it != h.end() &&
          it->second == build_key(*backends[j.cand.arch], j.source_text, digests.at(j.cand.instance))) {
        ++stats.current;
        continue;
      }
      todo.push_back(std::move(j));
    }
    jobs = std::move(todo);
    stats.candidates = static_cast<int>(jobs.size());
  }

  // ---- compile in parallel ----------------------------------------------------------
  const int threads = std::max(1, opt.jobs > 0 ? opt.jobs : static_cast<int>(std::thread::hardware_concurrency()));
  Progress progress(err, static_cast<int>(jobs.size()), opt.progress);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < jobs.size();) {
      const ArchInfo& arch = arch_info(jobs[i].cand.arch);
      compile_one(jobs[i], *backends[arch.name], arch, cache, templates, digests.at(jobs[i].cand.instance));
      progress.tick(jobs[i].cand.arch + " " + jobs[i].cand.kind);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  progress.done();

  // ---- store: one transaction, so a killed run leaves the previous pack intact -----
  pack.begin();
  try {
    pack.set_meta("kforge_version", KF_VERSION);
    pack.set_meta("schema_version", std::to_string(kPackSchemaVersion));
    for (const auto& ls : shapes) pack.put_shape({model.name, ls.layer, "w4a16_linear", ls.shape.key(), ls.count});
    for (const auto& ms : moe) pack.put_shape({model.name, ms.layer, ms.shape.op(), ms.shape.key(), ms.count});
    for (const auto& ls : mla) pack.put_shape({model.name, ls.layer, kMlaDecodeOp, ls.shape.key(), ls.count});
    for (const auto& ms : mx) pack.put_shape({model.name, ms.layer, ms.shape.op(), ms.shape.key(), ms.count});
    for (const auto& j : jobs) {
      stats.stale_results += pack.drop_stale_results(j.row);
      pack.put_kernel(j.row);
    }
    // A full (unfiltered) run owns its (arch, shape) rows: drop what it no longer emits.
    if (opt.filter.empty() && opt.names.empty() && opt.skip_current_in.empty()) {
      std::map<std::tuple<std::string, std::string, std::string>, std::vector<std::string>> emitted;
      for (const auto& j : jobs)
        if (j.cand.op == "w4a16_linear" || j.cand.op.rfind("w4a16_moe_", 0) == 0 || j.cand.op == kMlaDecodeOp ||
            j.cand.op.rfind("mxfp4_moe_", 0) == 0)
          emitted[{j.cand.arch, j.cand.op, j.cand.shape}].push_back(j.cand.name);
      for (const auto& [key, names] : emitted)
        pack.delete_stale(std::get<0>(key), std::get<1>(key), std::get<2>(key), names);
    }
    pack.commit();
  } catch (...) {
    pack.rollback();
    throw;
  }

  std::vector<SummaryRow> rows;
  for (const auto& j : jobs) {
    stats.names.push_back(j.cand.name);
    stats.cached += j.cached;
    stats.compiled += !j.cached;
    stats.compile_errors += j.row.status == "compile_error";
    stats.pruned += j.row.status.rfind("pruned:", 0) == 0;
    stats.ok += j.row.status == "ok";
    rows.push_back({j.row.arch, j.row.op, j.row.shape, j.row.kind, j.row.status, j.row.occupancy});
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_summary(out, rows);
  if (stats.current) out << stats.current << " kernels already built from these sources in " << opt.skip_current_in << "\n";
  out << stats.candidates << " candidates (" << stats.compiled << " compiled, " << stats.cached
      << " from cache), " << stats.ok << " ok, " << stats.pruned << " pruned, " << stats.compile_errors
      << " compile errors in " << static_cast<int>(stats.seconds * 10) / 10.0 << " s\n"
      << (stats.stale_results ? std::to_string(stats.stale_results) +
                                    " measurements of rebuilt kernels dropped: autotune measures them again\n"
                              : std::string())
      << "pack: " << pack.path() << "   sources: " << opt.out_dir << "/src   cache: " << cache.dir() << "\n";
  return stats;
}

}  // namespace kf
