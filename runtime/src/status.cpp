#include "status.h"

#include <cstdarg>
#include <cstdio>

namespace kf {
namespace rt {

namespace {
// Zero-initialised static storage: no constructor, no allocation, no TLS destructor.
thread_local char t_last_error[1024];
}  // namespace

kf_status fail(kf_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(t_last_error, sizeof t_last_error, format, args);
  va_end(args);
  return status;
}

const char* last_error() { return t_last_error; }

}  // namespace rt
}  // namespace kf
