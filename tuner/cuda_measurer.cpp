// CudaMeasurer, part 1: the device, its primary context, and the buffers (see
// cuda_measurer.h for the whole design; cuda_measure.cpp runs the kernels).
#include "cuda_measurer.h"

#include <algorithm>

#include "linear_measure.h"

namespace kf {
namespace cuda_detail {

void DevBuf::alloc(const cuda::Driver* d, int64_t n, const char* what) {
  release();
  cu = d;
  bytes = std::max<size_t>(static_cast<size_t>(n), 256);
  if (cu->cuMemAlloc(&ptr, bytes) != CUDA_SUCCESS) {
    ptr = 0;
    throw Error("cannot allocate " + std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB on the GPU for " + what);
  }
}

std::string CudaMeasurer::text(CUresult rc) const {
  const char* name = nullptr;
  const char* str = nullptr;
  if (ex_) ex_->cuGetErrorName(rc, &name);
  cu_->cuGetErrorString(rc, &str);
  return std::string(name ? name : "CUDA error " + std::to_string(rc)) + (str ? std::string(" (") + str + ")" : "");
}

CudaMeasurer::CudaMeasurer(const CudaOptions& opt)
    : opt_(opt), host_(opt.seed, opt.host_threads), moe_host_(opt.seed, opt.host_threads),
      mla_host_(opt.seed, opt.host_threads), mx_host_(opt.seed, opt.host_threads) {
  const char* why = "unknown reason";
  cu_ = cuda::driver(&why);
  if (!cu_) throw NoGpuError(why);
  ex_ = cuda::timing_api(&why);
  if (!ex_) throw NoGpuError(why);
  const CUresult init = cu_->cuInit(0);
  if (init != CUDA_SUCCESS) throw NoGpuError("cuInit failed: " + text(init));
  int count = 0;
  if (cu_->cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) throw NoGpuError("no CUDA device visible");
  if (opt.device < 0 || opt.device >= count)
    throw Error("--device " + std::to_string(opt.device) + " but " + std::to_string(count) +
                " CUDA device(s) are visible");
  char name[256] = {};
  int driver = 0;
  if (cu_->cuDeviceGet(&dev_, opt.device) != CUDA_SUCCESS ||
      cu_->cuDeviceGetName(name, sizeof name, dev_) != CUDA_SUCCESS || cu_->cuDriverGetVersion(&driver) != CUDA_SUCCESS)
    throw NoGpuError("cannot query CUDA device " + std::to_string(opt.device));
  auto attr = [&](CUdevice_attribute a) {
    int v = 0;
    return cu_->cuDeviceGetAttribute(&v, a, dev_) == CUDA_SUCCESS ? v : 0;
  };
  info_.name = name;
  info_.arch = cuda_arch_name(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                              attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR));
  info_.driver = std::to_string(driver);
  info_.runtime = "cuda-driver-api " + std::to_string(CUDA_VERSION);
  info_.l2_bytes = attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
  sms_ = std::max(1, attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT));
  info_.compute_units = sms_;
  measure::check_device(info_);
  measure::set_up_device(info_.name, [&] { setup_context(); }, [&] { drop_context(false); });
}

CudaMeasurer::~CudaMeasurer() {
  // With a kernel still running, freeing would wait for it forever; exiting the process
  // lets the driver tear the context down.
  if (!hung_) drop_context(false);
}

void CudaMeasurer::setup_context() {
  CUcontext ctx = nullptr;
  check(cu_->cuDevicePrimaryCtxRetain(&ctx, dev_), "cuDevicePrimaryCtxRetain");
  ctx_ok_ = true;  // from here on drop_context() releases it
  check(cu_->cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  // A blocking stream: it orders itself after the synchronous-API copies and memsets
  // (legacy default stream), which may still be in flight when they return.
  check(ex_->cuStreamCreate(&stream_, CU_STREAM_DEFAULT), "cuStreamCreate");
  flush_.alloc(cu_, flush_bytes(info_.l2_bytes), "the L2 flush buffer");
  check(cu_->cuMemsetD32(flush_.ptr, 0x5a5a5a5a, flush_.bytes / 4), "cuMemsetD32");
  sink_.alloc(cu_, 16, "the flush sink");
  uploaded_ = weights_uploaded_ = false;
  if (!shape_key_.empty())
    mla_active() ? alloc_mla_shape() : mxfp4_active() ? alloc_mxfp4_shape() : moe_ ? alloc_moe_shape() : alloc_shape();
}

void CudaMeasurer::drop_context(bool reset) {
  if (!ctx_ok_) return;
  DevBuf* bufs[] = {&flush_, &sink_, &x_,  &qw_,  &sc_,   &qz_,  &y_,  &ws_, &cnt_,  &ids_, &tw_, &sorted_, &eids_,
                    &npad_,  &mq_,   &mkv_, &midx_, &mxs_, &mxc_, &mo_, &mlse_, &mpo_, &mplse_, &fw_, &fsc_, &fb_};
  if (reset) {
    for (DevBuf* b : bufs) b->forget();  // a faulted context frees nothing: the reset frees it all
  } else {
    for (CUevent e : events_) ex_->cuEventDestroy(e);
    for (CUmodule mod : shape_modules_) cu_->cuModuleUnload(mod);
    if (util_module_) cu_->cuModuleUnload(util_module_);
    if (align_module_) cu_->cuModuleUnload(align_module_);
    for (DevBuf* b : bufs) b->release();
    if (stream_) ex_->cuStreamDestroy(stream_);
  }
  events_.clear();
  shape_modules_.clear();
  functions_.clear();
  util_module_ = nullptr;
  flush_fn_ = nullptr;
  align_module_ = nullptr;
  align_fn_ = nullptr;
  stream_ = nullptr;
  cu_->cuDevicePrimaryCtxRelease(dev_);
  if (reset) ex_->cuDevicePrimaryCtxReset(dev_);
  ctx_ok_ = false;
  uploaded_ = weights_uploaded_ = false;
}

void CudaMeasurer::begin_shape(const LinearShape& shape, const std::vector<PlannedKernel>& kernels) {
  measure::LinearSteps<CudaMeasurer>::begin_shape(*this, shape, kernels);
}

void CudaMeasurer::alloc_shape() { measure::LinearSteps<CudaMeasurer>::alloc_shape(*this); }

void CudaMeasurer::prepare_problem(int64_t m) { measure::LinearSteps<CudaMeasurer>::prepare_problem(*this, m); }

CUfunction CudaMeasurer::function_of(const PackKernel& k) {
  return measure::LinearSteps<CudaMeasurer>::function_of(*this, k);
}

CUfunction CudaMeasurer::flush_function() { return measure::LinearSteps<CudaMeasurer>::flush_function(*this); }

}  // namespace cuda_detail

std::unique_ptr<Measurer> make_cuda_measurer(const CudaOptions& opt) {
  return std::make_unique<cuda_detail::CudaMeasurer>(opt);
}

}  // namespace kf
