// Pack schema version 1 -> 2 (routing in results and winners): a version 1 pack opened
// with kf::Pack is migrated in place with every row kept; what is not a version 1 pack
// is refused and left byte-identical.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "pack.h"
#include "test_util.h"

namespace {

using namespace kf_test;

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The version 1 schema as kforge 0.x wrote it (generator/pack.cpp before routing).
const char* kV1Schema = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE kernels (
  name TEXT NOT NULL, arch TEXT NOT NULL, op TEXT NOT NULL, kind TEXT NOT NULL, shape TEXT NOT NULL,
  config TEXT NOT NULL, code_object BLOB, vgprs_or_regs INTEGER NOT NULL, sgprs INTEGER NOT NULL,
  agprs INTEGER NOT NULL, lds_bytes INTEGER NOT NULL, scratch_bytes INTEGER NOT NULL, spills INTEGER NOT NULL,
  occupancy INTEGER NOT NULL, threads INTEGER NOT NULL CHECK (threads > 0), mma_count INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'compile_error') OR status LIKE 'pruned:%'),
  compiler TEXT NOT NULL, source_hash TEXT NOT NULL, log TEXT NOT NULL,
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  UNIQUE (name, arch), CHECK (status != 'ok' OR code_object IS NOT NULL));
CREATE INDEX kernels_by_shape ON kernels (arch, op, shape, status);
CREATE TABLE results (
  arch TEXT NOT NULL, device TEXT NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL,
  m INTEGER NOT NULL CHECK (m > 0), kernel TEXT NOT NULL,
  disposition TEXT NOT NULL CHECK (disposition IN ('passed', 'incorrect', 'failed', 'pruned', 'not_supported')),
  median_us REAL, min_us REAL, reps INTEGER NOT NULL DEFAULT 0, max_rel_err REAL,
  cold_l2 INTEGER NOT NULL CHECK (cold_l2 IN (0, 1)), message TEXT NOT NULL DEFAULT '',
  driver TEXT NOT NULL, runtime TEXT NOT NULL, compiler TEXT NOT NULL, kforge_version TEXT NOT NULL,
  measured_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  UNIQUE (arch, device, op, shape, m, kernel, cold_l2), CHECK (disposition != 'passed' OR median_us > 0));
CREATE TABLE winners (
  arch TEXT NOT NULL, device TEXT NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL,
  m_lo INTEGER NOT NULL CHECK (m_lo >= 1), m_hi INTEGER NOT NULL, m_tuned INTEGER NOT NULL,
  kernel TEXT NOT NULL, median_us REAL NOT NULL, cold_l2 INTEGER NOT NULL CHECK (cold_l2 IN (0, 1)),
  UNIQUE (arch, device, op, shape, cold_l2, m_lo), CHECK (m_lo <= m_tuned AND m_tuned <= m_hi));
CREATE TABLE shapes (
  model TEXT NOT NULL, layer TEXT NOT NULL, op TEXT NOT NULL, shape TEXT NOT NULL,
  count INTEGER NOT NULL CHECK (count > 0), UNIQUE (model, layer, op, shape));
PRAGMA user_version = 1;
)sql";

const char* kV1Rows = R"sql(
INSERT INTO meta VALUES ('schema_version', '1'), ('kforge_version', '0.9');
INSERT INTO kernels (name, arch, op, kind, shape, config, code_object, vgprs_or_regs, sgprs, agprs, lds_bytes,
  scratch_bytes, spills, occupancy, threads, mma_count, status, compiler, source_hash, log)
  VALUES ('w4a16_linear_decode_x', 'sm_90a', 'w4a16_linear', 'decode', 'n256_k256_g128_bf16_sym',
          'bm1_bn64_bk32_w4_sk1_s1', x'7f454c46', 40, 0, 0, 0, 0, 0, 8, 128, 0, 'ok', 'nvcc', 'h', '');
INSERT INTO results (arch, device, op, shape, m, kernel, disposition, median_us, min_us, reps, max_rel_err,
  cold_l2, message, driver, runtime, compiler, kforge_version, measured_at)
  VALUES ('sm_90a', 'H100', 'w4a16_linear', 'n256_k256_g128_bf16_sym', 1, 'w4a16_linear_decode_x', 'passed',
          5.5, 5.25, 50, 0.001, 1, '', '13000', 'cuda', 'nvcc', '0.9', '2025-01-02T03:04:05Z'),
         ('sm_90a', 'H100', 'w4a16_linear', 'n256_k256_g128_bf16_sym', 4, 'w4a16_linear_decode_x', 'incorrect',
          NULL, NULL, 0, 0.5, 1, 'normalised error 0.5', '13000', 'cuda', 'nvcc', '0.9', '2025-01-02T03:04:06Z');
INSERT INTO winners VALUES ('sm_90a', 'H100', 'w4a16_linear', 'n256_k256_g128_bf16_sym', 1, 2147483647, 1,
                            'w4a16_linear_decode_x', 5.5, 1);
INSERT INTO shapes VALUES ('tiny', 'o_proj', 'w4a16_linear', 'n256_k256_g128_bf16_sym', 2);
)sql";

double number(const std::string& path, const std::string& q) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  INFO(q);
  REQUIRE(sqlite3_prepare_v2(db, q.c_str(), -1, &st, nullptr) == SQLITE_OK);
  const double v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

}  // namespace

TEST_SUITE("pack") {

TEST_CASE("a version 1 pack is migrated to version 2 in place, every row kept, routing ''") {
  TempDir tmp;
  const std::string path = tmp.sub("kforge.sqlite");
  sql(path, std::string(kV1Schema) + kV1Rows);
  for (bool create : {false, true}) {  // the second open finds version 2: nothing to do
    kf::Pack pack = kf::Pack::open(path, create);
    CHECK(pack.kernels().size() == 1);
    CHECK(pack.kernels()[0].code_object == std::vector<uint8_t>{0x7f, 'E', 'L', 'F'});
    CHECK(pack.shapes().size() == 1);
    CHECK(pack.meta("schema_version") == std::to_string(kf::kPackSchemaVersion));
    CHECK(pack.meta("kforge_version") == "0.9");
  }
  CHECK(kf::kPackSchemaVersion == 2);
  CHECK(number(path, "PRAGMA user_version") == 2);
  CHECK(number(path, "SELECT count(*) FROM results WHERE routing = ''") == 2);
  CHECK(number(path, "SELECT count(*) FROM winners WHERE routing = ''") == 1);
  // Every v1 column came across as it was.
  CHECK(number(path, "SELECT count(*) FROM results WHERE m = 1 AND disposition = 'passed' AND median_us = 5.5"
                     " AND min_us = 5.25 AND reps = 50 AND max_rel_err = 0.001 AND cold_l2 = 1 AND driver = '13000'"
                     " AND runtime = 'cuda' AND compiler = 'nvcc' AND kforge_version = '0.9'"
                     " AND measured_at = '2025-01-02T03:04:05Z'") == 1);
  CHECK(number(path, "SELECT count(*) FROM results WHERE m = 4 AND median_us IS NULL AND message ="
                     " 'normalised error 0.5'") == 1);
  CHECK(number(path, "SELECT count(*) FROM winners WHERE m_lo = 1 AND m_hi = 2147483647 AND m_tuned = 1"
                     " AND median_us = 5.5 AND cold_l2 = 1") == 1);
  CHECK(number(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v1'") == 0);
  CHECK(number(path, "SELECT count(*) FROM sqlite_master WHERE name = 'kernels_by_shape'") == 1);
  // routing is part of both UNIQUE keys now: per-archetype rows beside the '' ones...
  sql(path,
      "INSERT INTO results (arch, device, op, shape, m, kernel, disposition, median_us, cold_l2, driver, runtime,"
      " compiler, kforge_version, routing) SELECT arch, device, op, shape, m, kernel, disposition, median_us,"
      " cold_l2, driver, runtime, compiler, kforge_version, 'zipf1' FROM results;"
      "INSERT INTO winners (arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2, routing)"
      " SELECT arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2, 'zipf1' FROM winners;");
  CHECK(number(path, "SELECT count(*) FROM results") == 4);
  CHECK(number(path, "SELECT count(*) FROM winners") == 2);
  // ... and still unique within one routing.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "INSERT INTO winners (arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us,"
                         " cold_l2) SELECT arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2"
                         " FROM winners WHERE routing = ''",
                     nullptr, nullptr, nullptr) == SQLITE_CONSTRAINT);
  sqlite3_close(db);
}

TEST_CASE("a new pack has routing in results and winners") {
  TempDir tmp;
  const std::string path = tmp.sub("new.sqlite");
  { kf::Pack::open(path, true); }
  CHECK(number(path, "SELECT count(*) FROM pragma_table_info('results') WHERE name = 'routing'") == 1);
  CHECK(number(path, "SELECT count(*) FROM pragma_table_info('winners') WHERE name = 'routing'") == 1);
}

TEST_CASE("a file that says version 1 but is no kforge pack is refused untouched") {
  TempDir tmp;
  const std::string path = tmp.sub("fake_v1.sqlite");
  sql(path, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1); PRAGMA user_version = 1;");
  const std::vector<char> before = file_bytes(path);
  for (bool create : {false, true}) {
    const std::string msg = error_of([&] { kf::Pack::open(path, create); });
    CHECK(contains(msg, path));
    CHECK(contains(msg, "left untouched"));
    CHECK(file_bytes(path) == before);
  }
  // A version 1 pack missing one of its tables likewise.
  const std::string half = tmp.sub("half_v1.sqlite");
  sql(half, std::string(kV1Schema) + kV1Rows + "DROP TABLE winners;");
  const std::vector<char> half_before = file_bytes(half);
  CHECK(contains(error_of([&] { kf::Pack::open(half, false); }), "version 1"));
  CHECK(file_bytes(half) == half_before);
}

TEST_CASE("a version 1 pack opened read-only is read as it is and never migrated") {
  TempDir tmp;
  const std::string path = tmp.sub("kforge.sqlite");
  sql(path, std::string(kV1Schema) + kV1Rows);
  const std::vector<char> before = file_bytes(path);
  {
    const kf::Pack pack = kf::Pack::open_read_only(path);
    REQUIRE(pack.kernels().size() == 1);
    CHECK(pack.kernels()[0].code_object == std::vector<uint8_t>{0x7f, 'E', 'L', 'F'});
  }
  CHECK(file_bytes(path) == before);
  sql(path, "PRAGMA user_version = 3;");
  CHECK(contains(error_of([&] { kf::Pack::open_read_only(path); }), "user_version 3"));
  CHECK(contains(error_of([&] { kf::Pack::open_read_only(tmp.sub("missing.sqlite")); }), "does not exist"));
}

TEST_CASE("a pack of a newer schema version is refused untouched") {
  TempDir tmp;
  const std::string path = tmp.sub("v3.sqlite");
  sql(path, std::string(kV1Schema) + "PRAGMA user_version = 3;");
  const std::vector<char> before = file_bytes(path);
  const std::string msg = error_of([&] { kf::Pack::open(path, false); });
  CHECK(contains(msg, "schema version 3"));
  CHECK(file_bytes(path) == before);
}

}  // TEST_SUITE
