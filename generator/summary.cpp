#include "summary.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <tuple>

namespace kf {

namespace {

struct Group {
  int emitted = 0, compiled = 0, errors = 0, pruned = 0, ok = 0, best_occupancy = 0;
  std::map<std::string, int> reasons;  // "spills" -> count
};

}  // namespace

void print_summary(std::ostream& os, const std::vector<SummaryRow>& rows) {
  std::map<std::tuple<std::string, std::string, std::string, std::string>, Group> groups;
  for (const auto& r : rows) {
    Group& g = groups[{r.arch, r.op, r.shape, r.kind}];
    ++g.emitted;
    if (r.status == "compile_error") {
      ++g.errors;
      continue;
    }
    ++g.compiled;
    if (r.status == "ok") {
      ++g.ok;
      g.best_occupancy = std::max(g.best_occupancy, r.occupancy);
    } else {
      ++g.pruned;
      const std::string why = r.status.substr(7);  // after "pruned:"
      ++g.reasons[why.substr(0, why.find('('))];
    }
  }
  os << std::left << std::setw(8) << "arch" << std::setw(14) << "op" << std::setw(28) << "shape"
     << std::setw(8) << "kind" << std::right << std::setw(8) << "emitted" << std::setw(9) << "compiled"
     << std::setw(7) << "errors" << std::setw(7) << "pruned" << std::setw(5) << "ok" << std::setw(6) << "occ"
     << "  pruned because\n";
  for (const auto& [key, g] : groups) {
    std::string why;
    for (const auto& [reason, n] : g.reasons) why += (why.empty() ? "" : ", ") + reason + " " + std::to_string(n);
    os << std::left << std::setw(8) << std::get<0>(key) << std::setw(14) << std::get<1>(key) << std::setw(28)
       << std::get<2>(key) << std::setw(8) << std::get<3>(key) << std::right << std::setw(8) << g.emitted
       << std::setw(9) << g.compiled << std::setw(7) << g.errors << std::setw(7) << g.pruned << std::setw(5)
       << g.ok << std::setw(6) << g.best_occupancy << "  " << why << "\n";
  }
  os << "occ = best static occupancy among kept kernels, in waves (warps) per SIMD (scheduler)\n";
}

}  // namespace kf
