// The CUDA side of the runtime: cubins loaded with cuModuleLoadData into the context
// current on the calling thread, launched with cuLaunchKernel (kernelParams = {&args}), or
// with cuLaunchKernelEx when a launch may overlap the previous kernel (drivers before 12.3
// launch as usual).
#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "backend.h"
#include "cuda_driver.h"
#include "status.h"

namespace kf {
namespace rt {

namespace {

class CudaBackend final : public Backend {
 public:
  const char* api() const override { return "CUDA"; }

  kf_status init() override {
    std::call_once(once_, [this] { init_status_ = initialise(); });
    return init_status_ == KF_OK ? KF_OK : fail(init_status_, "%s", why_);
  }

  kf_status current_device(int* ordinal) override {
    CUcontext ctx = nullptr;
    CUresult r = cu_->cuCtxGetCurrent(&ctx);
    if (r != CUDA_SUCCESS) return failed(r, "cuCtxGetCurrent");
    if (!ctx) {
      // No context on this thread: use device 0's primary context, as the CUDA runtime
      // does on a thread's first call, so engines mixing both APIs share one context.
      CUdevice dev = 0;
      if ((r = cu_->cuDeviceGet(&dev, 0)) != CUDA_SUCCESS) return failed(r, "cuDeviceGet(0)");
      if ((r = cu_->cuDevicePrimaryCtxRetain(&ctx, dev)) != CUDA_SUCCESS) return failed(r, "cuDevicePrimaryCtxRetain");
      if ((r = cu_->cuCtxSetCurrent(ctx)) != CUDA_SUCCESS) return failed(r, "cuCtxSetCurrent");
    }
    CUdevice dev = 0;
    if ((r = cu_->cuCtxGetDevice(&dev)) != CUDA_SUCCESS) return failed(r, "cuCtxGetDevice");
    *ordinal = dev;  // CUdevice handles are the device ordinals
    return KF_OK;
  }

  kf_status device_info(int ordinal, DeviceInfo* info) override {
    CUdevice dev = 0;
    int major = 0, minor = 0;
    CUresult r = cu_->cuDeviceGet(&dev, ordinal);
    if (r == CUDA_SUCCESS) r = cu_->cuDeviceGetName(info->name, sizeof info->name, dev);
    if (r == CUDA_SUCCESS) r = cu_->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    if (r == CUDA_SUCCESS) r = cu_->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    if (r == CUDA_SUCCESS) r = cu_->cuDeviceGetAttribute(&info->compute_units, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    if (r != CUDA_SUCCESS) return failed(r, "device query");
    // 9.0 code objects are built for sm_90a (wgmma and friends); others carry no suffix.
    std::snprintf(info->arch, sizeof info->arch, "sm_%d%d%s", major, minor, major == 9 && minor == 0 ? "a" : "");
    return KF_OK;
  }

  kf_status load(const void* image, size_t, const char* symbol, unsigned dynamic_shared, void** module,
                 void** function) override {
    CUmodule mod = nullptr;
    CUfunction fn = nullptr;
    CUresult r = cu_->cuModuleLoadData(&mod, image);
    if (r != CUDA_SUCCESS) return failed(r, "cuModuleLoadData", symbol);
    if ((r = cu_->cuModuleGetFunction(&fn, mod, symbol)) != CUDA_SUCCESS) {
      cu_->cuModuleUnload(mod);
      return failed(r, "cuModuleGetFunction", symbol);
    }
    if (dynamic_shared > 0 &&
        (r = cu_->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                     static_cast<int>(dynamic_shared))) != CUDA_SUCCESS) {
      cu_->cuModuleUnload(mod);
      return failed(r, "cuFuncSetAttribute (dynamic shared memory)", symbol);
    }
    *module = mod;
    *function = fn;
    return KF_OK;
  }

  void unload(void* module) override {
    if (cu_ && module) cu_->cuModuleUnload(static_cast<CUmodule>(module));
  }

  kf_status launch(void* function, const LaunchDims& d, void* stream, void** params) override {
    if (d.overlap_previous && overlap_supported_) {
      CUlaunchAttribute overlap = {};
      overlap.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      overlap.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig config = {};
      config.gridDimX = d.grid[0], config.gridDimY = d.grid[1], config.gridDimZ = d.grid[2];
      config.blockDimX = d.block[0], config.blockDimY = d.block[1], config.blockDimZ = d.block[2];
      config.sharedMemBytes = d.shared_bytes;
      config.hStream = static_cast<CUstream>(stream);
      config.attrs = &overlap;
      config.numAttrs = 1;
      const CUresult r = cu_->cuLaunchKernelEx(&config, static_cast<CUfunction>(function), params, nullptr);
      return r == CUDA_SUCCESS ? KF_OK : failed(r, "cuLaunchKernelEx");
    }
    const CUresult r = cu_->cuLaunchKernel(static_cast<CUfunction>(function), d.grid[0], d.grid[1], d.grid[2],
                                           d.block[0], d.block[1], d.block[2], d.shared_bytes, static_cast<CUstream>(stream),
                                           params, nullptr);
    return r == CUDA_SUCCESS ? KF_OK : failed(r, "cuLaunchKernel");
  }

 private:
  kf_status initialise() {
    const char* why = "";
    cu_ = cuda::driver(&why);
    if (!cu_) return no_device("%s", why);
    CUresult r = cu_->cuInit(0);
    if (r != CUDA_SUCCESS) return no_device("cuInit failed: %s", message(r));
    int count = 0;
    r = cu_->cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS) return no_device("cuDeviceGetCount failed: %s", message(r));
    if (count < 1) return no_device("no CUDA device");
    // Overlapped launches (programmatic stream serialization) from drivers that also keep
    // them under stream capture (12.3): older ones launch every kernel as usual.
    int version = 0;
    overlap_supported_ = cu_->cuLaunchKernelEx && cu_->cuDriverGetVersion(&version) == CUDA_SUCCESS &&
                         version >= kOverlapMinDriver;
    return KF_OK;
  }

  // Keeps the reason for every later init() (the driver is probed once per process).
  kf_status no_device(const char* format, ...) __attribute__((format(printf, 2, 3))) {
    const int used = std::snprintf(why_, sizeof why_, "CUDA: ");
    va_list args;
    va_start(args, format);
    std::vsnprintf(why_ + used, sizeof why_ - used, format, args);
    va_end(args);
    return KF_ERR_NO_DEVICE;
  }

  const char* message(CUresult r) const {
    const char* text = nullptr;
    if (cu_ && cu_->cuGetErrorString(r, &text) == CUDA_SUCCESS && text) return text;
    return "unknown CUDA error";
  }

  kf_status failed(CUresult r, const char* what, const char* symbol = nullptr) const {
    if (symbol) return fail(KF_ERR_BACKEND, "CUDA: %s for kernel %s failed: %s (%d)", what, symbol, message(r), int(r));
    return fail(KF_ERR_BACKEND, "CUDA: %s failed: %s (%d)", what, message(r), int(r));
  }

  static constexpr int kOverlapMinDriver = 12030;
  const cuda::Driver* cu_ = nullptr;
  bool overlap_supported_ = false;
  std::once_flag once_;
  kf_status init_status_ = KF_ERR_NO_DEVICE;
  char why_[512] = {};
};

}  // namespace

Backend& cuda_backend() {
  static CudaBackend* backend = new CudaBackend;  // never destroyed, see backend.h
  return *backend;
}

}  // namespace rt
}  // namespace kf
