// Internal to the HIP measurer (hip_measurer.cpp: device and buffers; hip_measure.cpp:
// launches and the stream wait). The same method and structure as the CUDA measurer (see
// cuda_measurer.h), its vendor-neutral parts shared through measure_common.h. HIP has
// no context to retain: the device is made current with hipSetDevice, and after a
// reported fault hipDeviceReset frees everything, as the CUDA primary-context reset does.
// Verification and timing, the MoE GEMMs, sparse MLA and mxfp4_moe are written once for
// both measurers (linear_measure.h, moe_measure.h, mla_measure.h, mxfp4_measure.h) over
// the vendor layer below.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hip_driver.h"
#include "hip_measurer.h"
#include "measure_common.h"

namespace kf {
namespace hip_detail {

using measure::CallFailed;

struct DevBuf {
  const hip::Driver* hip = nullptr;
  void* ptr = nullptr;
  size_t bytes = 0;
  void alloc(const hip::Driver* d, int64_t n, const char* what);  // throws kf::Error
  void release() {
    if (ptr) (void)hip->hipFree(ptr);  // nothing to do about a failure here
    ptr = nullptr;
  }
  void forget() { ptr = nullptr; }  // the device was reset, which freed it
  ~DevBuf() { release(); }
  void* raw() const { return ptr; }
};

class HipMeasurer final : public Measurer {
 public:
  explicit HipMeasurer(const HipOptions& opt);
  ~HipMeasurer() override;
  const DeviceInfo& device() const override { return info_; }
  void set_util_kernel(const PackKernel* util) override { util_ = util; }
  void begin_shape(const LinearShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure(const PackKernel& kernel, const LinearShape& shape, int64_t m, bool cold_l2, int reps) override;
  void set_moe_align_kernel(const PackKernel* align) override { align_ = align; }
  void begin_moe_shape(const MoeShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure_moe(const PackKernel& kernel, const MoeShape& shape, const MoeRouting& routing, bool cold_l2,
                          int reps) override;
  void set_mla_combine_kernels(const PackKernel* bf16, const PackKernel* fp16) override {
    combine_[1] = bf16;
    combine_[0] = fp16;
  }
  void begin_mla_shape(const MlaShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure_mla(const PackKernel& kernel, const MlaShape& shape, int64_t queries, bool cold_l2,
                          int reps) override;
  void begin_mxfp4_shape(const Mxfp4MoeShape& shape, const std::vector<PlannedKernel>& kernels) override;
  Measurement measure_mxfp4(const PackKernel& kernel, const Mxfp4MoeShape& shape, const MoeRouting& routing,
                            bool cold_l2, int reps) override;

 private:
  using Judge = std::function<void(const std::vector<uint16_t>& y, Measurement& r)>;
  // The vendor layer of the family steps shared with the CUDA measurer (as there): their
  // types, the HIP calls they make (each checked under its own name), load and launch
  // names.
  friend struct measure::LinearSteps<HipMeasurer>;
  friend struct measure::MoeSteps<HipMeasurer>;
  friend struct measure::Mxfp4Steps<HipMeasurer>;
  friend struct measure::MlaSteps<HipMeasurer>;
  using Buf = DevBuf;
  using Function = hipFunction_t;
  using Event = hipEvent_t;
  using Module = hipModule_t;
  static constexpr const char* kLoadCall = "hipModuleLoadData";
  static constexpr const char* kLoadFlush = "hipModuleLoadData (kf_util_stream_read)";
  static constexpr const char* kLoadAlign = "hipModuleLoadData (moe_align_any)";
  static constexpr const char* kLaunchCall = "hipModuleLaunchKernel";
  static constexpr const char* kLaunchAlign = "hipModuleLaunchKernel (moe_align_any)";
  static constexpr const char* kLaunchCombine = "hipModuleLaunchKernel (sparse_mla_combine)";
  bool ready() const { return dev_ok_; }
  void set_up() { setup_device(); }
  void unload(hipModule_t mod) { (void)hip_->hipModuleUnload(mod); }
  void load(hipModule_t* mod, const void* image, const char* call) { check(hip_->hipModuleLoadData(mod, image), call); }
  void get_function(hipFunction_t* fn, hipModule_t mod, const char* name) {
    check(hip_->hipModuleGetFunction(fn, mod, name), "hipModuleGetFunction");
  }
  // No AMD kind uses dynamic shared memory (the skinny kind is NVIDIA only).
  void allow_dynamic_shared(hipFunction_t, int bytes) {
    if (bytes > 0) throw CallFailed{"dynamic shared memory is not supported on HIP"};
  }
  void alloc(DevBuf& b, int64_t bytes, const char* what) { b.alloc(hip_, bytes, what); }
  void upload(const DevBuf& to, size_t offset, const void* data, size_t bytes) {
    check(hip_->hipMemcpy(static_cast<char*>(to.ptr) + offset, data, bytes, hipMemcpyHostToDevice),
          "hipMemcpy (to the GPU)");
  }
  void download(void* to, const DevBuf& from, size_t bytes) {
    check(hip_->hipMemcpy(to, from.ptr, bytes, hipMemcpyDeviceToHost), "hipMemcpy (from the GPU)");
  }
  void fill32(const DevBuf& b, uint32_t value, size_t count) {
    check(hip_->hipMemsetD32(b.ptr, static_cast<int>(value), count), "hipMemsetD32");
  }
  void fill16_async(const DevBuf& b, uint16_t value, size_t count) {
    check(hip_->hipMemsetD16Async(b.ptr, value, count, stream_), "hipMemsetD16Async");
  }
  void fill32_async(const DevBuf& b, uint32_t value, size_t count) {
    check(hip_->hipMemsetD32Async(b.ptr, static_cast<int>(value), count, stream_), "hipMemsetD32Async");
  }
  void synchronize() { check(hip_->hipDeviceSynchronize(), "hipDeviceSynchronize"); }
  hipEvent_t create_event() {
    hipEvent_t e = nullptr;
    check(hip_->hipEventCreate(&e), "hipEventCreate");
    return e;
  }
  void record(hipEvent_t e) { check(hip_->hipEventRecord(e, stream_), "hipEventRecord"); }
  float elapsed_ms(hipEvent_t from, hipEvent_t to) {
    float ms = 0;
    check(hip_->hipEventElapsedTime(&ms, from, to), "hipEventElapsedTime");
    return ms;
  }
  std::string text(hipError_t rc) const;
  void check(hipError_t rc, const char* call) const {
    if (rc != hipSuccess) throw CallFailed{std::string(call) + ": " + text(rc)};
  }
  void setup_device();           // throws CallFailed / kf::Error
  void drop_device(bool reset);  // reset: after a fault, through hipDeviceReset
  void alloc_shape();
  void alloc_moe_shape();
  void alloc_mla_shape();  // frees the linear, MoE and MXFP4 buffers first
  bool mla_active() const { return shape_key_.rfind(std::string(kMlaDecodeOp) + "_", 0) == 0; }
  void alloc_mxfp4_shape();  // frees the buffers only linear, MoE or MLA shapes use first
  bool mxfp4_active() const { return shape_key_.rfind("mxfp4_moe_", 0) == 0; }
  void prepare_mxfp4_problem(const MoeRouting& routing);
  void verify_mxfp4(const std::function<void()>& run, Measurement& r);  // as CudaMeasurer::verify_mxfp4
  void prepare_mla_problem(int64_t queries);
  void verify_mla(const std::function<void()>& run, int splits, Measurement& r);  // as CudaMeasurer::verify_mla
  void prepare_problem(int64_t m);
  void prepare_moe_problem(const MoeRouting& routing);
  hipFunction_t align_function();
  void run_align(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts, int block_m,
                 Measurement& r, int64_t zero_count = 0);  // as CudaMeasurer::run_align
  hipFunction_t function_of(const PackKernel& k);
  hipFunction_t flush_function();
  bool wait(double timeout_s);  // false: still busy after timeout_s
  bool counters_zero();
  bool zero_counters();  // false: the memset never finished
  void launch(hipFunction_t fn, const LaunchGrid& g, int threads, void* args, const char* what);
  void launch_flush(hipFunction_t flush);
  void verify(hipFunction_t fn, const LaunchGrid& g, int threads, void* args, int64_t poison_elems,
              int64_t read_elems, const Judge& judge, Measurement& r);
  void time_runs(hipFunction_t fn, const LaunchGrid& g, int threads, void* args, bool cold, int reps, Measurement& r);
  void time_launches(const std::function<void()>& run, bool check_counters, bool cold, int reps, Measurement& r);
  // Runs `body` (verify, then time) into a Measurement; a failed call is recorded
  // `failed`, and a reported fault, which leaves the device unusable, resets it.
  template <class Body>
  Measurement guarded(Body&& body) {
    Measurement r;
    try {
      body(r);
    } catch (const CallFailed& e) {
      measure::mark_failed(r, e.message);
      // A refused launch (too many resources, bad code object) leaves the device usable.
      // (A page fault usually aborts the process inside the HSA runtime before it can be
      // reported: see README.)
      if (hip_->hipDeviceSynchronize() != hipSuccess) {
        r.message += "; GPU reset";
        drop_device(true);
      }
    }
    if (r.fatal) hung_ = true;
    return r;
  }

  const hip::Driver* hip_ = nullptr;
  HipOptions opt_;
  DeviceInfo info_;
  int cus_ = 1;
  measure::HostProblem host_;
  measure::MoeHostProblem moe_host_;
  measure::MlaHostProblem mla_host_;
  measure::Mxfp4HostProblem mx_host_;
  const PackKernel* util_ = nullptr;
  const PackKernel* align_ = nullptr;
  const PackKernel* combine_[2] = {nullptr, nullptr};  // sparse_mla_combine_any_ fp16, bf16
  // Device state, rebuilt after a fault.
  bool dev_ok_ = false;
  bool hung_ = false;  // a kernel never finished: leave the device alone
  hipStream_t stream_ = nullptr;
  hipModule_t util_module_ = nullptr;
  hipFunction_t flush_fn_ = nullptr;
  hipModule_t align_module_ = nullptr;
  hipFunction_t align_fn_ = nullptr;
  std::vector<hipModule_t> shape_modules_;
  std::map<std::string, hipFunction_t> functions_;
  std::vector<hipEvent_t> events_;
  DevBuf flush_, sink_, x_, qw_, sc_, qz_, y_, ws_, cnt_;
  DevBuf ids_, tw_, sorted_, eids_, npad_;  // MoE: topk_ids, topk_weights, moe_align's outputs
  DevBuf mq_, mkv_, midx_, mxs_, mxc_, mo_, mlse_, mpo_, mplse_;  // MLA: q, kv, indices, extras, o, lse, partials
  DevBuf fw_, fsc_, fb_;  // MXFP4: expert weights, scales, bias (x, y and the routing buffers are the MoE ones)
  // The current shape and (shape, M) problem.
  LinearShape shape_;
  std::string shape_key_;
  ShapeBuffers sizes_;
  bool uploaded_ = false;
  bool moe_ = false;  // MoE shape: shape_key_ is op + key
  MoeShape moe_shape_;
  MoeShapeBuffers moe_sizes_;
  bool weights_uploaded_ = false;
  std::vector<int32_t> host_sorted_, host_eids_;
  MlaShape mla_shape_;  // MLA shape (mla_active()): shape_key_ is op + key
  MlaShapeBuffers mla_sizes_;
  std::vector<uint16_t> host_o_;
  std::vector<float> host_lse_;
  Mxfp4MoeShape mx_shape_;  // MXFP4 shape (mxfp4_active()): shape_key_ is op + key
  Mxfp4ShapeBuffers mx_sizes_;
  double verify_seconds_ = 0;
  std::vector<uint16_t> host_y_;
  std::vector<int32_t> host_counters_;
};

}  // namespace hip_detail
}  // namespace kf
