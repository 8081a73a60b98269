#include "cuda_api.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace kf {
namespace cuda {

namespace {

#define KF_STR2(x) #x
#define KF_STR(x) KF_STR2(x)  // after macro expansion: the versioned symbol cuda.h means

std::string g_why;

// Drivers before 12.8 have only the first version of cuEventElapsedTime, same signature.
void* symbol(void* lib, const char* name) {
  void* p = dlsym(lib, name);
  if (!p && std::string(name) == "cuEventElapsedTime_v2") p = dlsym(lib, "cuEventElapsedTime");
  return p;
}

TimingApi* load() {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    g_why = std::string("cannot load libcuda.so.1 (no NVIDIA driver?): ") + dlerror();
    return nullptr;
  }
  static TimingApi api;
#define KF_CUDA_LOAD(fn)                                                                 \
  api.fn = reinterpret_cast<decltype(api.fn)>(symbol(lib, KF_STR(fn)));                  \
  if (!api.fn) {                                                                         \
    g_why = std::string("libcuda.so.1 has no ") + KF_STR(fn) + " (driver too old?)";      \
    return nullptr;                                                                      \
  }
  KF_CUDA_TIMING_FUNCTIONS(KF_CUDA_LOAD)
#undef KF_CUDA_LOAD
  return &api;
}

}  // namespace

const TimingApi* timing_api(const char** why) {
  static std::once_flag once;
  static TimingApi* api = nullptr;
  std::call_once(once, [] { api = load(); });
  if (!api && why) *why = g_why.c_str();
  return api;
}

}  // namespace cuda
}  // namespace kf
