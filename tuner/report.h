// autotune's closing table: per shape, each M range with its winning kernel and that
// kernel's median time at the M it won.
#pragma once
#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "progress.h"

#include "plan.h"
#include "results_db.h"

namespace kf {

// kf::Progress's bar on a terminal; in a log (not a terminal) a line per tenth of the
// work of our own, since Progress's log lines say "compiled".
class MeasureProgress {
 public:
  MeasureProgress(std::ostream& err, int total, bool enabled);
  void tick(const std::string& what);
  void done() { bar_.done(); }

 private:
  std::ostream& err_;
  int total_, count_ = 0, last_decile_ = -1;
  bool enabled_, tty_;
  Progress bar_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Returns how many shapes have winners.
int print_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov, const std::vector<TuneShape>& shapes,
                   bool cold_l2);
// The MoE shapes' routing-robust winners per T range (routing ''); the per-archetype
// winners are in the DB. Returns how many shapes have winners.
int print_moe_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                      const std::vector<MoeTuneShape>& shapes, bool cold_l2);
// The same for the mxfp4_moe shapes. Returns how many shapes have winners.
int print_mxfp4_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                        const std::vector<Mxfp4TuneShape>& shapes, bool cold_l2);
// The sparse_mla_decode shapes' winners per Q range (routing ''). Returns how many shapes
// have winners.
int print_mla_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                      const std::vector<MlaTuneShape>& shapes, bool cold_l2);

}  // namespace kf
