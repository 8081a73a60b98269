#include "test_pack.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

#include "pack.h"
#include "sparse_mla/launch.h"
#include "w4a16_moe/align_cluster_tiling.h"
#include "w4a16_moe/launch.h"

namespace kf_testing {

namespace {

// The winners table of each schema version (generator/pack.cpp), for packs written
// with a version other than the generator's.
const char* kWinnersV1 = R"sql(
CREATE TABLE winners (
  arch TEXT NOT NULL, device TEXT NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL,
  m_lo INTEGER NOT NULL CHECK (m_lo >= 1), m_hi INTEGER NOT NULL, m_tuned INTEGER NOT NULL,
  kernel TEXT NOT NULL, median_us REAL NOT NULL, cold_l2 INTEGER NOT NULL CHECK (cold_l2 IN (0, 1)),
  UNIQUE (arch, device, op, shape, cold_l2, m_lo),
  CHECK (m_lo <= m_tuned AND m_tuned <= m_hi));
)sql";
const char* kWinnersV2 = R"sql(
CREATE TABLE winners (
  arch TEXT NOT NULL, device TEXT NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL,
  m_lo INTEGER NOT NULL CHECK (m_lo >= 1), m_hi INTEGER NOT NULL, m_tuned INTEGER NOT NULL,
  kernel TEXT NOT NULL, median_us REAL NOT NULL, cold_l2 INTEGER NOT NULL CHECK (cold_l2 IN (0, 1)),
  routing TEXT NOT NULL DEFAULT '',
  UNIQUE (arch, device, op, shape, cold_l2, routing, m_lo),
  CHECK (m_lo <= m_tuned AND m_tuned <= m_hi));
)sql";

struct Db {
  sqlite3* db = nullptr;
  std::string path;
  explicit Db(const std::string& p) : path(p) {
    if (sqlite3_open(p.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + p);
  }
  ~Db() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err ? err : sqlite3_errmsg(db);
      sqlite3_free(err);
      throw std::runtime_error(path + ": " + msg + " in: " + sql.substr(0, 60));
    }
  }
  bool has_column(const std::string& table, const std::string& column) {
    sqlite3_stmt* st = nullptr;
    bool found = false;
    if (sqlite3_prepare_v2(db, ("PRAGMA table_info(" + table + ")").c_str(), -1, &st, nullptr) == SQLITE_OK)
      while (sqlite3_step(st) == SQLITE_ROW)
        found = found || column == reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    return found;
  }
};

}  // namespace

kf_moe_shape small_moe_shape() {
  kf_moe_shape s{};
  s.experts = 8;
  s.top_k = 2;
  s.hidden = 256;
  s.intermediate = 128;
  s.group = 128;
  s.bf16 = 1;
  s.asym = 0;
  return s;
}

std::string kernel_name(const std::string& kind, const std::string& shape, const std::string& config) {
  return "w4a16_linear_" + kind + "_" + shape + "_" + config;
}

std::string moe_kernel_name(int gemm, const std::string& kind, const std::string& shape, const std::string& config) {
  return "w4a16_moe_gemm" + std::to_string(gemm) + "_" + kind + "_" + shape + "_" + config;
}

std::string mla_kernel_name(const std::string& shape, const std::string& config, const std::string& kind) {
  return "sparse_mla_decode_" + (kind == "decode" ? "" : kind + "_") + shape + "_" + config;
}

std::string mxfp4_kernel_name(int gemm, const std::string& shape, const std::string& config,
                              const std::string& kind) {
  return "mxfp4_moe_gemm" + std::to_string(gemm) + "_" + (kind == "mma" ? "" : kind + "_") + shape + "_" + config;
}

kf_mxfp4_moe_shape small_mxfp4_shape() {
  kf_mxfp4_moe_shape s{};
  s.experts = 8;
  s.top_k = 2;
  s.hidden = 256;
  s.intermediate = 128;
  s.swiglu = 1;
  return s;
}

std::string TestPackBuilder::add_kernel(const std::string& kind, const std::string& shape, const std::string& config,
                                        const std::string& arch, int threads) {
  kernels_.push_back({kernel_name(kind, shape, config), arch, "w4a16_linear", kind, shape, config, threads});
  return kernels_.back().name;
}

std::string TestPackBuilder::add_generic(bool bf16, bool asym, const std::string& arch) {
  const std::string shape = std::string("any_") + (bf16 ? "bf16" : "fp16") + (asym ? "_asym" : "_sym");
  return add_kernel("generic", shape, "bm4_bn128_bk32_w4_sk1_s1", arch, 128);
}

void TestPackBuilder::add_winner(const std::string& shape, const std::string& kernel, int64_t m_lo, int64_t m_hi,
                                 const std::string& device, int cold_l2, const std::string& arch) {
  winners_.push_back({arch, device, "w4a16_linear", shape, kernel, m_lo, m_hi, cold_l2, ""});
}

std::string TestPackBuilder::add_moe_kernel(int gemm, const std::string& kind, const std::string& shape,
                                            const std::string& config, const std::string& arch, int threads) {
  kernels_.push_back({moe_kernel_name(gemm, kind, shape, config), arch, "w4a16_moe_gemm" + std::to_string(gemm), kind,
                      shape, config, threads});
  return kernels_.back().name;
}

void TestPackBuilder::add_moe_helpers(const std::string& arch) {
  // As generator/moe_family.cpp writes them: kind = the op after "moe_", config t<threads>.
  const int align = kf::moe::kAlignThreads, elt = kf::moe::kEltThreads;
  kernels_.push_back({"moe_align_any", arch, "moe_align", "align", "any", "t" + std::to_string(align), align});
  for (const char* dtype : {"bf16", "fp16"}) {
    const std::string shape = std::string("any_") + dtype, config = "t" + std::to_string(elt);
    kernels_.push_back({"moe_silu_mul_" + shape, arch, "moe_silu_mul", "silu_mul", shape, config, elt});
    kernels_.push_back({"moe_sum_" + shape, arch, "moe_sum", "sum", shape, config, elt});
  }
}

void TestPackBuilder::add_moe_align_cluster(const std::string& arch) {
  const int align = kf::moe::kAlignThreads;
  kernels_.push_back({"moe_align_cluster_any", arch, "moe_align", "align_cluster", "any",
                      "t" + std::to_string(align) + "_c" + std::to_string(kf::moe::kAlignCluster), align});
}

void TestPackBuilder::add_moe_winner(int gemm, const std::string& shape, const std::string& kernel, int64_t t_lo,
                                     int64_t t_hi, const std::string& routing, const std::string& device, int cold_l2,
                                     const std::string& arch) {
  winners_.push_back({arch, device, "w4a16_moe_gemm" + std::to_string(gemm), shape, kernel, t_lo, t_hi, cold_l2,
                      routing});
}

std::string TestPackBuilder::add_mla_kernel(const std::string& shape, const std::string& config,
                                            const std::string& arch, int threads, const std::string& kind) {
  if (threads == 0) {  // warps x 32, from the config's _w<warps>_
    const size_t w = config.find("_w");
    threads = 32 * std::stoi(config.substr(w + 2));
  }
  kernels_.push_back({mla_kernel_name(shape, config, kind), arch, "sparse_mla_decode", kind, shape, config, threads});
  return kernels_.back().name;
}

void TestPackBuilder::add_mla_combine(bool bf16, const std::string& arch) {
  // As generator/mla_family.cpp writes it.
  const std::string shape = bf16 ? "any_bf16" : "any_fp16", threads = std::to_string(kf::mla::kCombineThreads);
  kernels_.push_back({"sparse_mla_combine_" + shape, arch, "sparse_mla_combine", "combine", shape, "t" + threads,
                      kf::mla::kCombineThreads});
}

void TestPackBuilder::add_mla_winner(const std::string& shape, const std::string& kernel, int64_t q_lo, int64_t q_hi,
                                     const std::string& device, int cold_l2, const std::string& arch) {
  winners_.push_back({arch, device, "sparse_mla_decode", shape, kernel, q_lo, q_hi, cold_l2, ""});
}

std::string TestPackBuilder::add_mxfp4_kernel(int gemm, const std::string& shape, const std::string& config,
                                              const std::string& arch, int threads, const std::string& kind) {
  if (threads == 0) {  // warps x 32, from the config's _w<warps>_
    const size_t w = config.find("_w");
    threads = 32 * std::stoi(config.substr(w + 2));
  }
  kernels_.push_back({mxfp4_kernel_name(gemm, shape, config, kind), arch, "mxfp4_moe_gemm" + std::to_string(gemm),
                      kind, shape, config, threads});
  return kernels_.back().name;
}

void TestPackBuilder::add_mxfp4_winner(int gemm, const std::string& shape, const std::string& kernel, int64_t t_lo,
                                       int64_t t_hi, const std::string& routing, const std::string& device,
                                       int cold_l2, const std::string& arch) {
  winners_.push_back({arch, device, "mxfp4_moe_gemm" + std::to_string(gemm), shape, kernel, t_lo, t_hi, cold_l2,
                      routing});
}

void TestPackBuilder::write(const std::string& path) const {
  const int schema = schema_ ? schema_ : kf::kPackSchemaVersion;
  if (schema != 1 && schema != 2) throw std::runtime_error("test pack: schema " + std::to_string(schema));
  {
    kf::Pack pack = kf::Pack::open(path, /*create=*/true);
    pack.begin();
    for (const Kernel& k : kernels_) {
      kf::PackKernel row;
      row.name = k.name;
      row.arch = k.arch;
      row.op = k.op;
      row.kind = k.kind;
      row.shape = k.shape;
      row.config = k.config;
      // Fake code object, with the name inside so each one differs.
      row.code_object.assign(k.name.begin(), k.name.end());
      row.code_object.insert(row.code_object.begin(), {0x7f, 'E', 'L', 'F', 0});
      row.threads = k.threads;
      row.status = "ok";
      row.compiler = "test";
      row.source_hash = "0";
      pack.put_kernel(row);
    }
    pack.commit();
  }
  // kf::Pack has no winners API (autotune writes them): plain SQL.
  Db db(path);
  const bool routing = schema >= 2;
  if (db.has_column("winners", "routing") != routing) {
    db.exec("DROP TABLE winners");
    db.exec(routing ? kWinnersV2 : kWinnersV1);
  }
  if (routing && !db.has_column("results", "routing"))
    db.exec("ALTER TABLE results ADD COLUMN routing TEXT NOT NULL DEFAULT ''");
  db.exec("PRAGMA user_version = " + std::to_string(schema));
  sqlite3_stmt* st = nullptr;
  const char* sql =
      routing ? "INSERT INTO winners (arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2, routing)"
                " VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?4, ?6, 1.0, ?7, ?9)"
              : "INSERT INTO winners (arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2)"
                " VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?4, ?6, 1.0, ?7)";
  std::string error;
  if (sqlite3_prepare_v2(db.db, sql, -1, &st, nullptr) != SQLITE_OK) error = sqlite3_errmsg(db.db);
  for (const Winner& w : winners_) {
    if (!error.empty()) break;
    if (!routing && !w.routing.empty()) {
      error = "routing '" + w.routing + "' needs schema 2";
      break;
    }
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, w.arch.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, w.device.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, w.shape.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, w.m_lo);
    sqlite3_bind_int64(st, 5, w.m_hi);
    sqlite3_bind_text(st, 6, w.kernel.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, w.cold_l2);
    sqlite3_bind_text(st, 8, w.op.c_str(), -1, SQLITE_TRANSIENT);
    if (routing) sqlite3_bind_text(st, 9, w.routing.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) error = sqlite3_errmsg(db.db);
  }
  sqlite3_finalize(st);
  if (!error.empty()) throw std::runtime_error("writing winners to " + path + ": " + error);
}

TempDir::TempDir(const std::string& tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("kforge-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace kf_testing
