// The one interface between the runtime and a GPU API (CUDA driver API in runtime/cuda,
// HIP module API in runtime/hip). Both load their library with dlopen on first use, so
// the runtime links neither and works (selection only) on machines without a GPU.
// Every failing call records its reason with fail() (status.h).
#pragma once
#include <cstddef>

#include "kforge/kforge.h"

namespace kf {
namespace rt {

struct DeviceInfo {
  char arch[64];   // "sm_90a", "gfx1151"
  char name[256];  // the driver's device name, as the tuner records it in winners.device
  int compute_units = 0;  // SMs / CUs: persistent kernels launch a few blocks per unit
};

struct LaunchDims {
  unsigned grid[3];
  unsigned block[3];
  unsigned shared_bytes = 0;  // dynamic shared memory (KernelImpl::dynamic_shared)
  // The kernel may start before the previous kernel on the stream has finished: CUDA's
  // programmatic dependent launch, for kernels that wait for it before reading what it
  // writes (templates/kf_grid_dependency.h). A backend without it launches as usual.
  bool overlap_previous = false;
};

// Largest grid y/z a launch may use; the stricter of CUDA's and HIP's limits.
constexpr unsigned kMaxGridYZ = 65535;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* api() const = 0;  // "CUDA", "HIP"
  // Loads the library and initialises the API once (thread-safe); KF_ERR_NO_DEVICE when
  // the library is missing or there is no device.
  virtual kf_status init() = 0;
  // The calling thread's device (CUDA: of its current context, making device 0's primary
  // context current when it has none, as the CUDA runtime does).
  virtual kf_status current_device(int* ordinal) = 0;
  virtual kf_status device_info(int ordinal, DeviceInfo* info) = 0;
  // Loads a code object on the current device and looks up `symbol` in it; a kernel
  // launched with dynamic shared memory is allowed `dynamic_shared` bytes of it.
  virtual kf_status load(const void* image, size_t bytes, const char* symbol, unsigned dynamic_shared, void** module,
                         void** function) = 0;
  virtual void unload(void* module) = 0;
  // Asynchronous launch: no allocation, no synchronisation.
  virtual kf_status launch(void* function, const LaunchDims& dims, void* stream, void** params) = 0;
};

// Process-wide instances (never destroyed: engines may launch from static destructors).
Backend& cuda_backend();
Backend& hip_backend();
// The backend whose code objects `arch` names: sm_* -> CUDA, gfx* -> HIP, else nullptr.
Backend* backend_for_arch(const char* arch);

}  // namespace rt
}  // namespace kf
