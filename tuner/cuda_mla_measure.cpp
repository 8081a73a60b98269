// CudaMeasurer, part 4: sparse_mla_decode (see cuda_measurer.h): per (shape, Q) a fresh
// problem and its KV cache uploaded a chunk at a time; per kernel, one verification run
// with o, lse and the split partials poisoned, judged against the float64 reference of
// the checked queries (mla_problem.h), then the decode kernel, and for a split config
// the combine kernel after it, timed together (time_launches of cuda_measure.cpp).
#include "cuda_measurer.h"
#include "sparse_mla/launch.h"

namespace kf {
namespace cuda_detail {

using namespace measure;

void CudaMeasurer::begin_mla_shape(const MlaShape& shape, const std::vector<PlannedKernel>& kernels) {
  for (CUmodule mod : shape_modules_) cu_->cuModuleUnload(mod);
  shape_modules_.clear();
  functions_.clear();
  moe_ = false;
  mla_shape_ = shape;
  shape_key_ = std::string(kMlaDecodeOp) + "_" + shape.key();
  mla_sizes_ = plan_mla_buffers(shape, kernels);
  mla_host_.begin_shape();
  uploaded_ = false;
  try {
    if (!ctx_ok_)
      setup_context();  // allocates the shape's buffers too
    else
      alloc_mla_shape();
  } catch (const CallFailed& e) {
    throw Error("cannot set up " + info_.name + " for " + shape_key_ + ": " + e.message);
  }
}

void CudaMeasurer::alloc_mla_shape() {
  // Nothing of a linear, MoE or MXFP4 shape is needed here (their alloc_* allocate it again).
  for (DevBuf* b : {&x_, &qw_, &sc_, &qz_, &y_, &ws_, &cnt_, &ids_, &tw_, &sorted_, &eids_, &npad_, &fw_, &fsc_, &fb_})
    b->release();
  host_y_.clear();
  host_counters_.clear();
  const MlaShapeBuffers& b = mla_sizes_;
  mq_.alloc(cu_, b.q_elems * 2, "q");
  mkv_.alloc(cu_, b.kv_rows * mla::kHeadDim * 2, "the KV cache");
  midx_.alloc(cu_, b.index_ints * 4, "indices");
  mxs_.alloc(cu_, b.extra_ints * 4, "extra_start");
  mxc_.alloc(cu_, b.extra_ints * 4, "extra_count");
  mo_.alloc(cu_, b.o_elems * 2, "o");
  mlse_.alloc(cu_, b.lse_floats * 4, "lse");
  mpo_.alloc(cu_, b.part_o_floats * 4, "the split partials");
  mplse_.alloc(cu_, b.part_lse_floats * 4, "the split partials' lse");
  host_o_.assign(b.o_elems, 0);
  host_lse_.assign(b.lse_floats, 0.f);
  uploaded_ = false;
}

void CudaMeasurer::prepare_mla_problem(int64_t queries) {
  if (mla_host_.prepare(mla_shape_, queries, mla_sizes_)) uploaded_ = false;
  if (uploaded_) return;
  const MlaTuneProblem& p = mla_host_.problem();
  auto up = [&](CUdeviceptr to, const void* data, size_t bytes) {
    if (bytes) check(cu_->cuMemcpyHtoD(to, data, bytes), "cuMemcpyHtoD");
  };
  up(mq_.ptr, p.q.data(), p.q.size() * 2);
  up(midx_.ptr, p.indices.data(), p.indices.size() * 4);
  up(mxs_.ptr, p.extra_start.data(), p.extra_start.size() * 4);
  up(mxc_.ptr, p.extra_count.data(), p.extra_count.size() * 4);
  // A pageable upload returns once its source is staged: the chunk can be drawn again.
  mla_host_.for_each_kv_chunk([&](int64_t row0, int64_t rows, const uint16_t* data) {
    up(mkv_.ptr + static_cast<CUdeviceptr>(row0 * mla::kHeadDim * 2), data,
       static_cast<size_t>(rows * mla::kHeadDim * 2));
  });
  check(cu_->cuCtxSynchronize(), "cuCtxSynchronize");
  uploaded_ = true;
}

void CudaMeasurer::verify_mla(const std::function<void()>& run, int splits, Measurement& r) {
  const MlaTuneProblem& p = mla_host_.problem();
  const int64_t rows = (p.queries + 1) * p.shape.heads;  // with the guard query
  check(ex_->cuMemsetD16Async(mo_.ptr, 0xffff, static_cast<size_t>(rows * mla::kLatentDim), stream_),
        "cuMemsetD16Async");
  check(ex_->cuMemsetD32Async(mlse_.ptr, 0xffffffffu, static_cast<size_t>(rows), stream_), "cuMemsetD32Async");
  if (splits > 1) {  // else the combine could pass on what an earlier kernel left there
    const auto part = static_cast<size_t>(mla::part_lse_floats(splits, p.queries, p.shape.heads));
    check(ex_->cuMemsetD32Async(mpo_.ptr, 0xffffffffu, part * mla::kLatentDim, stream_), "cuMemsetD32Async");
    check(ex_->cuMemsetD32Async(mplse_.ptr, 0xffffffffu, part, stream_), "cuMemsetD32Async");
  }
  const auto start = Clock::now();
  run();
  if (!wait(opt_.hang_timeout_s)) return mark_hung(r, opt_.hang_timeout_s);
  verify_seconds_ = seconds_since(start);
  check(cu_->cuMemcpyDtoH(host_o_.data(), mo_.ptr, static_cast<size_t>(rows * mla::kLatentDim) * 2), "cuMemcpyDtoH");
  check(cu_->cuMemcpyDtoH(host_lse_.data(), mlse_.ptr, static_cast<size_t>(rows) * 4), "cuMemcpyDtoH");
  judge_mla_output(host_o_, host_lse_, mla_host_.reference(), p, r);
}

Measurement CudaMeasurer::measure_mla(const PackKernel& k, const MlaShape& shape, int64_t queries, bool cold,
                                      int reps) {
  if (!mla_active() || std::string(kMlaDecodeOp) + "_" + shape.key() != shape_key_)
    throw Error("internal: measure_mla() of " + shape.key() + " before begin_mla_shape()");
  try {
    if (!ctx_ok_) setup_context();
    prepare_mla_problem(queries);
    if (cold) flush_function();
  } catch (const CallFailed& e) {
    throw Error("cannot prepare " + info_.name + " for " + shape_key_ + " at Q=" + std::to_string(queries) + ": " +
                e.message);
  }
  const MlaTuneProblem& p = mla_host_.problem();
  const MlaConfig cfg = parse_mla_config(k.config);
  const mla::Grid dg = mla::decode_grid(shape.heads, queries, cfg.block_h, cfg.splits);
  const mla::Grid cg = mla::combine_grid(queries, shape.heads);
  kf_mla_decode_args args = mla_decode_args(p, mq_.raw(), mkv_.raw(), midx_.raw(), mxs_.raw(), mxc_.raw(), mo_.raw(),
                                            mlse_.raw(), mpo_.raw(), mplse_.raw());
  kf_mla_combine_args cargs = mla_combine_args(p, cfg.splits, mpo_.raw(), mplse_.raw(), mo_.raw(), mlse_.raw());
  const PackKernel* combine = combine_[shape.bf16];
  return guarded([&](Measurement& r) {
    const CUfunction fn = function_of(k);
    CUfunction cfn = nullptr;
    if (cfg.splits > 1) {
      if (!combine)
        throw CallFailed{std::string("the pack has no usable sparse_mla_combine_any_") +
                         (shape.bf16 ? "bf16" : "fp16") + " to merge the split partials with"};
      cfn = function_of(*combine);
    }
    const auto run = [&] {
      launch(fn, {dg.x, dg.y, dg.z}, k.threads, &args, "cuLaunchKernel");
      if (cfn) launch(cfn, {cg.x, cg.y, cg.z}, combine->threads, &cargs, "cuLaunchKernel (sparse_mla_combine)");
    };
    verify_mla(run, cfg.splits, r);
    if (r.disposition.empty()) time_launches(run, false, cold, reps, r);
  });
}

}  // namespace cuda_detail
}  // namespace kf
