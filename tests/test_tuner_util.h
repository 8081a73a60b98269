// Helpers of the tuner suites: a small fake pack written with kf::Pack (no compiler
// needed), in-process and child-process autotune runs, and SQL probes of the results.
#pragma once
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "arch.h"
#include "autotune.h"
#include "linear_family.h"
#include "pack.h"
#include "test_util.h"

namespace kf_tuner_test {

using kf_test::contains;
using kf_test::TempDir;

inline const std::string kTinyConfig = std::string(KF_TEST_DATA_DIR) + "/data/tiny_llama.json";
// tiny_llama's o_proj: the shape the fake pack has real candidates for (the other three
// shapes of the model get only the generic kernel).
inline const kf::LinearShape kShape{256, 256, 128, true, false};
inline const std::vector<int64_t> kMs = {1, 4, 16, 64, 128, 1024};

inline kf::PackKernel row(const kf::LinearShape& s, const std::string& kind, const std::string& config,
                          const std::string& status = "ok") {
  const kf::LinearConfig c = kf::parse_linear_config(kind, config);
  kf::PackKernel k;
  k.name = kf::linear_kernel_name(s, c);
  k.arch = "sm_90a";
  k.op = "w4a16_linear";
  k.kind = kind;
  k.shape = s.key();
  k.config = config;
  if (status != "compile_error") k.code_object = {0x7f, 'E', 'L', 'F'};
  k.threads = c.warps * 32;
  k.status = status;
  k.compiler = "fake nvcc 13.0";
  k.source_hash = "0123";
  return k;
}

inline kf::PackKernel generic_row() {
  const kf::Candidate c = kf::make_linear_generic_candidate(true, false, kf::arch_info("sm_90a"));
  kf::PackKernel k = row(kShape, "generic", c.config);
  k.name = c.name;
  k.shape = c.shape;
  k.threads = c.threads;
  return k;
}

inline kf::PackKernel util_row() {
  kf::PackKernel k;
  k.name = "kf_util_stream_read";
  k.arch = "sm_90a";
  k.op = k.kind = "util";
  k.shape = "none";
  k.config = "v1";
  k.code_object = {0x7f, 'E', 'L', 'F'};
  k.threads = 256;
  k.status = "ok";
  k.compiler = "fake nvcc 13.0";
  k.source_hash = "0123";
  return k;
}

// The pack's moe_align_any row (a util-like helper: the fake ELF, 1024 threads).
inline kf::PackKernel align_row() {
  kf::PackKernel k = util_row();
  k.name = "moe_align_any";
  k.op = "moe_align";
  k.kind = "align";
  k.shape = "any";
  k.config = "t1024";
  k.threads = 1024;
  return k;
}

// Names of the fake pack's kernels of kShape, by role.
struct FakePack {
  std::string decode_bm1, decode_bm2_sk2, decode_bm16, prefill_bm16, prefill_bm32, prefill_bm64, spilled,
      broken, generic;
  std::vector<std::string> all;  // every candidate of kShape (generic included)
};

inline FakePack write_fake_pack(const std::string& path, bool with_util = true) {
  std::vector<kf::PackKernel> rows = {
      row(kShape, "decode", "bm1_bn64_bk32_w4_sk1_s1"),      row(kShape, "decode", "bm2_bn64_bk64_w4_sk2_s1"),
      row(kShape, "decode", "bm16_bn64_bk32_w8_sk1_s1"),     row(kShape, "prefill", "bm16_bn64_bk32_w4_sk1_s2"),
      row(kShape, "prefill", "bm32_bn64_bk32_w4_sk1_s1"),    row(kShape, "prefill", "bm64_bn64_bk64_w8_sk1_s2"),
      row(kShape, "prefill", "bm128_bn64_bk32_w4_sk1_s1", "pruned:spills"),
      row(kShape, "decode", "bm4_bn64_bk32_w4_sk1_s1", "compile_error"), generic_row()};
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  for (const auto& k : rows) pack.put_kernel(k);
  if (with_util) pack.put_kernel(util_row());
  pack.commit();
  FakePack f;
  for (const auto& k : rows) f.all.push_back(k.name);
  f.decode_bm1 = rows[0].name;
  f.decode_bm2_sk2 = rows[1].name;
  f.decode_bm16 = rows[2].name;
  f.prefill_bm16 = rows[3].name;
  f.prefill_bm32 = rows[4].name;
  f.prefill_bm64 = rows[5].name;
  f.spilled = rows[6].name;
  f.broken = rows[7].name;
  f.generic = rows[8].name;
  return f;
}

// Measure calls a full run over kMs makes on the fake pack: on kShape the ok decode
// kernels (3) for M <= 64, the ok prefill kernels (3) and the generic at every M; on the
// other three shapes of tiny_llama the generic at every M.
inline int full_run_measurements(const std::vector<int64_t>& ms = kMs) {
  int n = 0;
  for (int64_t m : ms) n += (m <= 64 ? 3 : 0) + 3 + 1 + 3;
  return n;
}
// Result rows of a full run: every candidate of kShape at every M, plus the generic of
// the other shapes.
inline int full_run_rows(const std::vector<int64_t>& ms = kMs) { return static_cast<int>(ms.size()) * (9 + 3); }

inline kf::AutotuneOptions options(const std::string& db) {
  kf::AutotuneOptions o;
  o.select.config_path = kTinyConfig;
  o.db = db;
  o.ms = kMs;
  o.reps = 7;
  o.confirm_rounds = 0;  // the tests count measurements exactly; re-timing has its own test
  o.generate = false;
  o.progress = false;
  return o;
}

struct InProcess {
  kf::AutotuneStats stats;
  std::string out, err;
};

inline InProcess run_in_process(const kf::AutotuneOptions& o, kf::Measurer& m) {
  std::ostringstream out, err;
  InProcess r;
  r.stats = kf::run_autotune(o, m, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// First column of the first row of `sql` as a number (-1 when no row).
inline double scalar(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  sqlite3_stmt* st = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  INFO(sql << ": " << sqlite3_errmsg(db));
  REQUIRE(rc == SQLITE_OK);
  const double v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

inline std::string text_of(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string v;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

inline std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The autotune executable in a child process, stdout and stderr to files in `dir`.
struct Child {
  pid_t pid = -1;
  std::string out_path, err_path;
  int wait_status() const {
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  std::string out() const { return file_text(out_path); }
  std::string err() const { return file_text(err_path); }
};

inline Child spawn_autotune(const std::vector<std::string>& args, const std::string& dir, const std::string& tag,
                            const std::vector<std::pair<std::string, std::string>>& env = {}) {
  Child c;
  c.out_path = dir + "/" + tag + ".out";
  c.err_path = dir + "/" + tag + ".err";
  std::vector<std::string> argv_s = {KF_AUTOTUNE_EXE};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  c.pid = fork();
  REQUIRE(c.pid >= 0);
  if (c.pid == 0) {
    const int out = ::open(c.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(c.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return c;
}

inline std::vector<std::string> cli_args(const std::string& db, const std::string& ms = "1,4,16,64,128,1024") {
  return {"--measurer", "fake", "--config", kTinyConfig, "--db", db, "--no-generate", "--m", ms, "--reps", "7", "--confirm-rounds", "0", "-q"};
}

}  // namespace kf_tuner_test
