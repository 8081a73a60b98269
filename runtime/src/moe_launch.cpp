#include "moe_launch.h"

#include <climits>
#include <cstdint>

#include "status.h"
#include "tensor_args.h"
#include "w4a16_moe/align_cluster_tiling.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {


kf_status elementwise_dims(const char* function, const char* name, int64_t rows, int n, LaunchDims* dims) {
  const int64_t blocks = (rows * n / 8 + moe::kEltThreads - 1) / moe::kEltThreads;
  if (blocks > INT_MAX)
    return fail(KF_ERR_UNSUPPORTED_SHAPE, "%s(%s): %lld x %d outputs need %lld blocks, over the grid limit", function,
                name, static_cast<long long>(rows), n, static_cast<long long>(blocks));
  *dims = {{moe::elementwise_blocks(rows, n), 1, 1}, {static_cast<unsigned>(moe::kEltThreads), 1, 1}};
  return KF_OK;
}

// The helper a pack provides for this arch (and dtype), or KF_ERR_NOT_FOUND.
kf_status helper(const kf_db& db, const kf_kernel* handle, const char* function, const char* what,
                 const KernelImpl** kernel) {
  if (!handle)
    return fail(KF_ERR_NOT_FOUND, "%s: pack '%s' has no %s kernel for %s (packs with MoE kernels have one; "
                "regenerate it with genkernels)", function, db.path.c_str(), what, db.arch.c_str());
  *kernel = handle->impl;
  return KF_OK;
}

}  // namespace

kf_status check_moe_routing(const char* function, const char* name, int t, int top_k, int experts) {
  if (t < 1) return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->t = %d, must be at least 1", function, name, t);
  if (experts < 1 || experts > moe::kMaxExperts)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->experts = %d, must be in [1, %d]", function, name, experts,
                moe::kMaxExperts);
  if (top_k < 1 || top_k > experts)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->top_k = %d, must be in [1, experts = %d]", function, name,
                top_k, experts);
  if (int64_t{t} * top_k > INT_MAX)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): t * top_k = %lld slots, more than an int holds", function, name,
                static_cast<long long>(int64_t{t} * top_k));
  return KF_OK;
}

int64_t moe_capacity(const char* function, const char* name, int t, int top_k, int experts, int block_m) {
  const int64_t capacity = moe::sorted_capacity(t, top_k, experts, block_m);
  if (capacity > INT_MAX) {
    fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): t = %d, top_k = %d, block_m = %d: %lld sorted entries, more than an int "
         "holds", function, name, t, top_k, block_m, static_cast<long long>(capacity));
    return -1;
  }
  return capacity;
}

kf_status plan_moe_align(const kf_db& db, const kf_moe_align_args& a, const char* function, MoeLaunch* out) {
  const KernelImpl* k = nullptr;
  // Many slots: the cluster form, where one workgroup's passes over them set the time.
  const bool many = int64_t{a.t} * a.top_k >= moe::kAlignClusterMinSlots;
  kf_status status = helper(db, many && db.moe_align_cluster ? db.moe_align_cluster : db.moe_align, function,
                            "moe_align", &k);
  if (status != KF_OK) return status;
  const char* name = k->name.c_str();
  if (!a.topk_ids || !a.sorted_ids || !a.expert_ids || !a.num_padded)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->%s is NULL", function, name,
                !a.topk_ids ? "topk_ids" : !a.sorted_ids ? "sorted_ids" : !a.expert_ids ? "expert_ids" : "num_padded");
  if ((status = check_moe_routing(function, name, a.t, a.top_k, a.experts)) != KF_OK) return status;
  if (a.block_m < 1 || a.block_m > 1024)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->block_m = %d, must be in [1, 1024] (kf_kernel_block_m)",
                function, name, a.block_m);
  if (moe_capacity(function, name, a.t, a.top_k, a.experts, a.block_m) < 0) return KF_ERR_INVALID_ARGUMENT;
  if (!aligned(a.topk_ids, 4) || !aligned(a.sorted_ids, 4) || !aligned(a.expert_ids, 4) || !aligned(a.num_padded, 4))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): misaligned tensor (topk_ids, sorted_ids, expert_ids and "
                "num_padded need 4 bytes)", function, name);
  // The optional zeroing (a reducing gemm2's y): 16-byte stores, blocks 1 .. of the grid.
  const int64_t zero_count = a.zero ? a.zero_count : 0;
  if (a.zero && (a.zero_count < 1 || a.zero_count % 8 != 0))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->zero_count = %lld, must be a positive multiple of 8 when "
                "args->zero is set", function, name, static_cast<long long>(a.zero_count));
  if (a.zero && !aligned(a.zero, 16))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): misaligned tensor (zero needs 16 bytes)", function, name);
  const int64_t blocks = k->align_cluster ? moe::cluster_align_blocks(zero_count) : moe::align_blocks(zero_count);
  if (blocks > INT_MAX)
    return fail(KF_ERR_UNSUPPORTED_SHAPE, "%s(%s): zeroing %lld values needs %lld blocks, over the grid limit",
                function, name, static_cast<long long>(zero_count), static_cast<long long>(blocks));
  *out = {k, {{static_cast<unsigned>(blocks), 1, 1}, {static_cast<unsigned>(moe::kAlignThreads), 1, 1}}};
  return KF_OK;
}

kf_status plan_moe_gemm(const KernelImpl& k, const kf_moe_gemm_args& a, const char* function, MoeLaunch* out) {
  const char* name = k.name.c_str();
  if (k.op_kind != KernelOp::moe_gemm)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): a %s kernel, not a w4a16_moe GEMM", function, name, k.op.c_str());
  const MoeShapeKey& s = k.moe;
  const bool gemm2 = s.gemm == 2;
  if (!a.x || !a.qweight || !a.scales || !a.sorted_ids || !a.expert_ids || !a.num_padded || !a.y ||
      (s.expert.asym && !a.qzeros) || (gemm2 && !a.topk_weights))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->%s is NULL", function, name,
                !a.x            ? "x"
                : !a.qweight    ? "qweight"
                : !a.scales     ? "scales"
                : !a.sorted_ids ? "sorted_ids"
                : !a.expert_ids ? "expert_ids"
                : !a.num_padded ? "num_padded"
                : !a.y          ? "y"
                : !a.qzeros && s.expert.asym ? "qzeros"
                                             : "topk_weights");
  kf_status status = check_moe_routing(function, name, a.t, a.top_k, a.experts);
  if (status != KF_OK) return status;
  if (a.experts != s.experts || a.top_k != s.top_k)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args has experts = %d, top_k = %d; the kernel is built for "
                "experts = %lld, top_k = %lld", function, name, a.experts, a.top_k,
                static_cast<long long>(s.experts), static_cast<long long>(s.top_k));
  const LinearShapeKey& e = s.expert;
  const bool group_ok = e.group == 0 ? (a.group == 0 || a.group == a.k) : a.group == e.group;
  const LinearConfigKey& c = k.config;
  if (a.n != e.n || a.k != e.k || !group_ok)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args has n = %d, k = %d, group = %d; the kernel is built for "
                "n = %lld, k = %lld, group = %lld%s", function, name, a.n, a.k, a.group, static_cast<long long>(e.n),
                static_cast<long long>(e.k), static_cast<long long>(e.effective_group()),
                c.silu  ? " (fused SiLU: n is gate_up's N = 2 I, and y gets n / 2 columns, [t * top_k, n / 2])"
                : c.red ? " (top_k reduction: y is [t, n], zeroed first, added into)"
                        : "");
  if (k.splits_through_memory() && (!a.workspace || !a.counters))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): split-K kernel (sk%d) needs args->workspace and args->counters "
                "(sizes from kf_kernel_workspace with m = t)", function, name, c.split_k);
  if (!aligned(a.x, 16) || !aligned(a.qweight, 16) || !aligned(a.scales, 8) || !aligned(a.y, 8) ||
      (e.asym && !aligned(a.qzeros, 4)) || (a.topk_weights && !aligned(a.topk_weights, 4)) ||
      !aligned(a.sorted_ids, 4) || !aligned(a.expert_ids, 4) || !aligned(a.num_padded, 4) ||
      (a.workspace && !aligned(a.workspace, 4)) || (a.counters && !aligned(a.counters, 4)))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): misaligned tensor (x and qweight need 16 bytes, scales and y 8, "
                "the others 4)", function, name);
  const int64_t capacity = moe_capacity(function, name, a.t, a.top_k, a.experts, c.block_m);
  if (capacity < 0) return KF_ERR_INVALID_ARGUMENT;
  const w4a16::Grid g =
      moe::gemm_grid(k.kind == w4a16::Kind::prefill, e.n, capacity, c.block_m, c.block_n, c.split_k);
  if (g.y > kMaxGridYZ || g.z > kMaxGridYZ)
    return fail(KF_ERR_UNSUPPORTED_SHAPE, "%s(%s): t = %d needs a grid of %u x %u x %u blocks; y and z are limited "
                "to %u", function, name, a.t, g.x, g.y, g.z, kMaxGridYZ);
  *out = {&k, {{g.x, g.y, g.z}, {static_cast<unsigned>(k.threads), 1, 1}}};
  return KF_OK;
}

kf_status plan_moe_silu_mul(const kf_db& db, bool bf16, const kf_moe_silu_mul_args& a, const char* function,
                            MoeLaunch* out) {
  const KernelImpl* k = nullptr;
  kf_status status = helper(db, db.moe_silu_mul[bf16], function, bf16 ? "moe_silu_mul bf16" : "moe_silu_mul fp16", &k);
  if (status != KF_OK) return status;
  const char* name = k->name.c_str();
  if (!a.x || !a.y) return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->%s is NULL", function, name, !a.x ? "x" : "y");
  if (a.rows < 1) return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->rows = %d, must be at least 1", function, name, a.rows);
  if (a.n < 8 || a.n % 8 != 0 || a.n > INT_MAX / 2)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->n = %d, must be a positive multiple of 8", function, name, a.n);
  if (!aligned(a.x, 16) || !aligned(a.y, 16))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): misaligned tensor (x and y need 16 bytes)", function, name);
  out->kernel = k;
  return elementwise_dims(function, name, a.rows, a.n, &out->dims);
}

kf_status plan_moe_sum(const kf_db& db, bool bf16, const kf_moe_sum_args& a, const char* function, MoeLaunch* out) {
  const KernelImpl* k = nullptr;
  kf_status status = helper(db, db.moe_sum[bf16], function, bf16 ? "moe_sum bf16" : "moe_sum fp16", &k);
  if (status != KF_OK) return status;
  const char* name = k->name.c_str();
  if (!a.x || !a.topk_ids || !a.y)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->%s is NULL", function, name,
                !a.x ? "x" : !a.topk_ids ? "topk_ids" : "y");
  if ((status = check_moe_routing(function, name, a.t, a.top_k, a.experts)) != KF_OK) return status;
  if (a.n < 8 || a.n % 8 != 0)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): args->n = %d, must be a positive multiple of 8", function, name, a.n);
  if (!aligned(a.x, 16) || !aligned(a.y, 16) || !aligned(a.topk_ids, 4))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s(%s): misaligned tensor (x and y need 16 bytes, topk_ids 4)", function,
                name);
  out->kernel = k;
  return elementwise_dims(function, name, a.t, a.n, &out->dims);
}

}  // namespace rt
}  // namespace kf
