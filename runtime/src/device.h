// Which GPU the calling thread uses, through whichever API has one (CUDA first).
#pragma once
#include "backend.h"

namespace kf {
namespace rt {

// The backend with a device, and that device's arch and name; KF_ERR_NO_DEVICE naming
// why each API is unusable when none has one.
kf_status detect_device(Backend** backend, DeviceInfo* info);

}  // namespace rt
}  // namespace kf
