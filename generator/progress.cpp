#include "progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace kf {

Progress::Progress(std::ostream& os, int total, bool enabled)
    : os_(os), total_(total), enabled_(enabled && total > 0),
      tty_(&os == &std::cerr && isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

void Progress::tick(const std::string& what) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  ++count_;
  draw(what);
}

void Progress::draw(const std::string& what) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = count_ > 0 ? elapsed / count_ * (total_ - count_) : 0;
  char line[160];
  if (tty_) {
    if (count_ != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const int filled = kWidth * count_ / total_;
    std::snprintf(line, sizeof line, "\r[%-*s] %d/%d  %.0fs  ETA %.0fs  %-24s", kWidth,
                  std::string(filled, '#').c_str(), count_, total_, elapsed, eta, what.c_str());
    os_ << line << std::flush;
    return;
  }
  const int decile = 10 * count_ / total_;
  if (decile == last_decile_) return;
  last_decile_ = decile;
  std::snprintf(line, sizeof line, "compiled %d/%d (%d%%)  %.0fs  ETA %.0fs\n", count_, total_,
                100 * count_ / total_, elapsed, eta);
  os_ << line << std::flush;
}

void Progress::done() {
  if (enabled_ && tty_) os_ << "\n";
}

}  // namespace kf
