// The SQLite kernel pack: a full round trip of every field, replace-by-(name, arch), the
// schema's CHECK constraints, and refusing (untouched) files that are not this pack.
#include <doctest/doctest.h>

#include "test_util.h"
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "error.h"
#include "pack.h"

namespace {

using namespace kf_test;

namespace fs = std::filesystem;

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

kf::PackKernel sample(const std::string& name = "w4a16_linear_decode_k", const std::string& arch = "gfx1151") {
  kf::PackKernel k;
  k.name = name;
  k.arch = arch;
  k.op = "w4a16_linear";
  k.kind = "decode";
  k.shape = "n2048_k512_g128_bf16_sym";
  k.config = "bm1_bn64_bk32_w4_sk1_s1";
  k.code_object = {0x7f, 'E', 'L', 'F', 0x00, 0xff, 0x00, 0x01, 0x80};  // embedded NULs on purpose
  k.vgprs_or_regs = 59;
  k.sgprs = 22;
  k.agprs = 4;
  k.lds_bytes = 2048;
  k.scratch_bytes = 16;
  k.spills = 3;
  k.occupancy = 16;
  k.threads = 128;
  k.mma_count = 7;
  k.status = "ok";
  k.compiler = "Debian clang version 19.1.7";
  k.source_hash = "abc123";
  k.log = "line one\nline 'two' with \"quotes\"";
  return k;
}

}  // namespace

TEST_SUITE("pack") {

TEST_CASE("round trip: kernels, shapes and meta") {
  TempDir tmp;
  const std::string path = tmp.sub("kforge.sqlite");
  const kf::PackKernel k = sample();
  kf::PackKernel err = sample("w4a16_linear_prefill_k", "gfx942");
  err.kind = "prefill";
  err.code_object.clear();
  err.status = "compile_error";
  err.mma_count = -1;
  {
    kf::Pack pack = kf::Pack::open(path, true);
    CHECK(pack.path() == path);
    pack.begin();
    pack.put_kernel(k);
    pack.put_kernel(err);
    pack.put_shape({"qwen3-35b", "gdn.out_proj", "w4a16_linear", "n2048_k4096_g128_bf16_sym", 30});
    pack.put_shape({"qwen3-35b", "attn.o_proj", "w4a16_linear", "n2048_k4096_g128_bf16_sym", 10});
    // Insert-or-ignore: the same (model, layer, op, shape) keeps its first count.
    pack.put_shape({"qwen3-35b", "gdn.out_proj", "w4a16_linear", "n2048_k4096_g128_bf16_sym", 99});
    pack.set_meta("kforge_version", "0.1.0");
    pack.set_meta("note", "first");
    pack.set_meta("note", "second");
    pack.commit();
  }
  CHECK(fs::exists(path));
  const kf::Pack pack = kf::Pack::open(path, false);
  const auto rows = pack.kernels();
  REQUIRE(rows.size() == 2);
  // ORDER BY arch, name: gfx1151 < gfx942.
  const kf::PackKernel& r = rows[0];
  CHECK(r.name == k.name);
  CHECK(r.arch == "gfx1151");
  CHECK(r.op == k.op);
  CHECK(r.kind == k.kind);
  CHECK(r.shape == k.shape);
  CHECK(r.config == k.config);
  CHECK(r.code_object == k.code_object);
  CHECK(r.vgprs_or_regs == 59);
  CHECK(r.sgprs == 22);
  CHECK(r.agprs == 4);
  CHECK(r.lds_bytes == 2048);
  CHECK(r.scratch_bytes == 16);
  CHECK(r.spills == 3);
  CHECK(r.occupancy == 16);
  CHECK(r.threads == 128);
  CHECK(r.mma_count == 7);
  CHECK(r.status == "ok");
  CHECK(r.compiler == k.compiler);
  CHECK(r.source_hash == k.source_hash);
  CHECK(r.log == k.log);
  const kf::PackKernel& e = rows[1];
  CHECK(e.arch == "gfx942");
  CHECK(e.status == "compile_error");
  CHECK(e.code_object.empty());
  CHECK(e.mma_count == -1);
  // where_sql filters.
  const auto only = pack.kernels("status = 'compile_error'");
  REQUIRE(only.size() == 1);
  CHECK(only[0].name == err.name);

  const auto shapes = pack.shapes();
  REQUIRE(shapes.size() == 2);
  CHECK(shapes[0].layer == "attn.o_proj");  // ORDER BY model, layer
  CHECK(shapes[0].count == 10);
  CHECK(shapes[1].layer == "gdn.out_proj");
  CHECK(shapes[1].count == 30);
  CHECK(shapes[1].model == "qwen3-35b");
  CHECK(shapes[1].op == "w4a16_linear");
  CHECK(shapes[1].shape == "n2048_k4096_g128_bf16_sym");
  CHECK(pack.meta("kforge_version") == "0.1.0");
  CHECK(pack.meta("note") == "second");
  CHECK(pack.meta("absent") == "");
}

TEST_CASE("put_kernel replaces by (name, arch)") {
  TempDir tmp;
  kf::Pack pack = kf::Pack::open(tmp.sub("p.sqlite"), true);
  kf::PackKernel k = sample("kern", "gfx1151");
  pack.put_kernel(k);
  pack.put_kernel(sample("kern", "gfx1100"));  // same name, other arch: a second row
  k.status = "pruned:spills(4)";
  k.spills = 4;
  k.code_object = {1, 2, 3};
  pack.put_kernel(k);
  const auto rows = pack.kernels();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].arch == "gfx1100");
  CHECK(rows[0].status == "ok");
  CHECK(rows[1].arch == "gfx1151");
  CHECK(rows[1].status == "pruned:spills(4)");
  CHECK(rows[1].spills == 4);
  CHECK(rows[1].code_object == std::vector<uint8_t>{1, 2, 3});
}

TEST_CASE("delete_stale drops only the named (arch, op, shape)'s rows not kept") {
  TempDir tmp;
  kf::Pack pack = kf::Pack::open(tmp.sub("p.sqlite"), true);
  kf::PackKernel other_shape = sample("c", "gfx1151");
  other_shape.shape = "n1024_k2048_g128_bf16_sym";
  auto digested = [](kf::PackKernel k) {
    k.code_sha256 = "digest of " + k.name + " " + k.arch;
    return k;
  };
  pack.put_kernel(digested(sample("a", "gfx1151")));
  pack.put_kernel(digested(sample("b", "gfx1151")));
  pack.put_kernel(digested(sample("b", "gfx942")));  // other arch
  pack.put_kernel(digested(other_shape));
  CHECK(pack.delete_stale("gfx1151", "w4a16_linear", "n2048_k512_g128_bf16_sym", {"a"}) == 1);
  const auto rows = pack.kernels();
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].name == "a");
  CHECK(rows[1].name == "c");
  CHECK(rows[2].arch == "gfx942");
  // The digests stay with their kernels: gfx1151's b went with its row, gfx942's stayed.
  CHECK(rows[0].code_sha256 == "digest of a gfx1151");
  CHECK(rows[2].code_sha256 == "digest of b gfx942");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(tmp.sub("p.sqlite").c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM code_digests", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
  // Nothing kept: the whole (arch, op, shape) goes; a second call finds nothing.
  CHECK(pack.delete_stale("gfx1151", "w4a16_linear", "n2048_k512_g128_bf16_sym", {}) == 1);
  CHECK(pack.delete_stale("gfx1151", "w4a16_linear", "n2048_k512_g128_bf16_sym", {}) == 0);
  CHECK(pack.kernels().size() == 2);
}

TEST_CASE("CHECK constraints reject inconsistent rows") {
  TempDir tmp;
  kf::Pack pack = kf::Pack::open(tmp.sub("p.sqlite"), true);
  kf::PackKernel k = sample("no_code");
  k.code_object.clear();  // 'ok' without a code object
  std::string msg = error_of([&] { pack.put_kernel(k); });
  CHECK(contains(msg, "'no_code'"));
  CHECK(contains(msg, "CHECK"));

  kf::PackKernel bogus = sample("bogus_status");
  bogus.status = "great";
  msg = error_of([&] { pack.put_kernel(bogus); });
  CHECK(contains(msg, "'bogus_status'"));
  CHECK(contains(msg, "CHECK"));

  kf::PackKernel pruned_no_code = sample("pruned_ok");
  pruned_no_code.status = "pruned:no_mma";
  pruned_no_code.code_object.clear();
  CHECK_NOTHROW(pack.put_kernel(pruned_no_code));
  CHECK(pack.kernels().size() == 1);
}

TEST_CASE("a file of random bytes is refused, named, and left byte-identical") {
  TempDir tmp;
  const std::string path = tmp.sub("garbage.sqlite");
  std::vector<char> bytes(8192);
  std::mt19937 rng(1234);
  for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  for (bool create : {true, false}) {
    INFO("create = " << create);
    const std::string msg = error_of([&] { kf::Pack::open(path, create); });
    CHECK(contains(msg, path));
    CHECK(file_bytes(path) == bytes);
  }
  // No journal or WAL files appeared beside it.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) entries += (void(e), 1);
  CHECK(entries == 1);
}

TEST_CASE("a foreign SQLite database is refused untouched") {
  TempDir tmp;
  const std::string path = tmp.sub("other.db");
  sql(path, "CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup');");
  const std::vector<char> before = file_bytes(path);
  const std::string msg = error_of([&] { kf::Pack::open(path, true); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "not a kforge pack"));
  CHECK(file_bytes(path) == before);
}

TEST_CASE("a pack of another schema version is refused naming the version") {
  TempDir tmp;
  const std::string path = tmp.sub("future.sqlite");
  sql(path, "CREATE TABLE kernels (name TEXT); PRAGMA user_version = 99;");
  const std::vector<char> before = file_bytes(path);
  const std::string msg = error_of([&] { kf::Pack::open(path, true); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "99"));
  CHECK(file_bytes(path) == before);
}

TEST_CASE("open without create on a missing path") {
  TempDir tmp;
  const std::string path = tmp.sub("missing.sqlite");
  const std::string msg = error_of([&] { kf::Pack::open(path, false); });
  CHECK(contains(msg, path));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("a new pack has the current schema version and a working schema") {
  TempDir tmp;
  const std::string path = tmp.sub("new.sqlite");
  { kf::Pack::open(path, true); }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == kf::kPackSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
  // Reopening an existing pack keeps it (no re-creation error).
  CHECK_NOTHROW(kf::Pack::open(path, false));
}

}  // TEST_SUITE
