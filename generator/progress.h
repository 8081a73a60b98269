// A thread-safe progress bar with an ETA: redrawn in place on a terminal, a line per
// tenth of the work otherwise (CI logs), silent when disabled.
#pragma once
#include <chrono>
#include <mutex>
#include <ostream>
#include <string>

namespace kf {

class Progress {
 public:
  Progress(std::ostream& os, int total, bool enabled);
  void tick(const std::string& what);
  void done();

 private:
  void draw(const std::string& what);
  std::ostream& os_;
  int total_, count_ = 0, last_decile_ = -1;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace kf
