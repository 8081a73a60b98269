// A number inside a canonical key, read after the key's regex has matched (so it is all
// digits): one too large for int64 makes the key bad, named by `what`.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "error.h"

namespace kf {

inline int64_t key_number(const std::string& digits, const std::string& what) {
  try {
    return std::stoll(digits);
  } catch (const std::out_of_range&) {
    throw Error(what + " has a number out of range");
  }
}

}  // namespace kf
