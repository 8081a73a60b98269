// The table genkernels ends with: per (arch, op, shape, kind), how many candidates were
// emitted, compiled, pruned (and why), failed, kept, and the best static occupancy.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace kf {

struct SummaryRow {
  std::string arch, op, shape, kind, status;
  int occupancy;
};

void print_summary(std::ostream& os, const std::vector<SummaryRow>& rows);

}  // namespace kf
