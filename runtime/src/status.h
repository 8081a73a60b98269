// Failure reporting at the C boundary: a status code plus a message naming the bad
// value, kept per thread for kf_last_error(). Formatting writes into a fixed
// thread-local buffer, so error paths allocate nothing either (an engine's hot loop
// may hit them, e.g. m = 0).
#pragma once
#include "kforge/kforge.h"

namespace kf {
namespace rt {

// Records the printf-style message as this thread's last error and returns `status`.
kf_status fail(kf_status status, const char* format, ...) __attribute__((format(printf, 2, 3)));

const char* last_error();

}  // namespace rt
}  // namespace kf
