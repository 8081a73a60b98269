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
  // Text columns as wide as their longest entry (MoE ops and shapes are long).
  size_t w_arch = 7, w_op = 13, w_shape = 27, w_kind = 7;
  for (const auto& [key, g] : groups) {
    w_arch = std::max(w_arch, std::get<0>(key).size());
    w_op = std::max(w_op, std::get<1>(key).size());
    w_shape = std::max(w_shape, std::get<2>(key).size());
    w_kind = std::max(w_kind, std::get<3>(key).size());
  }
  const int wa = static_cast<int>(w_arch + 1), wo = static_cast<int>(w_op + 1),
            ws = static_cast<int>(w_shape + 1), wk = static_cast<int>(w_kind + 1);
  os << std::left << std::setw(wa) << "arch" << std::setw(wo) << "op" << std::setw(ws) << "shape"
     << std::setw(wk) << "kind" << std::right << std::setw(8) << "emitted" << std::setw(9) << "compiled"
     << std::setw(7) << "errors" << std::setw(7) << "pruned" << std::setw(5) << "ok" << std::setw(6) << "occ"
     << "  pruned because\n";
  for (const auto& [key, g] : groups) {
    std::string why;
    for (const auto& [reason, n] : g.reasons) why += (why.empty() ? "" : ", ") + reason + " " + std::to_string(n);
    os << std::left << std::setw(wa) << std::get<0>(key) << std::setw(wo) << std::get<1>(key) << std::setw(ws)
       << std::get<2>(key) << std::setw(wk) << std::get<3>(key) << std::right << std::setw(8) << g.emitted
       << std::setw(9) << g.compiled << std::setw(7) << g.errors << std::setw(7) << g.pruned << std::setw(5)
       << g.ok << std::setw(6) << g.best_occupancy << "  " << why << "\n";
  }
  os << "occ = best static occupancy among kept kernels, in waves (warps) per SIMD (scheduler)\n";
}

}  // namespace kf
