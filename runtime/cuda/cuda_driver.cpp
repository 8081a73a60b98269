#include "cuda_driver.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace kf {
namespace cuda {

namespace {

// cuda.h maps many names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2); stringify
// after macro expansion so dlsym asks for the symbol the header means.
#define KF_STR2(x) #x
#define KF_STR(x) KF_STR2(x)

std::string g_why;

Driver* load() {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    g_why = std::string("cannot load libcuda.so.1 (no NVIDIA driver?): ") + dlerror();
    return nullptr;
  }
  static Driver d;
#define KF_CUDA_LOAD(fn)                                                             \
  d.fn = reinterpret_cast<decltype(d.fn)>(dlsym(lib, KF_STR(fn)));                   \
  if (!d.fn) {                                                                       \
    g_why = std::string("libcuda.so.1 has no ") + KF_STR(fn);                        \
    return nullptr;                                                                  \
  }
  KF_CUDA_DRIVER_FUNCTIONS(KF_CUDA_LOAD)
#undef KF_CUDA_LOAD
#define KF_CUDA_LOAD_OPTIONAL(fn) d.fn = reinterpret_cast<decltype(d.fn)>(dlsym(lib, KF_STR(fn)));
  KF_CUDA_DRIVER_OPTIONAL_FUNCTIONS(KF_CUDA_LOAD_OPTIONAL)
#undef KF_CUDA_LOAD_OPTIONAL
  return &d;
}

}  // namespace

const Driver* driver(const char** why) {
  static std::once_flag once;
  static Driver* d = nullptr;
  std::call_once(once, [] { d = load(); });
  if (!d && why) *why = g_why.c_str();
  return d;
}

}  // namespace cuda
}  // namespace kf
