// What the kernels of the CPU stand-ins for the GPU libraries share (fake_mla.h,
// fake_mxfp4.h, fake_moe.h, run by fake_libcuda.cpp and fake_libamdhip64.cpp): the outcome
// of a launch, the stand-in library's services they call, and reading a config knob off
// a kernel name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace fake_kernel {

// What a launch did: ran (ok), was refused for its arguments (invalid), or touched memory
// it must not (fault, with why).
struct Outcome {
  enum { ok, invalid, fault } what = ok;
  std::string why;
};

// The allocation check and 16-bit conversions of the stand-in calling.
struct Env {
  char* (*live)(const void* p, size_t bytes);  // [p, p + bytes) inside one allocation, else null
  float (*to_float)(uint16_t h, bool bf16);
  uint16_t (*to_half)(float f, bool bf16);
};

// The number after "_<key>" in a kernel name (e.g. "bm" of ..._bm16_...), 1 without one.
inline int config_value(const std::string& name, const std::string& key) {
  const size_t at = name.find("_" + key);
  return at == std::string::npos ? 1 : std::atoi(name.c_str() + at + 1 + key.size());
}

}  // namespace fake_kernel
