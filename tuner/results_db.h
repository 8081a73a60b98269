// autotune's side of the pack: the `results` and `winners` tables (schema in
// generator/pack.cpp). Its own SQLite connection in WAL mode with a long busy timeout,
// and every write an IMMEDIATE transaction keyed by the tables' UNIQUE columns (INSERT OR
// REPLACE), so several autotune processes (one per GPU) can share one file without
// losing rows, and a killed process loses only its uncommitted batch.
#pragma once
#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "winners.h"

namespace kf {

// What every results row says about where it was measured.
struct Provenance {
  std::string arch, device, driver, runtime, kforge_version;
};

struct ResultRow {
  std::string kernel, disposition, message, compiler;
  int64_t m = 0;
  double median_us = NAN, min_us = NAN, max_rel_err = NAN;  // NaN is stored as NULL
  int reps = 0;
};

// The rows of one (arch, device, op, shape, cold_l2, routing): the unit winners are
// computed for. routing: '' for w4a16_linear; for the MoE ops the routing archetype the
// rows were measured under ('' names the routing-robust winners, computed from all of them).
struct TuneKey {
  std::string op, shape;
  bool cold_l2 = true;
  std::string routing;
};

class ResultsDb {
 public:
  // Opens a pack that Pack::open has already accepted (schema checked); never creates.
  static ResultsDb open(const std::string& path, int busy_timeout_ms = 120000);
  ResultsDb(ResultsDb&& o) noexcept : db_(o.db_), path_(std::move(o.path_)) { o.db_ = nullptr; }
  ResultsDb(const ResultsDb&) = delete;
  ~ResultsDb();

  // (kernel, m) already stored for this device and key: what a resumed run skips. Pruned
  // rows are not among them: the pruning rules may have changed since (they cost no GPU
  // time to apply again); nor, given `measured_since` (a measured_at time), rows taken
  // before it.
  std::set<std::pair<std::string, int64_t>> stored(const Provenance& p, const TuneKey& key,
                                                    const std::string& measured_since = "") const;
  // Inserts (or replaces) `rows` and recomputes the key's winners from everything stored,
  // all in one transaction. Returns the new winners. Rows of a routing archetype also
  // recompute the routing-robust winners (routing '') from every archetype stored for
  // (op, shape, cold_l2): see compute_robust_winners.
  std::vector<WinnerRange> store(const Provenance& p, const TuneKey& key, const std::vector<ResultRow>& rows);
  std::vector<Timing> passed(const Provenance& p, const TuneKey& key) const;
  // The passed rows of every routing archetype of (op, shape, cold_l2) (key.routing is ignored).
  std::map<std::string, std::vector<Timing>> passed_by_routing(const Provenance& p, const TuneKey& key) const;
  std::vector<WinnerRange> winners(const Provenance& p, const TuneKey& key) const;
  // Recomputes the winners of every key the results hold, in one transaction, measuring
  // nothing (e.g. after kernels lost their code objects). Only kernels whose code object
  // the DB holds can win (passed() and passed_by_routing() return only their rows). A key
  // whose stored winners can all still run but have lost their own measurements (a
  // rebuild of their kernels drops those, at every M) keeps its winners: recomputing it
  // would pick among whatever rows are left. `keys`: keys recomputed (the robust winners
  // go with their shape's first archetype); `kept`: winner sets left as they were.
  struct Recomputed {
    int keys = 0;
    int kept = 0;
  };
  Recomputed recompute_winners();
  const std::string& path() const { return path_; }

 private:
  ResultsDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void exec(const std::string& sql) const;
  void replace_winners(const Provenance& p, const TuneKey& key, const std::vector<WinnerRange>& win);
  // `robust`: also the routing-robust winners of the key's shape (MoE keys only).
  std::vector<WinnerRange> update_winners(const Provenance& p, const TuneKey& key, bool robust = true);
  void update_robust_winners(const Provenance& p, const TuneKey& key);
  // Whether the key's winners stand without their measurements (recompute_winners).
  bool winners_lost_their_rows(const Provenance& p, const TuneKey& key) const;
  sqlite3* db_;
  std::string path_;
};

}  // namespace kf
