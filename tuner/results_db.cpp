#include "results_db.h"

#include <tuple>

#include "error.h"

namespace kf {

namespace {

struct Stmt {
  sqlite3* db;
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* d, const std::string& path, const char* sql) : db(d) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw Error("tuning db '" + path + "': " + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt& text(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.c_str(), -1, SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& integer(int i, int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  Stmt& real(int i, double v) {
    if (std::isnan(v))
      sqlite3_bind_null(s, i);
    else
      sqlite3_bind_double(s, i, v);
    return *this;
  }
  // The key columns shared by results and winners: ?1 arch, ?2 device, ?3 op, ?4 shape,
  // ?5 cold_l2, ?6 routing.
  Stmt& key(const Provenance& p, const TuneKey& k) {
    return text(1, p.arch).text(2, p.device).text(3, k.op).text(4, k.shape).integer(5, k.cold_l2).text(6, k.routing);
  }
  bool row() { return sqlite3_step(s) == SQLITE_ROW; }
  std::string col_text(int i) const {
    const auto* t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
};

}  // namespace

// Only a kernel whose code object the DB holds can win: the measurements of one that was
// slimmed away (tools/slim_db.py) or left the candidate space stay as history, but a
// winner the runtime cannot load would be skipped there and its M range served by
// something never compared with it.
// KF_HAS_CODE(row): whether the kernel a row of `row` (a table or alias with kernel and
// arch columns) names has its code object.
#define KF_HAS_CODE(row)                                                                              \
  " EXISTS (SELECT 1 FROM kernels k WHERE k.name = " row ".kernel AND k.arch = " row ".arch" \
  " AND k.code_object IS NOT NULL)"
#define KF_RUNNABLE " AND" KF_HAS_CODE("results")

ResultsDb ResultsDb::open(const std::string& path, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error("cannot open tuning db '" + path + "': " + msg);
  }
  ResultsDb r(db, path);
  // Waits out the other writers' short transactions instead of failing with SQLITE_BUSY.
  sqlite3_busy_timeout(db, busy_timeout_ms);
  // Packs are created in WAL mode; a copy made elsewhere may not be (readers must not
  // block the writers of a concurrent autotune).
  r.exec("PRAGMA journal_mode=WAL");
  return r;
}

ResultsDb::~ResultsDb() { sqlite3_close(db_); }

void ResultsDb::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw Error("tuning db '" + path_ + "': " + msg);
  }
}

std::set<std::pair<std::string, int64_t>> ResultsDb::stored(const Provenance& p, const TuneKey& key,
                                                             const std::string& measured_since) const {
  Stmt s(db_, path_,
         "SELECT kernel, m FROM results WHERE arch = ?1 AND device = ?2 AND op = ?3 AND shape = ?4 AND cold_l2 = ?5"
         " AND routing = ?6 AND disposition != 'pruned' AND (?7 = '' OR measured_at >= ?7)");
  s.key(p, key).text(7, measured_since);
  std::set<std::pair<std::string, int64_t>> out;
  while (s.row()) out.insert({s.col_text(0), sqlite3_column_int64(s.s, 1)});
  return out;
}

std::vector<Timing> ResultsDb::passed(const Provenance& p, const TuneKey& key) const {
  Stmt s(db_, path_,
         "SELECT m, kernel, median_us, min_us FROM results WHERE arch = ?1 AND device = ?2 AND op = ?3"
         " AND shape = ?4 AND cold_l2 = ?5 AND routing = ?6 AND disposition = 'passed'" KF_RUNNABLE);
  s.key(p, key);
  std::vector<Timing> out;
  while (s.row())
    out.push_back({sqlite3_column_int64(s.s, 0), s.col_text(1), sqlite3_column_double(s.s, 2),
                   sqlite3_column_double(s.s, 3)});
  return out;
}

std::map<std::string, std::vector<Timing>> ResultsDb::passed_by_routing(const Provenance& p,
                                                                       const TuneKey& key) const {
  Stmt s(db_, path_,
         "SELECT routing, m, kernel, median_us, min_us FROM results WHERE arch = ?1 AND device = ?2 AND op = ?3"
         " AND shape = ?4 AND cold_l2 = ?5 AND routing != '' AND disposition = 'passed'" KF_RUNNABLE);
  s.text(1, p.arch).text(2, p.device).text(3, key.op).text(4, key.shape).integer(5, key.cold_l2);
  std::map<std::string, std::vector<Timing>> out;
  while (s.row())
    out[s.col_text(0)].push_back({sqlite3_column_int64(s.s, 1), s.col_text(2), sqlite3_column_double(s.s, 3),
                                  sqlite3_column_double(s.s, 4)});
  return out;
}

std::vector<WinnerRange> ResultsDb::winners(const Provenance& p, const TuneKey& key) const {
  Stmt s(db_, path_,
         "SELECT m_lo, m_hi, m_tuned, kernel, median_us FROM winners WHERE arch = ?1 AND device = ?2"
         " AND op = ?3 AND shape = ?4 AND cold_l2 = ?5 AND routing = ?6 ORDER BY m_lo");
  s.key(p, key);
  std::vector<WinnerRange> out;
  while (s.row())
    out.push_back({sqlite3_column_int64(s.s, 0), sqlite3_column_int64(s.s, 1), sqlite3_column_int64(s.s, 2),
                   s.col_text(3), sqlite3_column_double(s.s, 4)});
  return out;
}

void ResultsDb::replace_winners(const Provenance& p, const TuneKey& key, const std::vector<WinnerRange>& win) {
  Stmt del(db_, path_,
           "DELETE FROM winners WHERE arch = ?1 AND device = ?2 AND op = ?3 AND shape = ?4 AND cold_l2 = ?5"
           " AND routing = ?6");
  del.key(p, key);
  if (sqlite3_step(del.s) != SQLITE_DONE) throw Error("tuning db '" + path_ + "': " + sqlite3_errmsg(db_));
  Stmt ins(db_, path_,
           "INSERT INTO winners (arch, device, op, shape, cold_l2, routing, m_lo, m_hi, m_tuned, kernel, median_us)"
           " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
  for (const auto& w : win) {
    sqlite3_reset(ins.s);
    ins.key(p, key).integer(7, w.m_lo).integer(8, w.m_hi).integer(9, w.m_tuned).text(10, w.kernel);
    ins.real(11, w.median_us);
    if (sqlite3_step(ins.s) != SQLITE_DONE)
      throw Error("tuning db '" + path_ + "': cannot store winner: " + sqlite3_errmsg(db_));
  }
}

std::vector<WinnerRange> ResultsDb::store(const Provenance& p, const TuneKey& key,
                                          const std::vector<ResultRow>& rows) {
  // IMMEDIATE takes the write lock up front: a deferred transaction that read first
  // could not upgrade while another process writes (SQLITE_BUSY without waiting).
  exec("BEGIN IMMEDIATE");
  try {
    {
      Stmt ins(db_, path_,
               "INSERT OR REPLACE INTO results (arch, device, op, shape, cold_l2, routing, m, kernel, disposition,"
               " median_us, min_us, reps, max_rel_err, message, driver, runtime, compiler, kforge_version)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)");
      for (const auto& r : rows) {
        sqlite3_reset(ins.s);
        ins.key(p, key).integer(7, r.m).text(8, r.kernel).text(9, r.disposition);
        ins.real(10, r.median_us).real(11, r.min_us).integer(12, r.reps).real(13, r.max_rel_err);
        ins.text(14, r.message).text(15, p.driver).text(16, p.runtime).text(17, r.compiler);
        ins.text(18, p.kforge_version);
        if (sqlite3_step(ins.s) != SQLITE_DONE)
          throw Error("tuning db '" + path_ + "': cannot store result of '" + r.kernel + "' at M=" +
                      std::to_string(r.m) + ": " + sqlite3_errmsg(db_));
      }
    }
    const std::vector<WinnerRange> win = update_winners(p, key);
    exec("COMMIT");
    return win;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

// The MoE GEMMs are compared by their step in the layer, moe_silu_mul (gemm1) and moe_sum
// (gemm2) included (gemm1_step_times, gemm2_step_times); other ops by their own times.
static std::vector<Timing> step_times(const std::string& op, const std::vector<Timing>& rows) {
  return op == "w4a16_moe_gemm1" ? gemm1_step_times(rows) : op == "w4a16_moe_gemm2" ? gemm2_step_times(rows) : rows;
}

// Winners from everything stored (this process's rows and any other's), so two processes
// tuning different Ms of one shape converge on the same table. Inside the caller's
// transaction.
std::vector<WinnerRange> ResultsDb::update_winners(const Provenance& p, const TuneKey& key, bool robust) {
  const std::vector<WinnerRange> win = compute_winners(step_times(key.op, passed(p, key)));
  replace_winners(p, key, win);
  if (robust && !key.routing.empty()) update_robust_winners(p, key);
  return win;
}

void ResultsDb::update_robust_winners(const Provenance& p, const TuneKey& key) {
  TuneKey robust_key = key;
  robust_key.routing = "";
  auto by_routing = passed_by_routing(p, key);
  for (auto& [routing, rows] : by_routing) rows = step_times(key.op, rows);
  replace_winners(p, robust_key, compute_robust_winners(by_routing));
}

// A winner "can run" when the DB holds its kernel's code object, and has "lost its rows"
// when no passed measurement of it is left for the key (for the robust winners, routing
// '', a row of any archetype counts).
bool ResultsDb::winners_lost_their_rows(const Provenance& p, const TuneKey& key) const {
  Stmt s(db_, path_,
         "SELECT count(*), coalesce(sum(code), 0), coalesce(sum(code AND NOT measured), 0) FROM (SELECT"
         KF_HAS_CODE("w") " AS code,"
         " EXISTS (SELECT 1 FROM results r WHERE r.arch = w.arch AND r.device = w.device AND r.op = w.op"
         " AND r.shape = w.shape AND r.cold_l2 = w.cold_l2 AND (r.routing = w.routing OR w.routing = '')"
         " AND r.kernel = w.kernel AND r.disposition = 'passed') AS measured"
         " FROM winners w WHERE w.arch = ?1 AND w.device = ?2 AND w.op = ?3 AND w.shape = ?4"
         " AND w.cold_l2 = ?5 AND w.routing = ?6)");
  s.key(p, key);
  if (!s.row()) return false;
  const int64_t all = sqlite3_column_int64(s.s, 0), can_run = sqlite3_column_int64(s.s, 1),
                lost = sqlite3_column_int64(s.s, 2);
  // Every winner must still run (else the key is recomputed whatever it lost), and one at
  // least has lost its rows.
  return lost > 0 && can_run == all;
}

ResultsDb::Recomputed ResultsDb::recompute_winners() {
  exec("BEGIN IMMEDIATE");
  try {
    std::vector<std::pair<Provenance, TuneKey>> keys;
    {
      Stmt s(db_, path_, "SELECT DISTINCT arch, device, op, shape, cold_l2, routing FROM results");
      while (s.row()) {
        Provenance p;
        p.arch = s.col_text(0);
        p.device = s.col_text(1);
        keys.push_back({p, {s.col_text(2), s.col_text(3), sqlite3_column_int64(s.s, 4) != 0, s.col_text(5)}});
      }
    }
    // The robust winners (routing '') come from every archetype of a shape at once: once
    // per (device, op, shape, cold), not once per archetype.
    std::set<std::tuple<std::string, std::string, std::string, std::string, bool>> robust_done;
    Recomputed done;
    for (const auto& [p, key] : keys) {
      if (winners_lost_their_rows(p, key)) {
        ++done.kept;
      } else {
        update_winners(p, key, false);
        ++done.keys;
      }
      if (key.routing.empty() || !robust_done.insert({p.arch, p.device, key.op, key.shape, key.cold_l2}).second)
        continue;
      TuneKey robust_key = key;
      robust_key.routing = "";
      if (winners_lost_their_rows(p, robust_key))
        ++done.kept;
      else
        update_robust_winners(p, key);
    }
    exec("COMMIT");
    return done;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace kf
