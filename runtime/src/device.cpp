#include "device.h"

#include <cstdio>
#include <cstring>

#include "status.h"

namespace kf {
namespace rt {

Backend* backend_for_arch(const char* arch) {
  if (std::strncmp(arch, "sm_", 3) == 0) return &cuda_backend();
  if (std::strncmp(arch, "gfx", 3) == 0) return &hip_backend();
  return nullptr;
}

kf_status detect_device(Backend** backend, DeviceInfo* info) {
  Backend* const candidates[] = {&cuda_backend(), &hip_backend()};
  char reasons[2][512] = {};
  for (int i = 0; i < 2; ++i) {
    Backend& b = *candidates[i];
    int device = 0;
    kf_status status = b.init();
    if (status == KF_OK) status = b.current_device(&device);
    if (status == KF_OK) status = b.device_info(device, info);
    if (status == KF_OK) {
      *backend = &b;
      return KF_OK;
    }
    std::snprintf(reasons[i], sizeof reasons[i], "%s", last_error());  // copied: fail() reuses the buffer
  }
  return fail(KF_ERR_NO_DEVICE, "no GPU found (%s; %s)", reasons[0], reasons[1]);
}

}  // namespace rt
}  // namespace kf
