// A launch's pointer arguments as a table — each with the alignment its kernel's accesses
// need and whether it may be NULL — and the checks every launch path runs on them. The
// message names the argument and is formatted only on failure (no work on the hot path
// beyond the tests themselves).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kforge/kforge.h"
#include "status.h"

namespace kf {
namespace rt {

inline bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

struct TensorArg {
  const void* p;
  const char* name;  // the field of args, e.g. "x"
  int align;         // bytes
  bool needed;       // false: may be NULL
};

// The messages read "<function>(<kernel>): args->x ..." or, with no kernel chosen yet,
// "<function>: args->x ...".
template <size_t N>
kf_status check_present(const TensorArg (&t)[N], const char* function, const char* kernel) {
  for (const TensorArg& a : t)
    if (a.needed && !a.p) {
      if (kernel) return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->%s is NULL", function, kernel, a.name);
      return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->%s is NULL", function, a.name);
    }
  return KF_OK;
}

template <size_t N>
kf_status check_aligned(const TensorArg (&t)[N], const char* function, const char* kernel) {
  for (const TensorArg& a : t)
    if (a.p && !aligned(a.p, static_cast<uintptr_t>(a.align))) {
      if (kernel)
        return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->%s is not %d-byte aligned", function, kernel, a.name,
                    a.align);
      return fail(KF_ERR_INVALID_ARGUMENT, "%s: args->%s is not %d-byte aligned", function, a.name, a.align);
    }
  return KF_OK;
}

// Both, one argument at a time in table order.
template <size_t N>
kf_status check_tensors(const TensorArg (&t)[N], const char* function, const char* kernel) {
  for (const TensorArg& a : t) {
    const TensorArg one[1] = {a};
    kf_status status = check_present(one, function, kernel);
    if (status == KF_OK) status = check_aligned(one, function, kernel);
    if (status != KF_OK) return status;
  }
  return KF_OK;
}

}  // namespace rt
}  // namespace kf
