// Internal to the CUDA measurer (cuda_measurer.cpp: device, context and buffers;
// cuda_measure.cpp: launches and the stream wait; verification and timing are
// linear_measure.h, written once for CUDA and HIP; what is not CUDA-specific is shared
// with the HIP measurer in measure_common.h). Everything else sees only measurer.h.
//
// Per shape: device buffers sized once for the largest M and split-K any candidate
// needs (device_plan.h). Per (shape, M): fresh random GPTQ inputs and one float64 host
// reference. Per kernel: its module is loaded once per shape; one verification run with
// y poisoned (0xFFFF: NaN in bf16 and fp16) and guard rows past M checked; then `reps`
// timed runs, each between two events on one stream, after a streaming read of a buffer
// 4x the L2 size (kf_util_stream_read) unless warm. A kernel that faults poisons the
// context: it is recorded failed and the primary context is reset and rebuilt. One that
// never finishes cannot be stopped in-process: recorded failed and marked fatal.
//
// MoE (moe_measure.h, one implementation for CUDA and HIP): expert weights uploaded
// once per shape; per (T, routing) fresh activations and routing weights and one float64
// reference of the checked slots (moe_reference.h); per kernel, moe_align_any sorts the
// slots for its block_m on the GPU (checked against the host), then the GEMM is verified
// and timed as above.
//
// sparse MLA (mla_measure.h, shared with HIP): per (shape, Q) a fresh problem
// (mla_problem.h), its KV cache drawn and uploaded a chunk at a time, and the float64
// reference of the checked queries; per kernel, o, lse (and a split kernel's partials)
// poisoned, the decode kernel (and for a split config the combine kernel after it) run,
// o and lse judged, then both launches timed together between the events.
//
// mxfp4_moe (mxfp4_measure.h, shared with HIP): per (shape, T, routing) a fresh problem
// (mxfp4_problem.h), its weights and scales drawn and uploaded a chunk at a time, and the
// float64 reference of the checked slots; per kernel, moe_align_any sorts the slots for
// its block_m (checked against the host), y is poisoned, the GEMM run and judged, then
// timed alone.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cuda_api.h"
#include "device_plan.h"
#include "measure_common.h"

namespace kf {
namespace cuda_detail {

using measure::CallFailed;

struct DevBuf {
  const cuda::Driver* cu = nullptr;
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  void alloc(const cuda::Driver* d, int64_t n, const char* what);  // throws kf::Error
  void release() {
    if (ptr) cu->cuMemFree(ptr);
    ptr = 0;
  }
  void forget() { ptr = 0; }  // its context was reset, which freed it
  ~DevBuf() { release(); }
  void* raw() const { return reinterpret_cast<void*>(ptr); }
};

class CudaMeasurer final : public Measurer {
 public:
  explicit CudaMeasurer(const CudaOptions& opt);
  ~CudaMeasurer() override;
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
  // The vendor layer of the family steps shared with the HIP measurer: their types, the
  // CUDA calls they make (each checked under its own name), load and launch names.
  friend struct measure::LinearSteps<CudaMeasurer>;
  friend struct measure::MoeSteps<CudaMeasurer>;
  friend struct measure::Mxfp4Steps<CudaMeasurer>;
  friend struct measure::MlaSteps<CudaMeasurer>;
  using Buf = DevBuf;
  using Function = CUfunction;
  using Event = CUevent;
  using Module = CUmodule;
  static constexpr const char* kLoadCall = "cuModuleLoadData";
  static constexpr const char* kLoadFlush = "cuModuleLoadData (kf_util_stream_read)";
  static constexpr const char* kLoadAlign = "cuModuleLoadData (moe_align_any)";
  static constexpr const char* kLaunchCall = "cuLaunchKernel";
  static constexpr const char* kLaunchAlign = "cuLaunchKernel (moe_align_any)";
  static constexpr const char* kLaunchCombine = "cuLaunchKernel (sparse_mla_combine)";
  bool ready() const { return ctx_ok_; }
  void set_up() { setup_context(); }
  void unload(CUmodule mod) { cu_->cuModuleUnload(mod); }
  void load(CUmodule* mod, const void* image, const char* call) { check(cu_->cuModuleLoadData(mod, image), call); }
  void get_function(CUfunction* fn, CUmodule mod, const char* name) {
    check(cu_->cuModuleGetFunction(fn, mod, name), "cuModuleGetFunction");
  }
  void allow_dynamic_shared(CUfunction fn, int bytes) {
    check(cu_->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
          "cuFuncSetAttribute (dynamic shared memory)");
  }
  void alloc(DevBuf& b, int64_t bytes, const char* what) { b.alloc(cu_, bytes, what); }
  void upload(const DevBuf& to, size_t offset, const void* data, size_t bytes) {
    check(cu_->cuMemcpyHtoD(to.ptr + static_cast<CUdeviceptr>(offset), data, bytes), "cuMemcpyHtoD");
  }
  void download(void* to, const DevBuf& from, size_t bytes) {
    check(cu_->cuMemcpyDtoH(to, from.ptr, bytes), "cuMemcpyDtoH");
  }
  void fill32(const DevBuf& b, uint32_t value, size_t count) {
    check(cu_->cuMemsetD32(b.ptr, value, count), "cuMemsetD32");
  }
  void fill16_async(const DevBuf& b, uint16_t value, size_t count) {
    check(ex_->cuMemsetD16Async(b.ptr, value, count, stream_), "cuMemsetD16Async");
  }
  void fill32_async(const DevBuf& b, uint32_t value, size_t count) {
    check(ex_->cuMemsetD32Async(b.ptr, value, count, stream_), "cuMemsetD32Async");
  }
  void synchronize() { check(cu_->cuCtxSynchronize(), "cuCtxSynchronize"); }
  CUevent create_event() {
    CUevent e = nullptr;
    check(ex_->cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    return e;
  }
  void record(CUevent e) { check(ex_->cuEventRecord(e, stream_), "cuEventRecord"); }
  float elapsed_ms(CUevent from, CUevent to) {
    float ms = 0;
    check(ex_->cuEventElapsedTime(&ms, from, to), "cuEventElapsedTime");
    return ms;
  }
  std::string text(CUresult rc) const;
  void check(CUresult rc, const char* call) const {
    if (rc != CUDA_SUCCESS) throw CallFailed{std::string(call) + ": " + text(rc)};
  }
  void setup_context();          // throws CallFailed / kf::Error
  void drop_context(bool reset);  // reset: after a fault, through cuDevicePrimaryCtxReset
  void alloc_shape();
  void alloc_moe_shape();
  void alloc_mla_shape();  // frees the linear, MoE and MXFP4 buffers first
  bool mla_active() const { return shape_key_.rfind(std::string(kMlaDecodeOp) + "_", 0) == 0; }
  void alloc_mxfp4_shape();  // frees the buffers only linear, MoE or MLA shapes use first
  bool mxfp4_active() const { return shape_key_.rfind("mxfp4_moe_", 0) == 0; }
  void prepare_mxfp4_problem(const MoeRouting& routing);
  // One run of `run` with the problem's y rows poisoned, read back and judged.
  void verify_mxfp4(const std::function<void()>& run, Measurement& r);
  void prepare_mla_problem(int64_t queries);
  // One run of `run` (decode, and combine for a split config) with o, lse and the split
  // partials poisoned; o and lse of Q + 1 queries read back and judged.
  void verify_mla(const std::function<void()>& run, int splits, Measurement& r);
  void prepare_problem(int64_t m);
  void prepare_moe_problem(const MoeRouting& routing);
  CUfunction align_function();
  // moe_align for `block_m` over `topk_ids` (already in ids_), its output checked on the
  // host; r failed when it is wrong (the GEMM cannot be judged then). zero_count > 0:
  // the same launch zeroes that many values of y (a _red gemm2's token rows).
  void run_align(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts, int block_m,
                 Measurement& r, int64_t zero_count = 0);
  CUfunction function_of(const PackKernel& k);
  CUfunction flush_function();
  // Waits for the stream (throws CallFailed on an execution error); false when it is
  // still busy after `timeout_s`.
  bool wait(double timeout_s);
  bool counters_zero();  // reads them back (the stream is idle)
  bool zero_counters();  // false: the memset never finished
  void launch(CUfunction fn, const LaunchGrid& g, int threads, void* args, const char* what);
  void launch_flush(CUfunction flush);
  // One run with y poisoned (poison_elems; 0: poisoned by the caller), `read_elems` of y
  // read back and judged, then the split-K counters checked.
  void verify(CUfunction fn, const LaunchGrid& g, int threads, void* args, int64_t poison_elems, int64_t read_elems,
              const Judge& judge, Measurement& r);
  void time_runs(CUfunction fn, const LaunchGrid& g, int threads, void* args, bool cold, int reps, Measurement& r);
  // The timing loop of time_runs around `run` (one or more launches between the events);
  // check_counters: the split-K counters must be zero afterwards (linear and MoE).
  void time_launches(const std::function<void()>& run, bool check_counters, bool cold, int reps, Measurement& r);
  // Runs `body` (verify, then time) into a Measurement; a failed call is recorded
  // `failed`, and a fault, which poisons the context for good, rebuilds it.
  template <class Body>
  Measurement guarded(Body&& body) {
    Measurement r;
    try {
      body(r);
    } catch (const CallFailed& e) {
      measure::mark_failed(r, e.message);
      // A fault (illegal address, trap, ...) poisons the context for good; a refused
      // launch (too many resources, bad image) leaves it usable.
      if (cu_->cuCtxSynchronize() != CUDA_SUCCESS) {
        r.message += "; GPU context reset";
        drop_context(true);
      }
    }
    if (r.fatal) hung_ = true;
    return r;
  }

  const cuda::Driver* cu_ = nullptr;
  const cuda::TimingApi* ex_ = nullptr;
  CudaOptions opt_;
  DeviceInfo info_;
  CUdevice dev_ = 0;
  int sms_ = 1;
  measure::HostProblem host_;
  measure::MoeHostProblem moe_host_;
  measure::MlaHostProblem mla_host_;
  measure::Mxfp4HostProblem mx_host_;
  const PackKernel* util_ = nullptr;
  const PackKernel* align_ = nullptr;
  const PackKernel* combine_[2] = {nullptr, nullptr};  // sparse_mla_combine_any_ fp16, bf16
  // Context-bound state, rebuilt after a fault.
  bool ctx_ok_ = false;
  bool hung_ = false;  // a kernel never finished: leave the context alone
  CUstream stream_ = nullptr;
  CUmodule util_module_ = nullptr;
  CUfunction flush_fn_ = nullptr;
  CUmodule align_module_ = nullptr;
  CUfunction align_fn_ = nullptr;
  std::vector<CUmodule> shape_modules_;
  std::map<std::string, CUfunction> functions_;
  std::vector<CUevent> events_;
  DevBuf flush_, sink_, x_, qw_, sc_, qz_, y_, ws_, cnt_;
  DevBuf ids_, tw_, sorted_, eids_, npad_;  // MoE: topk_ids, topk_weights, moe_align's outputs
  DevBuf mq_, mkv_, midx_, mxs_, mxc_, mo_, mlse_, mpo_, mplse_;  // MLA: q, kv, indices, extras, o, lse, partials
  DevBuf fw_, fsc_, fb_;  // MXFP4: expert weights, scales, bias (x, y and the routing buffers are the MoE ones)
  // The current shape and (shape, M) problem.
  LinearShape shape_;
  std::string shape_key_;
  ShapeBuffers sizes_;
  bool uploaded_ = false;
  // MoE shape (moe_ true): shape_key_ is op + key.
  bool moe_ = false;
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
  double verify_seconds_ = 0;  // wall time of the last verification run
  std::vector<uint16_t> host_y_;
  std::vector<int32_t> host_counters_;
};

}  // namespace cuda_detail
}  // namespace kf
