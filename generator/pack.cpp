#include "pack.h"

#include <sys/stat.h>

#include "error.h"

namespace kf {

namespace {

// The SHA-256 of each kernel's code object, kept when a shipped DB drops the object itself
// (tools/slim_db.py keeps winners' objects only): a later rebuild to the same code keeps
// the kernel's measurements (drop_stale_results). Added within schema version 2, where
// readers ignore it: open() creates it in a new pack and adds it to one that lacks it.
const char* kCodeDigests = R"sql(
CREATE TABLE IF NOT EXISTS code_digests (
  arch   TEXT NOT NULL,
  name   TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (arch, name)
);
)sql";

const char* kSchema = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE kernels (
  name          TEXT NOT NULL,
  arch          TEXT NOT NULL,
  op            TEXT NOT NULL,
  kind          TEXT NOT NULL,
  shape         TEXT NOT NULL,
  config        TEXT NOT NULL,
  code_object   BLOB,
  vgprs_or_regs INTEGER NOT NULL,
  sgprs         INTEGER NOT NULL,
  agprs         INTEGER NOT NULL,
  lds_bytes     INTEGER NOT NULL,
  scratch_bytes INTEGER NOT NULL,
  spills        INTEGER NOT NULL,
  occupancy     INTEGER NOT NULL,
  threads       INTEGER NOT NULL CHECK (threads > 0),
  mma_count     INTEGER NOT NULL,
  status        TEXT NOT NULL
                CHECK (status IN ('ok', 'compile_error') OR status LIKE 'pruned:%'),
  compiler      TEXT NOT NULL,
  source_hash   TEXT NOT NULL,
  log           TEXT NOT NULL,
  created       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  UNIQUE (name, arch),
  CHECK (status != 'ok' OR code_object IS NOT NULL)
);
CREATE INDEX kernels_by_shape ON kernels (arch, op, shape, status);
CREATE TABLE shapes (
  model TEXT NOT NULL,
  layer TEXT NOT NULL,
  op    TEXT NOT NULL,
  shape TEXT NOT NULL,
  count INTEGER NOT NULL CHECK (count > 0),
  UNIQUE (model, layer, op, shape)
);
)sql";

// Tuning (autotune): one row per measurement, and the winner per M range. `routing` is
// '' for w4a16_linear rows and for the routing-robust MoE winners; otherwise the routing
// archetype (generator/moe_routing.h) the MoE row was measured under. For MoE ops, m is
// the token count T. Version 1 had no `routing` (migrate_v1 adds it).
const char* kTuningTables = R"sql(
CREATE TABLE results (
  arch           TEXT NOT NULL,
  device         TEXT NOT NULL,
  op             TEXT NOT NULL,
  shape          TEXT NOT NULL,
  m              INTEGER NOT NULL CHECK (m > 0),
  kernel         TEXT NOT NULL,
  disposition    TEXT NOT NULL
                 CHECK (disposition IN ('passed', 'incorrect', 'failed', 'pruned', 'not_supported')),
  median_us      REAL,
  min_us         REAL,
  reps           INTEGER NOT NULL DEFAULT 0,
  max_rel_err    REAL,
  cold_l2        INTEGER NOT NULL CHECK (cold_l2 IN (0, 1)),
  message        TEXT NOT NULL DEFAULT '',
  driver         TEXT NOT NULL,
  runtime        TEXT NOT NULL,
  compiler       TEXT NOT NULL,
  kforge_version TEXT NOT NULL,
  measured_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  routing        TEXT NOT NULL DEFAULT '',
  UNIQUE (arch, device, op, shape, m, kernel, cold_l2, routing),
  CHECK (disposition != 'passed' OR median_us > 0)
);
CREATE TABLE winners (
  arch      TEXT NOT NULL,
  device    TEXT NOT NULL,
  op        TEXT NOT NULL,
  shape     TEXT NOT NULL,
  m_lo      INTEGER NOT NULL CHECK (m_lo >= 1),
  m_hi      INTEGER NOT NULL,
  m_tuned   INTEGER NOT NULL,
  kernel    TEXT NOT NULL,
  median_us REAL NOT NULL,
  cold_l2   INTEGER NOT NULL CHECK (cold_l2 IN (0, 1)),
  routing   TEXT NOT NULL DEFAULT '',
  UNIQUE (arch, device, op, shape, cold_l2, routing, m_lo),
  CHECK (m_lo <= m_tuned AND m_tuned <= m_hi)
);
)sql";

// The columns version 1 had, copied as they are by the migration.
const char* kResultsV1Columns =
    "arch, device, op, shape, m, kernel, disposition, median_us, min_us, reps, max_rel_err, cold_l2, message,"
    " driver, runtime, compiler, kforge_version, measured_at";
const char* kWinnersV1Columns = "arch, device, op, shape, m_lo, m_hi, m_tuned, kernel, median_us, cold_l2";

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const std::string& sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw Error(std::string("pack: ") + sqlite3_errmsg(db) + " in: " + sql.substr(0, 80));
  }
  ~Stmt() { sqlite3_finalize(s); }
  void text(int i, const std::string& v) { sqlite3_bind_text(s, i, v.c_str(), -1, SQLITE_TRANSIENT); }
  void integer(int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
  std::string col_text(int i) const {
    const auto* p = sqlite3_column_text(s, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
};

// Version 1 -> 2: `routing` in results and winners, part of both UNIQUE keys. SQLite
// cannot change a table's constraints in place: the v1 tables are renamed, the v2 ones
// created, every row copied (routing = ''), the old ones dropped, all in one IMMEDIATE
// transaction that re-reads the version (another process may have migrated first). A
// file without the v1 tables is no kforge pack: refused, rolled back, untouched.
void migrate_v1(sqlite3* db, const std::string& path) {
  auto exec = [&](const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err ? err : sqlite3_errmsg(db);
      sqlite3_free(err);
      throw Error(msg);
    }
  };
  exec("BEGIN IMMEDIATE");
  try {
    int version = -1;
    {
      Stmt v(db, "PRAGMA user_version");
      if (sqlite3_step(v.s) == SQLITE_ROW) version = sqlite3_column_int(v.s, 0);
    }
    if (version == kPackSchemaVersion) {  // migrated meanwhile
      exec("COMMIT");
      return;
    }
    {
      Stmt t(db,
             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
             " ('meta', 'kernels', 'results', 'winners', 'shapes')");
      if (version != 1 || sqlite3_step(t.s) != SQLITE_ROW || sqlite3_column_int(t.s, 0) != 5)
        throw Error("it lacks the tables of a version 1 pack");
    }
    exec("ALTER TABLE results RENAME TO results_v1");
    exec("ALTER TABLE winners RENAME TO winners_v1");
    exec(kTuningTables);
    exec(std::string("INSERT INTO results (") + kResultsV1Columns + ") SELECT " + kResultsV1Columns +
         " FROM results_v1");
    exec(std::string("INSERT INTO winners (") + kWinnersV1Columns + ") SELECT " + kWinnersV1Columns +
         " FROM winners_v1");
    exec("DROP TABLE results_v1");
    exec("DROP TABLE winners_v1");
    exec("UPDATE meta SET value = '" + std::to_string(kPackSchemaVersion) + "' WHERE key = 'schema_version'");
    exec("PRAGMA user_version=" + std::to_string(kPackSchemaVersion));
    exec("COMMIT");
  } catch (const std::exception& e) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw Error("pack '" + path + "' has schema version 1 and cannot be migrated to version " +
                std::to_string(kPackSchemaVersion) + " (" + e.what() + "); left untouched");
  }
}

}  // namespace

Pack Pack::open(const std::string& path, bool create) {
  struct stat st;
  const bool exists = stat(path.c_str(), &st) == 0;
  if (!exists && !create) throw Error("pack '" + path + "' does not exist");
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error("cannot open pack '" + path + "': " + msg);
  }
  Pack pack(db, path);
  sqlite3_busy_timeout(db, 10000);
  int version = -1, tables = -1;
  try {
    Stmt v(db, "PRAGMA user_version");
    if (sqlite3_step(v.s) == SQLITE_ROW) version = sqlite3_column_int(v.s, 0);
    Stmt t(db, "SELECT count(*) FROM sqlite_master");
    if (sqlite3_step(t.s) == SQLITE_ROW) tables = sqlite3_column_int(t.s, 0);
  } catch (const Error& e) {
    throw Error("'" + path + "' is not a kforge pack (" + e.what() + ")");
  }
  if (version < 0 || tables < 0)
    throw Error("'" + path + "' is not a readable SQLite database: " + sqlite3_errmsg(db));
  if (version == 0 && tables == 0 && !create) {
    throw Error("'" + path + "' is empty, not a kforge pack; left untouched");
  } else if (version == 0 && tables == 0) {
    pack.exec("PRAGMA journal_mode=WAL");
    pack.exec("BEGIN");
    pack.exec(kSchema);
    pack.exec(kTuningTables);
    pack.exec("PRAGMA user_version=" + std::to_string(kPackSchemaVersion));
    pack.exec("COMMIT");
  } else if (version == 0) {
    throw Error("'" + path + "' is an SQLite database but not a kforge pack (no schema version); left untouched");
  } else if (version == 1) {
    migrate_v1(db, path);
  } else if (version != kPackSchemaVersion) {
    throw Error("pack '" + path + "' has schema version " + std::to_string(version) + ", this kforge reads version " +
                std::to_string(kPackSchemaVersion) + "; left untouched");
  }
  // Writers need code_digests; a read-only file (a shipped DB installed read-only, opened
  // to export or check) goes on without it, as readers do.
  bool digests = false;
  {
    Stmt t(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'code_digests'");
    digests = sqlite3_step(t.s) == SQLITE_ROW;
  }
  if (!digests && !sqlite3_db_readonly(db, "main")) pack.exec(kCodeDigests);
  return pack;
}

Pack Pack::open_read_only(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error("pack '" + path + "' does not exist");
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error("cannot open pack '" + path + "': " + msg);
  }
  Pack pack(db, path);
  sqlite3_busy_timeout(db, 10000);
  int version = -1;
  try {
    Stmt v(db, "PRAGMA user_version");
    if (sqlite3_step(v.s) == SQLITE_ROW) version = sqlite3_column_int(v.s, 0);
  } catch (const Error& e) {
    throw Error("'" + path + "' is not a kforge pack (" + e.what() + ")");
  }
  if (version != 1 && version != kPackSchemaVersion)
    throw Error("'" + path + "' is not a kforge pack of schema version 1 or " + std::to_string(kPackSchemaVersion) +
                " (user_version " + std::to_string(version) + ")");
  return pack;
}

Pack::~Pack() { sqlite3_close(db_); }

void Pack::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error("pack '" + path_ + "': " + msg);
  }
}

void Pack::begin() { exec("BEGIN IMMEDIATE"); }
void Pack::commit() { exec("COMMIT"); }
void Pack::rollback() { exec("ROLLBACK"); }

void Pack::put_kernel(const PackKernel& k) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO kernels (name, arch, op, kind, shape, config, code_object, vgprs_or_regs,"
         " sgprs, agprs, lds_bytes, scratch_bytes, spills, occupancy, threads, mma_count, status, compiler,"
         " source_hash, log) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)");
  s.text(1, k.name);
  s.text(2, k.arch);
  s.text(3, k.op);
  s.text(4, k.kind);
  s.text(5, k.shape);
  s.text(6, k.config);
  if (k.code_object.empty())
    sqlite3_bind_null(s.s, 7);
  else
    sqlite3_bind_blob(s.s, 7, k.code_object.data(), static_cast<int>(k.code_object.size()), SQLITE_TRANSIENT);
  const int ints[] = {k.vgprs_or_regs, k.sgprs, k.agprs, k.lds_bytes, k.scratch_bytes,
                      k.spills, k.occupancy, k.threads, k.mma_count};
  for (int i = 0; i < 9; ++i) s.integer(8 + i, ints[i]);
  s.text(17, k.status);
  s.text(18, k.compiler);
  s.text(19, k.source_hash);
  s.text(20, k.log);
  if (sqlite3_step(s.s) != SQLITE_DONE)
    throw Error("pack '" + path_ + "': cannot store kernel '" + k.name + "': " + sqlite3_errmsg(db_));
  const bool digest = !k.code_sha256.empty();  // a slimmed row copied keeps it too
  Stmt d(db_, digest ? "INSERT OR REPLACE INTO code_digests (arch, name, sha256) VALUES (?1, ?2, ?3)"
                     : "DELETE FROM code_digests WHERE arch = ?1 AND name = ?2");
  d.text(1, k.arch);
  d.text(2, k.name);
  if (digest) d.text(3, k.code_sha256);
  if (sqlite3_step(d.s) != SQLITE_DONE)
    throw Error("pack '" + path_ + "': cannot store the digest of kernel '" + k.name + "': " + sqlite3_errmsg(db_));
}

int Pack::drop_stale_results(const PackKernel& k) {
  // ?4 is NULL for a rebuild that did not compile: then nothing says the code is the
  // same. Where the stored row kept no code object (a slimmed DB's non-winners), its
  // digest (?5, code_digests) stands for it; without one, the rows go.
  Stmt s(db_,
         "DELETE FROM results WHERE arch = ?1 AND kernel = ?2 AND EXISTS (SELECT 1 FROM kernels"
         " WHERE kernels.arch = ?1 AND kernels.name = ?2 AND kernels.source_hash != ?3"
         " AND (?4 IS NULL OR (kernels.code_object IS NULL AND NOT EXISTS (SELECT 1 FROM code_digests d"
         " WHERE d.arch = ?1 AND d.name = ?2 AND d.sha256 = ?5)) OR kernels.code_object != ?4))");
  s.text(1, k.arch);
  s.text(2, k.name);
  s.text(3, k.source_hash);
  if (!k.code_object.empty()) {
    sqlite3_bind_blob(s.s, 4, k.code_object.data(), static_cast<int>(k.code_object.size()), SQLITE_TRANSIENT);
    if (!k.code_sha256.empty()) s.text(5, k.code_sha256);
  }
  if (sqlite3_step(s.s) != SQLITE_DONE)
    throw Error("pack '" + path_ + "': cannot drop stale results of '" + k.name + "': " + sqlite3_errmsg(db_));
  return sqlite3_changes(db_);
}

void Pack::put_shape(const PackShape& sh) {
  Stmt s(db_, "INSERT OR IGNORE INTO shapes (model, layer, op, shape, count) VALUES (?1,?2,?3,?4,?5)");
  s.text(1, sh.model);
  s.text(2, sh.layer);
  s.text(3, sh.op);
  s.text(4, sh.shape);
  s.integer(5, sh.count);
  if (sqlite3_step(s.s) != SQLITE_DONE)
    throw Error("pack '" + path_ + "': cannot store shape '" + sh.shape + "': " + sqlite3_errmsg(db_));
}

void Pack::set_meta(const std::string& key, const std::string& value) {
  Stmt s(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)");
  s.text(1, key);
  s.text(2, value);
  if (sqlite3_step(s.s) != SQLITE_DONE) throw Error("pack '" + path_ + "': " + sqlite3_errmsg(db_));
}

int Pack::delete_stale(const std::string& arch, const std::string& op, const std::string& shape,
                       const std::vector<std::string>& keep) {
  exec("CREATE TEMP TABLE IF NOT EXISTS keep_names (name TEXT PRIMARY KEY)");
  exec("DELETE FROM keep_names");
  {
    Stmt ins(db_, "INSERT OR IGNORE INTO keep_names (name) VALUES (?1)");
    for (const auto& n : keep) {
      sqlite3_reset(ins.s);
      ins.text(1, n);
      if (sqlite3_step(ins.s) != SQLITE_DONE) throw Error("pack '" + path_ + "': " + sqlite3_errmsg(db_));
    }
  }
  Stmt del(db_, "DELETE FROM kernels WHERE arch = ?1 AND op = ?2 AND shape = ?3"
                " AND name NOT IN (SELECT name FROM keep_names)");
  del.text(1, arch);
  del.text(2, op);
  del.text(3, shape);
  if (sqlite3_step(del.s) != SQLITE_DONE) throw Error("pack '" + path_ + "': " + sqlite3_errmsg(db_));
  const int deleted = sqlite3_changes(db_);
  // Their digests go with them.
  Stmt dig(db_, "DELETE FROM code_digests WHERE arch = ?1 AND NOT EXISTS"
                " (SELECT 1 FROM kernels k WHERE k.arch = code_digests.arch AND k.name = code_digests.name)");
  dig.text(1, arch);
  if (sqlite3_step(dig.s) != SQLITE_DONE) throw Error("pack '" + path_ + "': " + sqlite3_errmsg(db_));
  return deleted;
}

std::string Pack::meta(const std::string& key) const {
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?1");
  s.text(1, key);
  return sqlite3_step(s.s) == SQLITE_ROW ? s.col_text(0) : "";
}

std::map<std::string, std::string> Pack::runnable_hashes(const std::string& arch) const {
  Stmt s(db_,
         "SELECT name, source_hash FROM kernels WHERE arch = ?1"
         " AND NOT (code_object IS NULL AND status = 'pruned:not_a_winner')");
  s.text(1, arch);
  std::map<std::string, std::string> out;
  while (sqlite3_step(s.s) == SQLITE_ROW) out[s.col_text(0)] = s.col_text(1);
  return out;
}

std::vector<PackKernel> Pack::kernels(const std::string& where_sql) const {
  // A pack opened read-only may predate code_digests.
  bool digests = false;
  {
    Stmt t(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'code_digests'");
    digests = sqlite3_step(t.s) == SQLITE_ROW;
  }
  Stmt s(db_,
         "SELECT name, arch, op, kind, shape, config, code_object, vgprs_or_regs, sgprs, agprs, lds_bytes,"
         " scratch_bytes, spills, occupancy, threads, mma_count, status, compiler, source_hash, log, " +
             std::string(digests ? "(SELECT sha256 FROM code_digests d WHERE d.arch = kernels.arch AND"
                                   " d.name = kernels.name)"
                                 : "NULL") +
             " FROM kernels " + (where_sql.empty() ? "" : "WHERE " + where_sql) + " ORDER BY arch, name");
  std::vector<PackKernel> out;
  while (sqlite3_step(s.s) == SQLITE_ROW) {
    PackKernel k;
    k.name = s.col_text(0);
    k.arch = s.col_text(1);
    k.op = s.col_text(2);
    k.kind = s.col_text(3);
    k.shape = s.col_text(4);
    k.config = s.col_text(5);
    const auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(s.s, 6));
    k.code_object.assign(blob, blob + sqlite3_column_bytes(s.s, 6));
    int* ints[] = {&k.vgprs_or_regs, &k.sgprs, &k.agprs, &k.lds_bytes, &k.scratch_bytes,
                   &k.spills, &k.occupancy, &k.threads, &k.mma_count};
    for (int i = 0; i < 9; ++i) *ints[i] = sqlite3_column_int(s.s, 7 + i);
    k.status = s.col_text(16);
    k.compiler = s.col_text(17);
    k.source_hash = s.col_text(18);
    k.log = s.col_text(19);
    k.code_sha256 = s.col_text(20);
    out.push_back(std::move(k));
  }
  return out;
}

std::vector<PackShape> Pack::shapes() const {
  Stmt s(db_, "SELECT model, layer, op, shape, count FROM shapes ORDER BY model, layer");
  std::vector<PackShape> out;
  while (sqlite3_step(s.s) == SQLITE_ROW)
    out.push_back({s.col_text(0), s.col_text(1), s.col_text(2), s.col_text(3), sqlite3_column_int(s.s, 4)});
  return out;
}

}  // namespace kf
