// Running the device compilers as child processes (no shell: arguments are passed as
// they are, so paths with spaces or quotes are safe).
#pragma once
#include <string>
#include <vector>

namespace kf {

struct ProcessResult {
  int exit_code = -1;   // -1 if it could not be started or was killed by a signal
  std::string output;   // stdout and stderr interleaved
};

ProcessResult run_process(const std::vector<std::string>& argv);

// Absolute path of the first of `names` found on PATH (or given as a path), or "".
std::string find_program(const std::vector<std::string>& names);

}  // namespace kf
