// Opening packs: files that are not packs are refused with the right status and a
// message naming the path, and left byte for byte as they were; packs without kernels
// for the arch; the C++ wrapper; version and status names.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "kforge/kforge.hpp"
#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;
using kf_test::sql;

std::string small_pack(const TempDir& dir) {
  const std::string path = dir.file("kforge.sqlite");
  TestPackBuilder b;
  const std::string k = b.add_kernel("decode", "n2048_k4096_g128_bf16_sym", "bm1_bn64_bk32_w4_sk1_s1");
  b.add_winner("n2048_k4096_g128_bf16_sym", k, 1, 4096);
  b.add_generic(true, false);
  b.write(path);
  return path;
}

// Opens `path` for sm_90a expecting `status`; checks the message names the path and the
// directory holds exactly what it held before, each file byte for byte.
std::string refused(const TempDir& dir, const std::string& path, kf_status status) {
  std::map<std::string, std::string> before;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) before[e.path().string()] = file_bytes(e.path());
  kf_db* db = reinterpret_cast<kf_db*>(0x1);
  CHECK(kf_open_for_arch(path.c_str(), "sm_90a", nullptr, &db) == status);
  CHECK(db == nullptr);
  const std::string message = kf_last_error();
  CHECK_MESSAGE(contains(message, path), message);
  std::map<std::string, std::string> after;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) after[e.path().string()] = file_bytes(e.path());
  CHECK(before == after);
  return message;
}

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("a file of random bytes is a schema error naming the path, and stays byte-identical") {
  TempDir dir("rt-open");
  const std::string path = dir.file("kforge.sqlite");
  std::mt19937 rng(7);
  std::string bytes(8192, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary) << bytes;
  const std::string message = refused(dir, path, KF_ERR_SCHEMA);
  CHECK(contains(message, "not an SQLite database"));
  kf_db* db = nullptr;
  CHECK(kf_open(path.c_str(), &db) == KF_ERR_SCHEMA);  // before any GPU detection
  CHECK(file_bytes(path) == bytes);
}

TEST_CASE("another schema version and a foreign or empty SQLite database are schema errors") {
  TempDir dir("rt-open");
  SUBCASE("user_version 99") {
    const std::string path = small_pack(dir);
    sql(path, "PRAGMA user_version = 99");
    const std::string message = refused(dir, path, KF_ERR_SCHEMA);
    CHECK(contains(message, "schema version 99"));
    CHECK(contains(message, "version 1"));
  }
  SUBCASE("foreign database") {
    const std::string path = dir.file("other.db");
    sql(path, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);");
    CHECK(contains(refused(dir, path, KF_ERR_SCHEMA), "not a kforge pack"));
  }
  SUBCASE("version 1 but not the kforge tables") {
    const std::string path = dir.file("other.db");
    sql(path, "CREATE TABLE t (x INTEGER); PRAGMA user_version = 1;");
    CHECK(contains(refused(dir, path, KF_ERR_SCHEMA), "no such table"));
  }
  SUBCASE("empty file") {
    const std::string path = dir.file("empty.sqlite");
    std::ofstream(path, std::ios::binary).flush();
    refused(dir, path, KF_ERR_SCHEMA);
  }
}

TEST_CASE("a missing file or a directory is an I/O error naming the path") {
  TempDir dir("rt-open");
  const std::string missing = dir.file("nope/kforge.sqlite");
  kf_db* db = nullptr;
  CHECK(kf_open_for_arch(missing.c_str(), "sm_90a", nullptr, &db) == KF_ERR_IO);
  CHECK(contains(kf_last_error(), missing));
  CHECK(contains(kf_last_error(), "No such file"));
  CHECK(kf_open(missing.c_str(), &db) == KF_ERR_IO);  // before any GPU detection
  CHECK(kf_open_for_arch(dir.path().c_str(), "sm_90a", nullptr, &db) == KF_ERR_IO);
  CHECK(contains(kf_last_error(), "is a directory"));
  CHECK(db == nullptr);
}

TEST_CASE("a pack without kernels for the arch is not found, listing the archs it has") {
  TempDir dir("rt-open");
  const std::string path = small_pack(dir);
  kf_db* db = nullptr;
  CHECK(kf_open_for_arch(path.c_str(), "gfx942", nullptr, &db) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "gfx942"));
  CHECK(contains(kf_last_error(), "sm_90a"));
  CHECK(kf_open_for_arch(path.c_str(), "", nullptr, &db) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_open_for_arch(nullptr, "sm_90a", nullptr, &db) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "path is NULL"));
  CHECK(kf_open_for_arch(path.c_str(), "sm_90a", nullptr, nullptr) == KF_ERR_INVALID_ARGUMENT);
  kf_close(nullptr);  // accepted
}

TEST_CASE("a winners row naming a kernel the pack lacks is skipped with a warning") {
  TempDir dir("rt-open");
  const std::string path = dir.file("kforge.sqlite");
  TestPackBuilder b;
  b.add_generic(true, false);
  b.add_winner("n2048_k4096_g128_bf16_sym", "w4a16_linear_decode_gone", 1, 64);
  b.write(path);
  auto [db, log] = open_capturing_stderr(dir, path);
  CHECK(contains(log, "w4a16_linear_decode_gone is not in the pack"));
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, &k) == KF_OK);
  CHECK(kf_kernel_is_fallback(k) == 1);
}

TEST_CASE("the pack is read once: selection keeps working after the file is gone") {
  TempDir dir("rt-open");
  const std::string path = small_pack(dir);
  DbPtr db = open_for_arch(path);
  std::filesystem::remove(path);
  CHECK(pick(db.get(), 2048, 4096, 1) == "w4a16_linear_decode_n2048_k4096_g128_bf16_sym_bm1_bn64_bk32_w4_sk1_s1");
}

TEST_CASE("opening a pack leaves no -wal/-shm files behind and reads what a live writer committed") {
  TempDir dir("rt-open");
  const std::string path = small_pack(dir);
  { DbPtr db = open_for_arch(path); }
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);

  // autotune still has the pack open: its last commit is only in the WAL.
  sqlite3* writer = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &writer) == SQLITE_OK);
  REQUIRE(sqlite3_exec(writer, "DELETE FROM winners", nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK(std::filesystem::exists(path + "-wal"));
  {
    DbPtr db = open_for_arch(path);
    const kf_kernel* k = nullptr;
    CaptureStderr err(dir);
    REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, &k) == KF_OK);
    CHECK(kf_kernel_is_fallback(k) == 1);  // the shape is no longer tuned: the commit was seen
  }
  CHECK(std::filesystem::exists(path + "-wal"));  // the writer's, left alone
  sqlite3_close(writer);
}

TEST_CASE("a pack whose side files cannot be created (read-only deployment) is read as immutable") {
  TempDir dir("rt-open");
  const std::string path = small_pack(dir);
  // A directory where SQLite wants its -wal file: opening the WAL fails as it would
  // in a read-only directory.
  std::filesystem::create_directory(path + "-wal");
  DbPtr db = open_for_arch(path);
  CHECK(pick(db.get(), 2048, 4096, 1) == "w4a16_linear_decode_n2048_k4096_g128_bf16_sym_bm1_bn64_bk32_w4_sk1_s1");
}

TEST_CASE("kf_open without a GPU is a no-device error naming both APIs") {
  TempDir dir("rt-open");
  const std::string path = small_pack(dir);
  kf_db* db = nullptr;
  const kf_status status = kf_open(path.c_str(), &db);
  if (status == KF_OK) {  // a machine with a GPU: the pack was opened for its arch
    CHECK(std::string(kf_db_arch(db)).size() > 3);
    kf_close(db);
  } else {
    CHECK(status == KF_ERR_NO_DEVICE);
    CHECK(contains(kf_last_error(), "CUDA"));
    CHECK(contains(kf_last_error(), "HIP"));
    CHECK(db == nullptr);
  }
}

TEST_CASE("version, status names and the C++ wrapper") {
  CHECK(std::string(kf_version()) == KF_VERSION);
  CHECK(std::string(kf_status_name(KF_OK)) == "KF_OK");
  CHECK(std::string(kf_status_name(KF_ERR_UNSUPPORTED_SHAPE)) == "KF_ERR_UNSUPPORTED_SHAPE");
  CHECK(std::string(kf_status_name(static_cast<kf_status>(42))) == "KF_ERR_?");

  TempDir dir("rt-open");
  const std::string path = small_pack(dir);
  kforge::Db db = kforge::Db::open_for_arch(path, "sm_90a", kTestDevice);
  CHECK(db.arch() == "sm_90a");
  CHECK(db.device_name() == kTestDevice);
  const kf_kernel* k = nullptr;
  CHECK(db.select_linear(2048, 4096, 128, true, false, 1, &k) == KF_OK);
  kforge::Db moved = std::move(db);
  CHECK(db.get() == nullptr);
  CHECK(moved.max_workspace(64).floats == 0);
  try {
    kforge::Db::open_for_arch(dir.file("missing.sqlite"), "sm_90a");
    FAIL("no exception");
  } catch (const kforge::Error& e) {
    CHECK(e.status() == KF_ERR_IO);
    CHECK(contains(e.what(), "missing.sqlite"));
  }
}

}  // TEST_SUITE
