// Counts heap allocations (operator new in every form, malloc, calloc, realloc and the
// aligned variants) made while counting is on, by replacing them in the program that
// links alloc_counter.cpp. For the allocation-free tests and the selection benchmark;
// glibc only (the replacements forward to __libc_malloc and friends).
#pragma once
#include <cstdint>

namespace kf_testing {

void count_allocations(bool on);
uint64_t allocations();  // since the program started, while counting was on

// Counts the allocations made by f().
template <class F>
uint64_t allocations_in(F&& f) {
  const uint64_t before = allocations();
  count_allocations(true);
  f();
  count_allocations(false);
  return allocations() - before;
}

}  // namespace kf_testing
