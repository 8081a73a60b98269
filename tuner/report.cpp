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

int print_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov, const std::vector<TuneShape>& shapes,
                   bool cold_l2) {
  if (shapes.empty()) return 0;
  out << "\nwinners on " << prov.device << " (" << prov.arch << ", " << (cold_l2 ? "cold" : "warm") << " L2):\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-28s %-14s %-76s %10s\n", "shape", "M range", "kernel", "median us");
  out << line;
  int with_winners = 0;
  for (const auto& ts : shapes) {
    const auto win = db.winners(prov, {"w4a16_linear", ts.key, cold_l2, ""});
    if (win.empty()) {
      std::snprintf(line, sizeof line, "%-28s %-14s %-76s\n", ts.key.c_str(), "-", "(no kernel passed)");
      out << line;
      continue;
    }
    ++with_winners;
    bool first = true;
    for (const auto& w : win) {
      const std::string range = std::to_string(w.m_lo) +
                                (w.m_hi == kMaxWinnerM ? "+" : w.m_hi == w.m_lo ? "" : "-" + std::to_string(w.m_hi));
      std::snprintf(line, sizeof line, "%-28s %-14s %-76s %10.2f\n", first ? ts.key.c_str() : "", range.c_str(),
                    w.kernel.c_str(), w.median_us);
      out << line;
      first = false;
    }
  }
  return with_winners;
}

namespace {

// The routing-robust winners (routing '') of (op, shape key) pairs per T range.
int print_robust_winners(std::ostream& out, const ResultsDb& db, const Provenance& prov, const char* family,
                         const std::vector<std::pair<std::string, std::string>>& shapes, bool cold_l2) {
  if (shapes.empty()) return 0;
  out << "\n" << family << " winners on " << prov.device << " (" << prov.arch << ", " << (cold_l2 ? "cold" : "warm")
      << " L2), robust over the routing archetypes; median us = worst over them:\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %-40s %-14s %-90s %10s\n", "op", "shape", "T range", "kernel", "median us");
  out << line;
  int with_winners = 0;
  for (const auto& [op, key] : shapes) {
    const auto win = db.winners(prov, {op, key, cold_l2, ""});
    if (win.empty()) {
      std::snprintf(line, sizeof line, "%-16s %-40s %-14s %-90s\n", op.c_str(), key.c_str(), "-",
                    "(no kernel passed under every routing)");
      out << line;
      continue;
    }
    ++with_winners;
    bool first = true;
    for (const auto& w : win) {
      const std::string range = std::to_string(w.m_lo) +
                                (w.m_hi == kMaxWinnerM ? "+" : w.m_hi == w.m_lo ? "" : "-" + std::to_string(w.m_hi));
      std::snprintf(line, sizeof line, "%-16s %-40s %-14s %-90s %10.2f\n", first ? op.c_str() : "",
                    first ? key.c_str() : "", range.c_str(), w.kernel.c_str(), w.median_us);
      out << line;
      first = false;
    }
  }
  return with_winners;
}

}  // namespace

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
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %-14s %-72s %10s\n", "shape", "Q range", "kernel", "median us");
  out << line;
  int with_winners = 0;
  for (const auto& s : shapes) {
    const auto win = db.winners(prov, {s.op, s.key, cold_l2, ""});
    if (win.empty()) {
      std::snprintf(line, sizeof line, "%-24s %-14s %-72s\n", s.key.c_str(), "-", "(no kernel passed)");
      out << line;
      continue;
    }
    ++with_winners;
    bool first = true;
    for (const auto& w : win) {
      const std::string range = std::to_string(w.m_lo) +
                                (w.m_hi == kMaxWinnerM ? "+" : w.m_hi == w.m_lo ? "" : "-" + std::to_string(w.m_hi));
      std::snprintf(line, sizeof line, "%-24s %-14s %-72s %10.2f\n", first ? s.key.c_str() : "", range.c_str(),
                    w.kernel.c_str(), w.median_us);
      out << line;
      first = false;
    }
  }
  return with_winners;
}

}  // namespace kf
