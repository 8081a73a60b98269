// One exception type for every user-facing failure of the generator: the message
// names the bad value and, where it helps, what would have been accepted.
#pragma once
#include <stdexcept>
#include <string>

namespace kf {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace kf
