// "a,b,,c" -> {"a", "b", "c"}: the comma-separated option values of genkernels and
// autotune (empty items dropped; each tool validates the items themselves).
#pragma once
#include <sstream>
#include <string>
#include <vector>

namespace kf {

inline std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace kf
