// HipMeasurer, part 1: the device and the buffers (see hip_measurer_detail.h;
// hip_measure.cpp runs the kernels).
#include <algorithm>
#include <cstring>

#include "hip_measurer_detail.h"
#include "linear_measure.h"

namespace kf {

std::string hip_arch_name(const std::string& gcn_arch_name) { return gcn_arch_name.substr(0, gcn_arch_name.find(':')); }

namespace hip_detail {

void DevBuf::alloc(const hip::Driver* d, int64_t n, const char* what) {
  release();
  hip = d;
  bytes = std::max<size_t>(static_cast<size_t>(n), 256);
  if (hip->hipExtMallocWithFlags(&ptr, bytes, hipDeviceMallocDefault) != hipSuccess) {
    ptr = nullptr;
    throw Error("cannot allocate " + std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB on the GPU for " + what);
  }
}

std::string HipMeasurer::text(hipError_t rc) const {
  const char* name = hip_->hipGetErrorName(rc);
  const char* str = hip_->hipGetErrorString(rc);
  const std::string n = name ? name : "HIP error " + std::to_string(rc);
  return str && n != str ? n + " (" + str + ")" : n;  // HIP 5.2 returns the name for both
}

HipMeasurer::HipMeasurer(const HipOptions& opt)
    : opt_(opt), host_(opt.seed, opt.host_threads), moe_host_(opt.seed, opt.host_threads),
      mla_host_(opt.seed, opt.host_threads), mx_host_(opt.seed, opt.host_threads) {
  const char* why = "unknown reason";
  hip_ = hip::driver(&why);
  if (!hip_) throw NoGpuError(std::string("HIP: ") + why);
  // Without a GPU, HIP 5.2 fails hipInit (hipErrorInvalidDevice) and others report no
  // device from the count: both mean nothing to measure on.
  const hipError_t init = hip_->hipInit(0);
  if (init != hipSuccess) throw NoGpuError("HIP: hipInit failed: " + text(init) + " (no AMD GPU visible?)");
  int count = 0;
  if (hip_->hipGetDeviceCount(&count) != hipSuccess || count == 0) throw NoGpuError("HIP: no AMD GPU visible");
  if (opt.device < 0 || opt.device >= count)
    throw Error("--device " + std::to_string(opt.device) + " but " + std::to_string(count) +
                " HIP device(s) are visible");
  // A newer library may fill a larger struct than this header's: leave room.
  struct {
    hipDeviceProp_t props;
    char slack[4096];
  } storage;
  std::memset(&storage, 0, sizeof storage);
  int driver = 0, runtime = 0;
  if (hip_->hipGetDeviceProperties(&storage.props, opt.device) != hipSuccess ||
      hip_->hipDriverGetVersion(&driver) != hipSuccess || hip_->hipRuntimeGetVersion(&runtime) != hipSuccess)
    throw NoGpuError("HIP: cannot query device " + std::to_string(opt.device));
  auto attr = [&](hipDeviceAttribute_t a) {
    int v = 0;
    return hip_->hipDeviceGetAttribute(&v, a, opt.device) == hipSuccess ? v : 0;
  };
  storage.props.name[sizeof storage.props.name - 1] = '\0';
  storage.props.gcnArchName[sizeof storage.props.gcnArchName - 1] = '\0';
  info_.name = storage.props.name;
  info_.arch = hip_arch_name(storage.props.gcnArchName);
  info_.driver = std::to_string(driver);
  info_.runtime = "hip-module-api " + std::to_string(runtime);  // the loaded library's, not the header's
  info_.l2_bytes = attr(hipDeviceAttributeL2CacheSize);
  cus_ = std::max(1, attr(hipDeviceAttributeMultiprocessorCount));
  info_.compute_units = cus_;
  measure::check_device(info_);
  measure::set_up_device(info_.name, [&] { setup_device(); }, [&] { drop_device(false); });
}

HipMeasurer::~HipMeasurer() {
  // With a kernel still running, freeing would wait for it forever; exiting the process
  // lets the driver tear the queue down.
  if (!hung_) drop_device(false);
}

void HipMeasurer::setup_device() {
  dev_ok_ = true;  // from here on drop_device() cleans up
  check(hip_->hipSetDevice(opt_.device), "hipSetDevice");
  // A blocking stream: it orders itself after hipMemcpy / hipMemsetD32 on the null
  // stream, which may still be in flight when they return.
  check(hip_->hipStreamCreate(&stream_), "hipStreamCreate");
  flush_.alloc(hip_, flush_bytes(info_.l2_bytes), "the L2 flush buffer");
  check(hip_->hipMemsetD32(flush_.ptr, 0x5a5a5a5a, flush_.bytes / 4), "hipMemsetD32");
  sink_.alloc(hip_, 16, "the flush sink");
  uploaded_ = weights_uploaded_ = false;
  if (!shape_key_.empty())
    mla_active() ? alloc_mla_shape() : mxfp4_active() ? alloc_mxfp4_shape() : moe_ ? alloc_moe_shape() : alloc_shape();
}

void HipMeasurer::drop_device(bool reset) {
  if (!dev_ok_) return;
  DevBuf* bufs[] = {&flush_, &sink_, &x_,  &qw_,  &sc_,   &qz_,  &y_,  &ws_, &cnt_,  &ids_, &tw_, &sorted_, &eids_,
                    &npad_,  &mq_,   &mkv_, &midx_, &mxs_, &mxc_, &mo_, &mlse_, &mpo_, &mplse_, &fw_, &fsc_, &fb_};
  if (reset) {
    for (DevBuf* b : bufs) b->forget();  // hipDeviceReset frees it all
    (void)hip_->hipDeviceReset();
  } else {
    for (hipEvent_t e : events_) (void)hip_->hipEventDestroy(e);
    for (hipModule_t mod : shape_modules_) (void)hip_->hipModuleUnload(mod);
    if (util_module_) (void)hip_->hipModuleUnload(util_module_);
    if (align_module_) (void)hip_->hipModuleUnload(align_module_);
    for (DevBuf* b : bufs) b->release();
    if (stream_) (void)hip_->hipStreamDestroy(stream_);
  }
  events_.clear();
  shape_modules_.clear();
  functions_.clear();
  util_module_ = nullptr;
  flush_fn_ = nullptr;
  align_module_ = nullptr;
  align_fn_ = nullptr;
  stream_ = nullptr;
  dev_ok_ = false;
  uploaded_ = weights_uploaded_ = false;
}

void HipMeasurer::begin_shape(const LinearShape& shape, const std::vector<PlannedKernel>& kernels) {
  measure::LinearSteps<HipMeasurer>::begin_shape(*this, shape, kernels);
}

void HipMeasurer::alloc_shape() { measure::LinearSteps<HipMeasurer>::alloc_shape(*this); }

void HipMeasurer::prepare_problem(int64_t m) { measure::LinearSteps<HipMeasurer>::prepare_problem(*this, m); }

hipFunction_t HipMeasurer::function_of(const PackKernel& k) {
  return measure::LinearSteps<HipMeasurer>::function_of(*this, k);
}

hipFunction_t HipMeasurer::flush_function() { return measure::LinearSteps<HipMeasurer>::flush_function(*this); }

}  // namespace hip_detail

std::unique_ptr<Measurer> make_hip_measurer(const HipOptions& opt) {
  return std::make_unique<hip_detail::HipMeasurer>(opt);
}

}  // namespace kf
