// The HIP side of the runtime: AMDGPU code objects loaded with hipModuleLoadData on the
// calling thread's current device, launched with hipModuleLaunchKernel
// (kernelParams = {&args}).
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "backend.h"
#include "hip_driver.h"
#include "status.h"

namespace kf {
namespace rt {

namespace {

class HipBackend final : public Backend {
 public:
  const char* api() const override { return "HIP"; }

  kf_status init() override {
    std::call_once(once_, [this] { init_status_ = initialise(); });
    return init_status_ == KF_OK ? KF_OK : fail(init_status_, "%s", why_);
  }

  kf_status current_device(int* ordinal) override {
    const hipError_t r = hip_->hipGetDevice(ordinal);
    return r == hipSuccess ? KF_OK : failed(r, "hipGetDevice");
  }

  kf_status device_info(int ordinal, DeviceInfo* info) override {
    // The library may be newer than the header and fill a larger struct: leave room.
    struct {
      hipDeviceProp_t props;
      char slack[4096];
    } storage;
    std::memset(&storage, 0, sizeof storage);
    const hipError_t r = hip_->hipGetDeviceProperties(&storage.props, ordinal);
    if (r != hipSuccess) return failed(r, "hipGetDeviceProperties");
    // gcnArchName is "gfx1151" or "gfx90a:sramecc+:xnack-": the code object arch is the
    // part before the first feature.
    const char* arch = storage.props.gcnArchName;
    const size_t len = std::min(std::strcspn(arch, ":"), sizeof info->arch - 1);
    std::memcpy(info->arch, arch, len);
    info->arch[len] = '\0';
    std::snprintf(info->name, sizeof info->name, "%s", storage.props.name);
    info->compute_units = storage.props.multiProcessorCount;
    return KF_OK;
  }

  kf_status load(const void* image, size_t, const char* symbol, unsigned dynamic_shared, void** module,
                 void** function) override {
    // No AMD kind launches with dynamic shared memory (the skinny kind is NVIDIA only).
    if (dynamic_shared > 0)
      return fail(KF_ERR_BACKEND, "%s asks for %u bytes of dynamic shared memory, which the HIP backend does not set up",
                  symbol, dynamic_shared);
    hipModule_t mod = nullptr;
    hipFunction_t fn = nullptr;
    hipError_t r = hip_->hipModuleLoadData(&mod, image);
    if (r != hipSuccess) return failed(r, "hipModuleLoadData", symbol);
    if ((r = hip_->hipModuleGetFunction(&fn, mod, symbol)) != hipSuccess) {
      (void)hip_->hipModuleUnload(mod);
      return failed(r, "hipModuleGetFunction", symbol);
    }
    *module = mod;
    *function = fn;
    return KF_OK;
  }

  void unload(void* module) override {
    if (hip_ && module) (void)hip_->hipModuleUnload(static_cast<hipModule_t>(module));
  }

  kf_status launch(void* function, const LaunchDims& d, void* stream, void** params) override {
    const hipError_t r =
        hip_->hipModuleLaunchKernel(static_cast<hipFunction_t>(function), d.grid[0], d.grid[1], d.grid[2], d.block[0],
                                    d.block[1], d.block[2], d.shared_bytes, static_cast<hipStream_t>(stream), params,
                                    nullptr);
    return r == hipSuccess ? KF_OK : failed(r, "hipModuleLaunchKernel");
  }

 private:
  kf_status initialise() {
    const char* why = "";
    hip_ = hip::driver(&why);
    if (!hip_) return no_device("%s", why);
    hipError_t r = hip_->hipInit(0);
    if (r != hipSuccess) return no_device("hipInit failed: %s", message(r));
    int count = 0;
    r = hip_->hipGetDeviceCount(&count);
    if (r != hipSuccess) return no_device("hipGetDeviceCount failed: %s", message(r));
    if (count < 1) return no_device("no HIP device");
    return KF_OK;
  }

  // Keeps the reason for every later init() (the library is probed once per process).
  kf_status no_device(const char* format, ...) __attribute__((format(printf, 2, 3))) {
    const int used = std::snprintf(why_, sizeof why_, "HIP: ");
    va_list args;
    va_start(args, format);
    std::vsnprintf(why_ + used, sizeof why_ - used, format, args);
    va_end(args);
    return KF_ERR_NO_DEVICE;
  }

  const char* message(hipError_t r) const {
    const char* text = hip_ ? hip_->hipGetErrorString(r) : nullptr;
    return text ? text : "unknown HIP error";
  }

  kf_status failed(hipError_t r, const char* what, const char* symbol = nullptr) const {
    if (symbol) return fail(KF_ERR_BACKEND, "HIP: %s for kernel %s failed: %s (%d)", what, symbol, message(r), int(r));
    return fail(KF_ERR_BACKEND, "HIP: %s failed: %s (%d)", what, message(r), int(r));
  }

  const hip::Driver* hip_ = nullptr;
  std::once_flag once_;
  kf_status init_status_ = KF_ERR_NO_DEVICE;
  char why_[512] = {};
};

}  // namespace

Backend& hip_backend() {
  static HipBackend* backend = new HipBackend;  // never destroyed, see backend.h
  return *backend;
}

}  // namespace rt
}  // namespace kf
