// Carving a caller's scratch buffer into the intermediates of a layer (kf_run_moe,
// kf_run_mxfp4_moe): regions appended one after the other, each 256-byte aligned, sizes
// in int64 with overflow caught.
#pragma once
#include <cstdint>

namespace kf {
namespace rt {

constexpr int64_t kRegionAlign = 256;

class Carver {
 public:
  explicit Carver(int64_t start) : end_(start) {}
  // Byte offset of a new region of count x element_bytes.
  int64_t take(int64_t count, int64_t element_bytes) {
    int64_t bytes = 0;
    const int64_t at = end_;
    if (__builtin_mul_overflow(count, element_bytes, &bytes) || __builtin_add_overflow(at, bytes, &end_) ||
        end_ > INT64_MAX - kRegionAlign)
      overflow_ = true, end_ = 0;
    end_ = (end_ + kRegionAlign - 1) / kRegionAlign * kRegionAlign;
    return at;
  }
  int64_t end() const { return end_; }
  bool overflow() const { return overflow_; }

 private:
  int64_t end_;
  bool overflow_ = false;
};

// a * b, setting *overflow when it does not fit.
inline int64_t checked_mul(int64_t a, int64_t b, bool* overflow) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) *overflow = true;
  return r;
}

template <class T>
T* at(void* base, int64_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

}  // namespace rt
}  // namespace kf
