// HipMeasurer, part 3: the MoE GEMMs, step for step as cuda_moe_measure.cpp: moe_align
// sorts the routed slots for the kernel's block_m on the GPU, the host checks them, then
// the GEMM is verified against the float64 reference of the checked slots and timed.
// Fused SiLU gemm1 kernels, moe_silu_mul, _red gemm2 kernels and moe_sum as there.
#include "hip_measurer_detail.h"
#include "w4a16_moe/args.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace hip_detail {

using namespace measure;

void HipMeasurer::begin_moe_shape(const MoeShape& shape, const std::vector<PlannedKernel>& kernels) {
  for (hipModule_t mod : shape_modules_) (void)hip_->hipModuleUnload(mod);
  shape_modules_.clear();
  functions_.clear();
  moe_ = true;
  moe_shape_ = shape;
  shape_key_ = shape.op() + "_" + shape.key();
  moe_sizes_ = plan_moe_buffers(shape, kernels);
  moe_host_.begin_shape(shape);
  weights_uploaded_ = uploaded_ = false;
  try {
    if (!dev_ok_)
      setup_device();  // allocates the shape's buffers too
    else
      alloc_moe_shape();
  } catch (const CallFailed& e) {
    throw Error("cannot set up " + info_.name + " for " + shape_key_ + ": " + e.message);
  }
}

void HipMeasurer::alloc_moe_shape() {
  const MoeShapeBuffers& b = moe_sizes_;
  x_.alloc(hip_, b.x_elems * 2, "x");
  qw_.alloc(hip_, b.qweight_words * 4, "the expert qweights");
  sc_.alloc(hip_, b.scales_elems * 2, "the expert scales");
  qz_.alloc(hip_, b.qzeros_words * 4, "the expert qzeros");
  y_.alloc(hip_, b.y_elems * 2, "y");
  ws_.alloc(hip_, b.workspace_floats * 4, "the split-K workspace");
  cnt_.alloc(hip_, b.counter_ints * 4, "the split-K counters");
  ids_.alloc(hip_, b.slots * 4, "topk_ids");
  tw_.alloc(hip_, b.slots * 4, "topk_weights");
  sorted_.alloc(hip_, b.sorted_ids * 4, "sorted_ids");
  eids_.alloc(hip_, b.expert_ids * 4, "expert_ids");
  npad_.alloc(hip_, 4, "num_padded");
  check(hip_->hipMemsetD32(cnt_.ptr, 0, cnt_.bytes / 4), "hipMemsetD32");
  check(hip_->hipDeviceSynchronize(), "hipDeviceSynchronize");
  host_y_.assign(b.y_elems, 0);
  host_counters_.assign(cnt_.bytes / 4, 0);
  host_sorted_.assign(b.sorted_ids, 0);
  host_eids_.assign(b.expert_ids, 0);
  uploaded_ = weights_uploaded_ = false;
}

void HipMeasurer::prepare_moe_problem(const MoeRouting& routing) {
  if (moe_host_.prepare(routing, moe_sizes_)) uploaded_ = false;
  const MoeProblem& p = moe_host_.problem();
  auto up = [&](const DevBuf& b, const void* data, size_t bytes) {
    if (bytes) check(hip_->hipMemcpy(b.ptr, data, bytes, hipMemcpyHostToDevice), "hipMemcpy (to the GPU)");
  };
  if (!weights_uploaded_) {
    up(qw_, p.qweight.data(), p.qweight.size() * 4);
    up(sc_, p.scales.data(), p.scales.size() * 2);
    up(qz_, p.qzeros.data(), p.qzeros.size() * 4);
  }
  if (!uploaded_) {
    up(x_, p.x.data(), p.x.size() * 2);
    up(ids_, p.topk_ids.data(), p.topk_ids.size() * 4);
    up(tw_, p.topk_weights.data(), p.topk_weights.size() * 4);
  }
  check(hip_->hipDeviceSynchronize(), "hipDeviceSynchronize");  // pageable uploads may return before their DMA ends
  weights_uploaded_ = uploaded_ = true;
}

hipFunction_t HipMeasurer::align_function() {
  if (align_fn_) return align_fn_;
  if (!align_) throw CallFailed{"the pack has no usable moe_align_any to sort the routed slots with"};
  check(hip_->hipModuleLoadData(&align_module_, align_->code_object.data()), "hipModuleLoadData (moe_align_any)");
  check(hip_->hipModuleGetFunction(&align_fn_, align_module_, align_->name.c_str()), "hipModuleGetFunction");
  return align_fn_;
}

void HipMeasurer::run_align(const std::vector<int32_t>& topk_ids, int64_t t, int64_t top_k, int64_t experts,
                            int block_m, Measurement& r, int64_t zero_count) {
  const hipFunction_t fn = align_function();
  const int64_t cap = moe::sorted_capacity(t, top_k, experts, block_m);
  // Poisoned, so that what an earlier block_m left there cannot pass for this one's.
  check(hip_->hipMemsetD32Async(sorted_.ptr, -2, sorted_.bytes / 4, stream_), "hipMemsetD32Async");
  check(hip_->hipMemsetD32Async(eids_.ptr, -2, eids_.bytes / 4, stream_), "hipMemsetD32Async");
  check(hip_->hipMemsetD32Async(npad_.ptr, -2, 1, stream_), "hipMemsetD32Async");
  kf_moe_align_args a{static_cast<const int32_t*>(ids_.ptr), static_cast<int32_t*>(sorted_.ptr),
                      static_cast<int32_t*>(eids_.ptr), static_cast<int32_t*>(npad_.ptr),
                      static_cast<int>(t), static_cast<int>(top_k), static_cast<int>(experts), block_m,
                      zero_count > 0 ? y_.ptr : nullptr, zero_count};
  launch(fn, {static_cast<unsigned>(moe::align_blocks(zero_count)), 1, 1}, align_->threads, &a,
         "hipModuleLaunchKernel (moe_align_any)");
  if (!wait(opt_.hang_timeout_s)) return mark_hung(r, opt_.hang_timeout_s);
  int32_t num_padded = 0;
  auto down = [&](void* to, const DevBuf& from, size_t bytes) {
    check(hip_->hipMemcpy(to, from.ptr, bytes, hipMemcpyDeviceToHost), "hipMemcpy (from the GPU)");
  };
  down(&num_padded, npad_, 4);
  down(host_sorted_.data(), sorted_, static_cast<size_t>(cap) * 4);
  down(host_eids_.data(), eids_, static_cast<size_t>(cap / block_m) * 4);
  const std::vector<int32_t> sorted(host_sorted_.begin(), host_sorted_.begin() + cap);
  const std::vector<int32_t> eids(host_eids_.begin(), host_eids_.begin() + cap / block_m);
  const std::string why = check_moe_align(topk_ids, t, top_k, experts, block_m, sorted, eids, num_padded);
  if (!why.empty()) {
    r.disposition = "failed";
    r.message = "moe_align_any (block_m " + std::to_string(block_m) + ") sorted the slots wrongly: " + why;
  }
}

Measurement HipMeasurer::measure_moe(const PackKernel& k, const MoeShape& shape, const MoeRouting& routing,
                                      bool cold, int reps) {
  if (!moe_ || shape.op() + "_" + shape.key() != shape_key_)
    throw Error("internal: measure_moe() of " + shape.key() + " before begin_moe_shape()");
  try {
    if (!dev_ok_) setup_device();
    prepare_moe_problem(routing);
    if (cold) flush_function();
  } catch (const CallFailed& e) {
    throw Error("cannot prepare " + info_.name + " for " + shape_key_ + " at T=" + std::to_string(routing.t) + ": " +
                e.message);
  }
  if (k.op == "moe_silu_mul") {
    // What an unfused gemm1 is followed by in a layer: rows T * top_k, n = N/2, on its
    // own random input (SiluMulProblem), output in y.
    const int64_t rows = routing.t * shape.top_k, n = shape.n / 2;
    std::mt19937_64 rng(opt_.seed ^ static_cast<uint64_t>(rows));
    const SiluMulProblem sp = make_silu_mul_problem(rows, n, shape.bf16, rng);
    kf_moe_silu_mul_args args{nullptr, y_.ptr, static_cast<int>(rows), static_cast<int>(n)};
    const LaunchGrid g{moe::elementwise_blocks(rows, n), 1, 1};
    return guarded([&](Measurement& r) {
      const hipFunction_t fn = function_of(k);
      DevBuf h1;
      try {
        h1.alloc(hip_, static_cast<int64_t>(sp.h1.size()) * 2, "moe_silu_mul's input");
      } catch (const Error& e) {
        throw CallFailed{e.what()};
      }
      check(hip_->hipMemcpy(h1.ptr, sp.h1.data(), sp.h1.size() * 2, hipMemcpyHostToDevice), "hipMemcpy (to the GPU)");
      args.x = h1.ptr;
      verify(fn, g, k.threads, &args, moe_sizes_.y_elems, (rows + kGuardRows) * n,
             [&](const std::vector<uint16_t>& y, Measurement& v) { judge_silu_mul_output(y, sp, v); }, r);
      if (r.disposition.empty()) time_runs(fn, g, k.threads, &args, cold, reps, r);
      if (r.fatal) h1.forget();  // a kernel still running: freeing its input would wait for it
    });
  }
  if (k.op == "moe_sum") {
    // What a gemm2 writing one row per slot is followed by in a layer: T tokens of N, the
    // batch's routing (in ids_), on its own random input (SumProblem), output in y.
    const int64_t t = routing.t, n = shape.n;
    std::mt19937_64 rng(opt_.seed ^ static_cast<uint64_t>(t * shape.top_k));
    const SumProblem sp = make_sum_problem(moe_host_.problem().topk_ids, t, shape.top_k, shape.experts, n, shape.bf16, rng);
    kf_moe_sum_args args{nullptr, static_cast<const int32_t*>(ids_.ptr), y_.ptr, static_cast<int>(t),
                         static_cast<int>(shape.top_k), static_cast<int>(shape.experts), static_cast<int>(n)};
    const LaunchGrid g{moe::elementwise_blocks(t, n), 1, 1};
    return guarded([&](Measurement& r) {
      const hipFunction_t fn = function_of(k);
      DevBuf xs;
      try {
        xs.alloc(hip_, static_cast<int64_t>(sp.x.size()) * 2, "moe_sum's input");
      } catch (const Error& e) {
        throw CallFailed{e.what()};
      }
      check(hip_->hipMemcpy(xs.ptr, sp.x.data(), sp.x.size() * 2, hipMemcpyHostToDevice), "hipMemcpy (to the GPU)");
      args.x = xs.ptr;
      verify(fn, g, k.threads, &args, moe_sizes_.y_elems, (t + kGuardRows) * n,
             [&](const std::vector<uint16_t>& y, Measurement& v) { judge_sum_output(y, sp, v); }, r);
      if (r.disposition.empty()) time_runs(fn, g, k.threads, &args, cold, reps, r);
      if (r.fatal) xs.forget();  // a kernel still running: freeing its input would wait for it
    });
  }
  const LinearConfig cfg = parse_linear_config(k.kind, k.config);
  const int64_t t = routing.t;
  const int64_t cap = moe::sorted_capacity(t, shape.top_k, shape.experts, cfg.block_m);
  const w4a16::Grid grid =
      moe::gemm_grid(cfg.kind == LinearKind::prefill, shape.n, cap, cfg.block_m, cfg.block_n, cfg.split_k);
  const LaunchGrid g{grid.x, grid.y, grid.z};
  kf_moe_gemm_args args{x_.ptr,
                        qw_.ptr,
                        sc_.ptr,
                        shape.asym ? qz_.ptr : nullptr,
                        static_cast<const float*>(tw_.ptr),
                        static_cast<const int32_t*>(sorted_.ptr),
                        static_cast<const int32_t*>(eids_.ptr),
                        static_cast<const int32_t*>(npad_.ptr),
                        y_.ptr,
                        static_cast<float*>(ws_.ptr),
                        static_cast<int*>(cnt_.ptr),
                        static_cast<int>(t),
                        static_cast<int>(shape.top_k),
                        static_cast<int>(shape.experts),
                        static_cast<int>(shape.n),
                        static_cast<int>(shape.k),
                        shape.expert().effective_group()};
  return guarded([&](Measurement& r) {
    const hipFunction_t fn = function_of(k);
    // A gemm2 summing over top_k (_red) adds into y [T, N]: y poisoned, its T token rows
    // zeroed by the align launch (as a layer runs it), then the kernel with the slots the
    // reference does not check weighted 0 (reduced_check_weights).
    if (cfg.red) check(hip_->hipMemsetD16Async(y_.ptr, 0xffff, static_cast<size_t>(moe_sizes_.y_elems), stream_), "hipMemsetD16Async");
    run_align(moe_host_.problem().topk_ids, t, shape.top_k, shape.experts, cfg.block_m, r, cfg.red ? t * shape.n : 0);
    if (cfg.red) {
      if (!r.disposition.empty()) return;
      const MoeProblem& p = moe_host_.problem();
      auto upload_weights = [&](const std::vector<float>& w) { check(hip_->hipMemcpy(tw_.ptr, w.data(), w.size() * 4, hipMemcpyHostToDevice), "hipMemcpy (to the GPU)"); };
      if (moe_host_.reference().sampled) upload_weights(reduced_check_weights(p, moe_host_.reference()));
      if (r.disposition.empty())
        verify(fn, g, k.threads, &args, 0, moe_reduced_rows(t) * shape.n,
               [&](const std::vector<uint16_t>& y, Measurement& v) {
                 judge_moe_reduced_output(y, moe_host_.reference(), shape, t, v);
               },
               r);
      if (moe_host_.reference().sampled && !r.fatal) upload_weights(p.topk_weights);
      if (r.disposition.empty()) time_runs(fn, g, k.threads, &args, cold, reps, r);
      return;
    }
    const int64_t rows = moe_checked_rows(t, shape.top_k);
    // A fused SiLU gemm1 writes h: N/2 columns.
    if (r.disposition.empty())
      verify(fn, g, k.threads, &args, moe_sizes_.y_elems, rows * (cfg.silu ? shape.n / 2 : shape.n),
             [&](const std::vector<uint16_t>& y, Measurement& v) {
               judge_moe_output(y, moe_host_.reference(), shape, t, v, cfg.silu);
             },
             r);
    if (r.disposition.empty()) time_runs(fn, g, k.threads, &args, cold, reps, r);
  });
}

}  // namespace hip_detail
}  // namespace kf
