#include "test_pack.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

#include "pack.h"

namespace kf_testing {

std::string kernel_name(const std::string& kind, const std::string& shape, const std::string& config) {
  return "w4a16_linear_" + kind + "_" + shape + "_" + config;
}

std::string TestPackBuilder::add_kernel(const std::string& kind, const std::string& shape, const std::string& config,
                                        const std::string& arch, int threads) {
  kernels_.push_back({kernel_name(kind, shape, config), arch, kind, shape, config, threads});
  return kernels_.back().name;
}

std::string TestPackBuilder::add_generic(bool bf16, bool asym, const std::string& arch) {
  const std::string shape = std::string("any_") + (bf16 ? "bf16" : "fp16") + (asym ? "_asym" : "_sym");
  return add_kernel("generic", shape, "bm4_bn128_bk32_w4_sk1_s1", arch, 128);
}

void TestPackBuilder::add_winner(const std::string& shape, const std::string& kernel, int64_t m_lo, int64_t m_hi,
                                 const std::string& device, int cold_l2, const std::string& arch) {
  winners_.push_back({arch, device, shape, kernel, m_lo, m_hi, cold_l2});
}

void TestPackBuilder::write(const std::string& path) const {
  {
    kf::Pack pack = kf::Pack::open(path, /*create=*/true);
    pack.begin();
    for (const Kernel& k : kernels_) {
      kf::PackKernel row;
      row.name = k.name;
      row.arch = k.arch;
      row.op = "w4a16_linear";
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
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
  sqlite3_stmt* st = nullptr;
  const char* sql =
      "INSERT INTO winners (arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2)"
      " VALUES (?1, ?2, 'w4a16_linear', ?3, ?4, ?5, ?4, ?6, 1.0, ?7)";
  std::string error;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) error = sqlite3_errmsg(db);
  for (const Winner& w : winners_) {
    if (!error.empty()) break;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, w.arch.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, w.device.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, w.shape.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, w.m_lo);
    sqlite3_bind_int64(st, 5, w.m_hi);
    sqlite3_bind_text(st, 6, w.kernel.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, w.cold_l2);
    if (sqlite3_step(st) != SQLITE_DONE) error = sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
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
