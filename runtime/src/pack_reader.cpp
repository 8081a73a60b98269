#include "pack_reader.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "status.h"

namespace kf {
namespace rt {

namespace {

struct Connection {
  sqlite3* db = nullptr;
  ~Connection() { sqlite3_close(db); }
};

struct Statement {
  sqlite3_stmt* s = nullptr;
  ~Statement() { sqlite3_finalize(s); }
  std::string text(int column) const {
    const unsigned char* p = sqlite3_column_text(s, column);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
};

// A file SQLite cannot read as a database is a format problem (KF_ERR_SCHEMA), anything
// else that fails while reading is I/O.
kf_status sqlite_failure(sqlite3* db, const char* path, const char* doing) {
  const int code = sqlite3_errcode(db) & 0xff;
  if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
    return fail(KF_ERR_SCHEMA, "'%s' is not a kforge pack: not an SQLite database (%s while %s)", path,
                sqlite3_errmsg(db), doing);
  return fail(KF_ERR_IO, "cannot read kforge pack '%s': %s (while %s)", path, sqlite3_errmsg(db), doing);
}

kf_status prepare(sqlite3* db, const char* path, const char* sql, Statement* st) {
  if (sqlite3_prepare_v2(db, sql, -1, &st->s, nullptr) == SQLITE_OK) return KF_OK;
  const int code = sqlite3_errcode(db) & 0xff;
  if (code == SQLITE_ERROR)  // no such table / column: some other schema
    return fail(KF_ERR_SCHEMA, "'%s' is not a kforge pack of the schema its version says: %s", path,
                sqlite3_errmsg(db));
  return sqlite_failure(db, path, "preparing a query");
}

kf_status version_status(const char* path, int version) {
  if (version == 0)
    return fail(KF_ERR_SCHEMA, "'%s' is an SQLite database but not a kforge pack (no schema version)", path);
  if (version < kPackSchemaVersionMin || version > kPackSchemaVersionMax)
    return fail(KF_ERR_SCHEMA, "kforge pack '%s' has schema version %d; this runtime reads schema version %d or %d", path,
                version, kPackSchemaVersionMin, kPackSchemaVersionMax);
  return KF_OK;
}

kf_status check_version(sqlite3* db, const char* path, int* version) {
  Statement st;
  kf_status status = prepare(db, path, "PRAGMA user_version", &st);
  if (status != KF_OK) return status;
  if (sqlite3_step(st.s) != SQLITE_ROW) return sqlite_failure(db, path, "reading the schema version");
  *version = sqlite3_column_int(st.s, 0);
  return version_status(path, *version);
}

// The winners the runtime serves from: the ops it launches and, from version 2 on, the
// routing-robust rows only (w4a16_linear rows all have routing '').
const char* kServedWinnersV1 =
    "SELECT * FROM winners WHERE arch = ?1"
    " AND op IN ('w4a16_linear', 'w4a16_moe_gemm1', 'w4a16_moe_gemm2', 'sparse_mla_decode',"
    " 'mxfp4_moe_gemm1', 'mxfp4_moe_gemm2')";
const char* kServedWinnersV2 =
    "SELECT * FROM winners WHERE arch = ?1"
    " AND op IN ('w4a16_linear', 'w4a16_moe_gemm1', 'w4a16_moe_gemm2', 'sparse_mla_decode',"
    " 'mxfp4_moe_gemm1', 'mxfp4_moe_gemm2') AND routing = ''";

// Kernels a served winner names, the generic kernels, the MoE helpers and (for packs
// serving sparse MLA) the MLA combine kernels: nothing else is ever selected, so nothing
// else is held in memory.
std::string kernels_sql(const char* served) {
  const std::string s = served;
  return "SELECT name, op, kind, shape, config, threads, code_object FROM kernels"
         " WHERE arch = ?1 AND code_object IS NOT NULL"
         " AND ((op = 'w4a16_linear' AND kind = 'generic') OR op IN ('moe_align', 'moe_silu_mul', 'moe_sum')"
         " OR (op = 'sparse_mla_combine' AND EXISTS (SELECT 1 FROM (" + s + ") WHERE op = 'sparse_mla_decode'))"
         " OR name IN (SELECT kernel FROM (" + s + ")))"
         " ORDER BY name";
}

std::string winners_sql(const char* served) {
  return std::string("SELECT device, op, shape, kernel, m_lo, m_hi, cold_l2 FROM (") + served +
         ") ORDER BY op, shape, device, cold_l2, m_lo";
}

kf_status read_kernels(sqlite3* db, const char* path, const char* arch, const char* served, PackRows* rows) {
  Statement st;
  kf_status status = prepare(db, path, kernels_sql(served).c_str(), &st);
  if (status != KF_OK) return status;
  sqlite3_bind_text(st.s, 1, arch, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    KernelRow k;
    k.name = st.text(0);
    k.op = st.text(1);
    k.kind = st.text(2);
    k.shape = st.text(3);
    k.config = st.text(4);
    k.threads = sqlite3_column_int(st.s, 5);
    const auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(st.s, 6));
    k.code.assign(blob, blob + sqlite3_column_bytes(st.s, 6));
    rows->kernels.push_back(std::move(k));
  }
  return rc == SQLITE_DONE ? KF_OK : sqlite_failure(db, path, "reading kernels");
}

kf_status read_winners(sqlite3* db, const char* path, const char* arch, const char* served, PackRows* rows) {
  Statement st;
  kf_status status = prepare(db, path, winners_sql(served).c_str(), &st);
  if (status != KF_OK) return status;
  sqlite3_bind_text(st.s, 1, arch, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    WinnerRow w;
    w.device = st.text(0);
    w.op = st.text(1);
    w.shape = st.text(2);
    w.kernel = st.text(3);
    w.m_lo = sqlite3_column_int64(st.s, 4);
    w.m_hi = sqlite3_column_int64(st.s, 5);
    w.cold_l2 = sqlite3_column_int(st.s, 6);
    rows->winners.push_back(std::move(w));
  }
  return rc == SQLITE_DONE ? KF_OK : sqlite_failure(db, path, "reading winners");
}

kf_status read_archs(sqlite3* db, const char* path, PackRows* rows) {
  Statement st;
  kf_status status = prepare(db, path, "SELECT DISTINCT arch FROM kernels ORDER BY arch", &st);
  if (status != KF_OK) return status;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW)
    rows->archs += (rows->archs.empty() ? "" : ", ") + st.text(0);
  return rc == SQLITE_DONE ? KF_OK : sqlite_failure(db, path, "reading archs");
}

std::string uri_escaped(const char* path) {
  std::string out;
  for (const char* p = path; *p; ++p) {
    if (*p == '%' || *p == '?' || *p == '#') {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(*p));
      out += hex;
    } else {
      out += *p;
    }
  }
  return out;
}

kf_status check_header(const char* path) {
  unsigned char header[100];
  FILE* f = std::fopen(path, "rb");
  if (!f) return fail(KF_ERR_IO, "cannot open kforge pack '%s': %s", path, std::strerror(errno));
  const size_t got = std::fread(header, 1, sizeof header, f);
  std::fclose(f);
  if (got == 0) return fail(KF_ERR_SCHEMA, "'%s' is empty, not a kforge pack", path);
  if (got < sizeof header || std::memcmp(header, "SQLite format 3", 16) != 0)
    return fail(KF_ERR_SCHEMA, "'%s' is not a kforge pack: not an SQLite database", path);
  // Page 1 in the main file may be stale while a writer's WAL holds a newer one: then
  // SQLite reads the version (check_version).
  if (std::string wal = std::string(path) + "-wal"; access(wal.c_str(), F_OK) == 0) return KF_OK;
  const int version = header[60] << 24 | header[61] << 16 | header[62] << 8 | header[63];
  return version_status(path, version);
}

// One attempt at reading with one way of opening; *cantopen tells the caller that
// SQLite could not open its side files (-wal/-shm), e.g. in a read-only directory.
kf_status read_with(const char* path, bool immutable, const char* arch, PackRows* rows, bool* cantopen) {
  Connection c;
  std::string name = path;
  // Read-write (without create) so that SQLite removes the -wal/-shm files it opens
  // when done, as it cannot from a read-only connection; query_only forbids writes.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (immutable) {
    name = "file:" + uri_escaped(path) + "?immutable=1";
    flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
  }
  if (sqlite3_open_v2(name.c_str(), &c.db, flags, nullptr) != SQLITE_OK)
    return fail(KF_ERR_IO, "cannot open kforge pack '%s': %s", path, c.db ? sqlite3_errmsg(c.db) : "out of memory");
  // A writer (autotune) may hold the file briefly; wait rather than fail.
  sqlite3_busy_timeout(c.db, 5000);
  sqlite3_exec(c.db, "PRAGMA query_only = 1", nullptr, nullptr, nullptr);

  // One read transaction, so the version, kernels and winners come from the same state
  // of the file.
  kf_status status = KF_OK;
  if (sqlite3_exec(c.db, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK)
    status = sqlite_failure(c.db, path, "starting a read");
  int version = 0;
  if (status == KF_OK) status = check_version(c.db, path, &version);
  const char* served = version >= 2 ? kServedWinnersV2 : kServedWinnersV1;
  if (status == KF_OK) status = read_kernels(c.db, path, arch, served, rows);
  if (status == KF_OK) status = read_winners(c.db, path, arch, served, rows);
  if (status == KF_OK) status = read_archs(c.db, path, rows);
  *cantopen = status != KF_OK && (sqlite3_errcode(c.db) & 0xff) == SQLITE_CANTOPEN;
  sqlite3_exec(c.db, "COMMIT", nullptr, nullptr, nullptr);
  return status;
}

}  // namespace

kf_status check_pack_file(const char* path) {
  // Files that are not packs of this version are refused from their header, before
  // SQLite opens them: nothing is written next to them, and they stay as they were.
  struct stat st;
  if (stat(path, &st) != 0) return fail(KF_ERR_IO, "cannot open kforge pack '%s': %s", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    return fail(KF_ERR_IO, "cannot open kforge pack '%s': is a directory (the pack is DIR/kforge.sqlite)", path);
  return check_header(path);
}

kf_status read_pack(const char* path, const char* arch, PackRows* rows) {
  kf_status status = check_pack_file(path);
  bool cantopen = false;
  if (status == KF_OK) status = read_with(path, /*immutable=*/false, arch, rows, &cantopen);
  if (status != KF_OK && cantopen) {
    // A pack deployed read-only: nobody can be writing it, so read it as immutable
    // (no locks, no side files).
    *rows = PackRows();
    status = read_with(path, /*immutable=*/true, arch, rows, &cantopen);
  }
  return status;
}

}  // namespace rt
}  // namespace kf
