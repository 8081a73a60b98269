#include "report.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <utility>

namespace kf {

MeasureProgress::MeasureProgress(std::ostream& err, int total, bool enabled)
    : err_(err), total_(total), enabled_(enabled && total > 0),
      tty_(enabled_ && &err == &std::cerr && isatty(STDERR_FILENO)), bar_(err, total, tty_) {}

void MeasureProgress::tick(const std::string& what) {
  if (tty_) return bar_.tick(what);
  if (!enabled_) return;
  const int decile = 10 * ++count_ / total_;
  if (decile == last_decile_) return;
  last_decile_ = decile;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  char line[160];
  std::snprintf(line, sizeof line, "measured %d/%d (%d%%)  %.0fs  ETA %.0fs\n", count_, total_, 100 * count_ / total_,
                elapsed, elapsed / count_ * (total_ - count_));
  err_ << line << std::flush;
}

namespace {

// One table of the routing-'' winners per M (T, Q) range of (op, shape key) pairs, under a
// title the caller prints: an op column when op_width > 0, then shape, range, kernel and
// median us; `none` stands for a shape without winners.
struct WinnerTable {
  int op_width, shape_width, kernel_width;
  const char* range_label;
  const char* none;
};

int print_table(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                const std::vector<std::pair<std::string, std::string>>& shapes, bool cold_l2, const WinnerTable& t) {
  char line[512];
  // The op column (and its separating space) only where the table has one.
  auto lead = [&](const char* op) {
    return t.op_width > 0 ? std::snprintf(line, sizeof line, "%-*s ", t.op_width, op) : 0;
  };
  int n = lead("op");
  std::snprintf(line + n, sizeof line - n, "%-*s %-14s %-*s %10s\n", t.shape_width, "shape", t.range_label,
                t.kernel_width, "kernel", "median us");
  out << line;
  int with_winners = 0;
  for (const auto& [op, key] : shapes) {
    const auto win = db.winners(prov, {op, key, cold_l2, ""});
    if (win.empty()) {
      n = lead(op.c_str());
      std::snprintf(line + n, sizeof line - n, "%-*s %-14s %-*s\n", t.shape_width, key.c_str(), "-", t.kernel_width,
                    t.none);
      out << line;
      continue;
    }
    ++with_winners;
    bool first = true;
    for (const auto& w : win) {
      const std::string range = std::to_string(w.m_lo) +
                                (w.m_hi == kMaxWinnerM ? "+" : w.m_hi == w.m_lo ? "" : "-" + std::to_string(w.m_hi));
      n = lead(first ? op.c_str() : "");
      std::snprintf(line + n, sizeof line - n, "%-*s %-14s %-*s %10.2f\n", t.shape_width, first ? key.c_str() : "",
                    range.c_str(), t.kernel_width, w.kernel.c_str(), w.median_us);
      out << line;
      first = false;
    }
  }
  return with_winners;
}

// The routing-robust winners (routing '') of (op, shape key) pairs per T range.
int print_robust_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov, const char* family,
                         const std::vector<std::pair<std::string, std::string>>& shapes, bool cold_l2) {
  if (shapes.empty()) return 0;
  out << "\n" << family << " winners on " << prov.device << " (" << prov.arch << ", " << (cold_l2 ? "cold" : "warm")
      << " L2), robust over the routing archetypes; median us = worst over them:\n";
  return print_table(out, db, prov, shapes, cold_l2, {16, 40, 90, "T range", "(no winner stored: none passed under every routing, or the shape was not tuned)"});
}

}  // namespace

int print_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov, const std::vector<TuneShape>& shapes,
                  bool cold_l2) {
  if (shapes.empty()) return 0;
  out << "\nwinners on " << prov.device << " (" << prov.arch << ", " << (cold_l2 ? "cold" : "warm") << " L2):\n";
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& ts : shapes) keys.push_back({"w4a16_linear", ts.key});
  return print_table(out, db, prov, keys, cold_l2, {0, 28, 76, "M range", "(no winner stored: none passed, or the shape was not tuned)"});
}

int print_moe_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                      const std::vector<MoeTuneShape>& shapes, bool cold_l2) {
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& s : shapes) keys.push_back({s.op, s.key});
  return print_robust_winners(out, db, prov, "MoE", keys, cold_l2);
}

int print_mxfp4_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                        const std::vector<Mxfp4TuneShape>& shapes, bool cold_l2) {
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& s : shapes) keys.push_back({s.op, s.key});
  return print_robust_winners(out, db, prov, "MXFP4 MoE", keys, cold_l2);
}

int print_mla_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov,
                      const std::vector<MlaTuneShape>& shapes, bool cold_l2) {
  if (shapes.empty()) return 0;
  out << "\nsparse_mla_decode winners on " << prov.device << " (" << prov.arch << ", " << (cold_l2 ? "cold" : "warm")
      << " L2; a split kernel's time includes its combine):\n";
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& m : shapes) keys.push_back({m.op, m.key});
  return print_table(out, db, prov, keys, cold_l2, {0, 24, 72, "Q range", "(no winner stored: none passed, or the shape was not tuned)"});
}

}  // namespace kf
