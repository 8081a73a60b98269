#include "pack_setup.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "arch.h"
#include "backend.h"
#include "error.h"
#include "genkernels.h"
#include "pack.h"

namespace fs = std::filesystem;

namespace kf {

namespace {

std::vector<std::string> missing_kernels(const std::string& db, const std::string& arch,
                                         const std::vector<std::string>& expected) {
  if (!fs::exists(db)) return expected;
  // Refuses (untouched) what is not a kforge pack of this schema. A kernel slimmed out
  // of a shipped DB (tools/slim_db.py) cannot run: it counts as absent.
  const std::map<std::string, std::string> have = Pack::open(db, false).runnable_hashes(arch);
  std::vector<std::string> out;
  for (const auto& n : expected)
    if (!have.count(n)) out.push_back(n);
  return out;
}

// An exclusive lock on the DB's directory while generating: two autotune processes
// started together would otherwise both write DIR/src/* and compile from half-written
// files. (A directory, not a lock file: nothing is left behind.)
struct GenLock {
  int fd = -1;
  GenLock(const std::string& path, std::ostream& err) {
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot open directory '" + path + "' to lock it");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      err << "autotune: waiting for another autotune that is generating kernels into this DB\n";
      if (flock(fd, LOCK_EX) != 0) throw Error("cannot lock '" + path + "'");
    }
  }
  ~GenLock() {
    if (fd >= 0) ::close(fd);
  }
};

void import_pack(const std::string& from, const std::string& to, const std::string& arch,
                 const std::vector<std::string>& names) {
  const Pack src = Pack::open(from, false);
  Pack dst = Pack::open(to, true);
  std::string in;
  for (const auto& n : names) in += (in.empty() ? "'" : ", '") + n + "'";  // names are [a-z0-9_]
  const std::vector<PackKernel> kernels = src.kernels("arch = '" + arch + "' AND name IN (" + in + ")");
  dst.begin();
  try {
    dst.set_meta("kforge_version", KF_VERSION);
    dst.set_meta("schema_version", std::to_string(kPackSchemaVersion));
    for (const auto& s : src.shapes()) dst.put_shape(s);
    const std::map<std::string, std::string> held = dst.runnable_hashes(arch);
    for (const auto& k : kernels) {
      const auto it = held.find(k.name);
      if (it != held.end() && it->second == k.source_hash) continue;
      dst.drop_stale_results(k);  // measurements of another build of it no longer hold
      dst.put_kernel(k);
    }
    dst.commit();
  } catch (...) {
    dst.rollback();
    throw;
  }
}

// The kernels of the selection's (op, shape) pairs that the candidate space no longer
// emits (a template retiled, a config retired): left in the DB they keep their code
// objects and measurements, so one could keep winning, while a newer runtime sizes
// launches by the current rules (it refuses such a kernel at open, or may launch one its
// rules still accept with the wrong geometry: bench/NOTES.md, sparse MLA v10).
// Their rows go, as a full genkernels run drops them from a pack; their measurements stay
// as history, which no winner is taken from (results_db.cpp, KF_RUNNABLE).
int drop_retired_kernels(const AutotuneOptions& opt, const std::string& arch, const std::vector<TuneShape>& shapes,
                         const std::vector<MoeTuneShape>& moe_shapes, const std::vector<MlaTuneShape>& mla_shapes,
                         const std::vector<Mxfp4TuneShape>& mxfp4_shapes) {
  if (!fs::exists(opt.db)) return 0;
  // Every name of these shapes, whatever --filter limits the run to.
  const std::vector<std::string> current =
      expected_kernels(shapes, opt.select, arch, std::regex(".*"), moe_shapes, mla_shapes, mxfp4_shapes);
  std::vector<std::pair<std::string, std::string>> scopes;  // (op, shape key)
  for (const auto& s : shapes) scopes.push_back({"w4a16_linear", s.key});
  for (const auto& s : moe_shapes) scopes.push_back({s.op, s.key});
  for (const auto& s : mla_shapes) scopes.push_back({s.op, s.key});
  for (const auto& s : mxfp4_shapes) scopes.push_back({s.op, s.key});
  Pack pack = Pack::open(opt.db, true);
  pack.begin();
  int dropped = 0;
  try {
    for (const auto& [op, key] : scopes) dropped += pack.delete_stale(arch, op, key, current);
    pack.commit();
  } catch (...) {
    pack.rollback();
    throw;
  }
  return dropped;
}

}  // namespace

PackSetup ensure_pack(const AutotuneOptions& opt, const std::string& arch, const std::vector<TuneShape>& shapes,
                      const std::vector<MoeTuneShape>& moe_shapes, const std::vector<MlaTuneShape>& mla_shapes,
                      const std::vector<Mxfp4TuneShape>& mxfp4_shapes, const std::regex& filter, std::ostream& out,
                      std::ostream& err) {
  const fs::path db(opt.db);
  if (db.filename().empty() || fs::is_directory(db))
    throw Error("--db '" + opt.db + "' must name a file (e.g. tuned_db/kforge.sqlite)");
  const std::vector<std::string> expected =
      expected_kernels(shapes, opt.select, arch, filter, moe_shapes, mla_shapes, mxfp4_shapes);
  if (!opt.generate && !fs::exists(db))
    throw Error("no pack at '" + opt.db + "' (run without --no-generate to build it)");
  const fs::path dir = db.has_parent_path() ? db.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create '" + dir.string() + "': " + ec.message());
  // Checked under the lock too: a pack another process is creating looks empty (and
  // would be refused as "not a kforge pack") until its schema is committed.
  const GenLock lock(dir.string(), err);
  PackSetup setup;
  if (opt.generate) setup.dropped = drop_retired_kernels(opt, arch, shapes, moe_shapes, mla_shapes, mxfp4_shapes);
  const std::vector<std::string> missing = missing_kernels(opt.db, arch, expected);
  if (!opt.generate) {
    if (!missing.empty())
      err << "autotune: warning: the pack lacks " << missing.size() << " of the " << expected.size()
          << " kernels of this selection for " << arch << " (--no-generate): tuning what it has\n";
    return setup;
  }

  // A DB that holds every kernel of the selection can still be tuned on a machine without
  // the compiler; only whether its kernels are current cannot be told there.
  if (missing.empty()) {
    try {
      (void)make_backend(arch_info(arch), opt.tools);
    } catch (const Error& e) {
      err << "autotune: warning: cannot tell whether the DB's kernels are built from these templates (" << e.what()
          << "): tuning the kernels it holds\n";
      return setup;
    }
  }

  const bool is_pack_name = db.filename() == "kforge.sqlite";
  GenOptions g;
  g.archs = {arch};
  g.model = opt.select.model;
  g.config_path = opt.select.config_path;
  // The families of the selection (util, the MoE helpers and the MLA combine come with them).
  g.ops.clear();
  if (!shapes.empty()) g.ops.push_back("w4a16_linear");
  for (const auto& op : {"w4a16_moe_gemm1", "w4a16_moe_gemm2"})
    for (const auto& ms : moe_shapes)
      if (ms.op == op) {
        g.ops.push_back(op);
        break;
      }
  for (const auto& op : {"mxfp4_moe_gemm1", "mxfp4_moe_gemm2"})
    for (const auto& ms : mxfp4_shapes)
      if (ms.op == op) {
        g.ops.push_back(op);
        break;
      }
  if (!mla_shapes.empty()) g.ops.push_back(kMlaDecodeOp);
  if (g.ops.empty()) g.ops.push_back("w4a16_linear");  // nothing selected: the util kernel still
  g.group_sizes = opt.select.group_sizes;
  g.dtypes = opt.select.dtypes;
  g.quants = opt.select.quants;
  // The selection's kernels, less those the DB holds built from the same sources,
  // templates and compiler: what it lacks, and what a template or compiler change made
  // stale (rebuilt; their measurements are dropped and taken again). A name-limited run
  // never drops rows, so measured kernels stay.
  g.names = expected;
  g.skip_current_in = opt.db;
  g.jobs = opt.jobs;
  g.out_dir = is_pack_name ? dir.string() : (dir / (db.stem().string() + ".genkernels")).string();
  g.cache_dir = opt.cache_dir;
  g.templates_dir = opt.templates_dir;
  g.tools = opt.tools;
  g.progress = opt.progress;
  err << "autotune: bringing the DB's " << expected.size() << " kernels of this selection up to date (" << missing.size()
      << " absent) through " << g.out_dir << "\n";
  std::ostringstream gen_out;
  const GenStats built = run_genkernels(g, gen_out, err);
  if (built.candidates > 0) out << gen_out.str();
  if (!is_pack_name && !built.names.empty()) import_pack(g.out_dir + "/kforge.sqlite", opt.db, arch, built.names);
  setup.generated = built.candidates;
  return setup;
}

}  // namespace kf
