// What the suites on the recording stand-in for libcuda (runtime/testing/fake_cuda.h)
// share: fake device addresses (never dereferenced: the stand-in only records them) and
// the launches it recorded, as values to compare.
#pragma once
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fake_cuda.h"

namespace kf_testing {
namespace recorded {

template <class T>
T* fake(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

constexpr uintptr_t kScratch = 0x10000000;  // where the tests' layer scratch starts
inline void* const kStream = fake<void>(0x5000);

struct Launch {
  std::string kernel;
  unsigned grid[3], block[3];
  unsigned shared;  // dynamic shared memory
  void* stream;
  std::vector<unsigned char> args;
  bool overlap_previous;  // launched to overlap the kernel before it
  // The argument struct, of the type the kernel takes.
  template <class T>
  T as() const {
    T v;
    REQUIRE(args.size() == sizeof v);
    std::memcpy(&v, args.data(), sizeof v);
    return v;
  }
};

// Every launch recorded since the stand-in's last reset, in order.
inline std::vector<Launch> launches() {
  std::vector<Launch> out;
  for (int i = 0; i < kf_fake_cuda_launch_count(); ++i) {
    const kf_fake_cuda_launch* r = kf_fake_cuda_launch_at(i);
    REQUIRE(r);
    out.push_back({r->kernel, {r->grid[0], r->grid[1], r->grid[2]}, {r->block[0], r->block[1], r->block[2]},
                   r->shared_bytes, r->stream, std::vector<unsigned char>(r->args, r->args + r->args_bytes),
                   r->overlap_previous != 0});
  }
  return out;
}

inline bool grid_is(const Launch& l, unsigned x, unsigned y, unsigned z) {
  return l.grid[0] == x && l.grid[1] == y && l.grid[2] == z;
}

inline uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// [p, p + bytes) inside the scratch, 256-byte aligned.
inline bool in_scratch(const void* p, uint64_t bytes, size_t scratch_bytes) {
  const uintptr_t a = address(p);
  return a >= kScratch && a % 256 == 0 && a + bytes <= kScratch + scratch_bytes;
}

// [a, a + a_bytes) and [b, b + b_bytes) share no byte.
inline bool apart(const void* a, uint64_t a_bytes, const void* b, uint64_t b_bytes) {
  return address(a) + a_bytes <= address(b) || address(b) + b_bytes <= address(a);
}

}  // namespace recorded
}  // namespace kf_testing
