#include "hip_driver.h"

#include <dlfcn.h>

#include <cstdio>
#include <mutex>

namespace kf {
namespace hip {

namespace {

// Stringify after macro expansion, so dlsym asks for the symbol the header means.
#define KF_HIP_STR2(x) #x
#define KF_HIP_STR(x) KF_HIP_STR2(x)

char g_why[512];

Driver* load() {
  // ROCm 6 first; Debian 12 ships 5; the unversioned name only exists with -dev files.
  const char* const names[] = {"libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"};
  void* lib = nullptr;
  for (const char* name : names)
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  if (!lib) {
    std::snprintf(g_why, sizeof g_why, "cannot load libamdhip64.so.6/.5 (no ROCm?): %s", dlerror());
    return nullptr;
  }
  static Driver d;
#define KF_HIP_LOAD(fn)                                                              \
  d.fn = reinterpret_cast<decltype(d.fn)>(dlsym(lib, KF_HIP_STR(fn)));               \
  if (!d.fn) {                                                                       \
    std::snprintf(g_why, sizeof g_why, "libamdhip64 has no %s", KF_HIP_STR(fn));     \
    return nullptr;                                                                  \
  }
  KF_HIP_FUNCTIONS(KF_HIP_LOAD)
#undef KF_HIP_LOAD
  return &d;
}

}  // namespace

const Driver* driver(const char** why) {
  static std::once_flag once;
  static Driver* d = nullptr;
  std::call_once(once, [] { d = load(); });
  if (!d && why) *why = g_why;
  return d;
}

}  // namespace hip
}  // namespace kf
