#include "mla_launch.h"

#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "mla_select.h"
#include "sparse_mla/launch.h"
#include "status.h"
#include "tensor_args.h"

namespace kf {
namespace rt {

namespace {

// Records "<function>(<kernel>): <message>", or "<function>: <message>" before a kernel
// is chosen (k null), and returns `status`. Formats on the stack, on failure only.
kf_status refuse(kf_status status, const char* function, const KernelImpl* k, const char* format, ...)
    __attribute__((format(printf, 4, 5)));
kf_status refuse(kf_status status, const char* function, const KernelImpl* k, const char* format, ...) {
  char message[768];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (k) return fail(status, "%s(%s): %s", function, k->name.c_str(), message);
  return fail(status, "%s: %s", function, message);
}

// The checks that need no kernel (kf_run_mla makes them before selecting one).
kf_status check_args(const kf_mla_decode_args& a, const char* function, const KernelImpl* k) {
  const kf_status bad = KF_ERR_INVALID_ARGUMENT;
  if (!a.q || !a.kv || !a.indices || !a.o)
    return refuse(bad, function, k, "args->%s is NULL", !a.q ? "q" : !a.kv ? "kv" : !a.indices ? "indices" : "o");
  if (a.queries < 1) return refuse(bad, function, k, "args->queries = %d, must be at least 1", a.queries);
  if (a.heads < 16 || a.heads > 256 || a.heads % 16 != 0)
    return refuse(bad, function, k, "args->heads = %d not supported (H must be a multiple of 16 from 16 to 256)",
                  a.heads);
  if (a.topk < 1 || a.topk > 65536) return refuse(bad, function, k, "args->topk = %d, must be in [1, 65536]", a.topk);
  if (a.kv_rows < 1) return refuse(bad, function, k, "args->kv_rows = %d, must be at least 1", a.kv_rows);
  if (!a.extra_start != !a.extra_count)
    return refuse(bad, function, k, "args->%s is NULL but args->%s is not (give both or neither)",
                  a.extra_start ? "extra_count" : "extra_start", a.extra_start ? "extra_start" : "extra_count");
  if (!std::isfinite(a.softmax_scale) || a.softmax_scale <= 0.f)
    return refuse(bad, function, k, "args->softmax_scale = %g, must be finite and positive",
                  static_cast<double>(a.softmax_scale));
  // 16-byte copies of q and kv rows, 16-byte stores of o (combine), 4-byte words elsewhere.
  const TensorArg tensors[] = {{a.q, "q", 16, true},
                                {a.kv, "kv", 16, true},
                                {a.o, "o", 16, true},
                                {a.indices, "indices", 4, true},
                                {a.extra_start, "extra_start", 4, false},
                                {a.extra_count, "extra_count", 4, false},
                                {a.lse, "lse", 4, false}};
  if (const kf_status status = check_aligned(tensors, function, k ? k->name.c_str() : nullptr)) return status;
  if (static_cast<unsigned>(a.queries) > kMaxGridYZ)
    return refuse(KF_ERR_UNSUPPORTED_SHAPE, function, k,
                  "args->queries = %d: the decode grid's y (one block row per query) is limited to %u; launch the "
                  "queries in parts", a.queries, kMaxGridYZ);
  return KF_OK;
}

// What the kernel itself needs of the call; then the launches.
kf_status plan_and_launch(const KernelImpl& k, const kf_mla_decode_args& a, void* scratch, size_t scratch_bytes,
                          void* stream, const char* function) {
  if (k.op_kind != KernelOp::mla_decode)
    return refuse(KF_ERR_INVALID_ARGUMENT, function, &k, "a %s kernel, not %s", k.op.c_str(), kMlaOp);
  kf_status status = check_args(a, function, &k);
  if (status != KF_OK) return status;
  if (a.heads != k.mla.heads || a.topk != k.mla.topk)
    return refuse(KF_ERR_INVALID_ARGUMENT, function, &k,
                  "args has heads = %d, topk = %d; the kernel is built for heads = %lld, topk = %lld", a.heads, a.topk,
                  static_cast<long long>(k.mla.heads), static_cast<long long>(k.mla.topk));
  const MlaConfigKey& c = k.mla_config;
  const KernelImpl* combine = nullptr;
  if ((status = mla_combine_of(k, function, &combine)) != KF_OK) return status;
  const MlaScratch s = mla_scratch(c.splits, a.queries, a.heads);
  if (combine) {
    if (!scratch)
      return refuse(KF_ERR_INVALID_ARGUMENT, function, &k,
                    "the kernel splits KV (sp%d) and scratch is NULL: queries = %d need %lld bytes "
                    "(kf_mla_scratch_bytes)", c.splits, a.queries, static_cast<long long>(s.total));
    if (!aligned(scratch, 16)) return refuse(KF_ERR_INVALID_ARGUMENT, function, &k, "scratch is not 16-byte aligned");
    if (static_cast<uint64_t>(s.total) > scratch_bytes)
      return refuse(KF_ERR_INVALID_ARGUMENT, function, &k,
                    "scratch_bytes = %llu is too small: the kernel splits KV (sp%d) and queries = %d needs %lld bytes "
                    "(kf_mla_scratch_bytes)", static_cast<unsigned long long>(scratch_bytes), c.splits, a.queries,
                    static_cast<long long>(s.total));
  }

  kf_mla_decode_args decode = a;  // the kernel's by-value parameter
  decode.part_o = combine ? static_cast<float*>(scratch) : nullptr;
  decode.part_lse = combine ? reinterpret_cast<float*>(static_cast<char*>(scratch) + s.part_lse) : nullptr;
  const mla::Grid g = mla::decode_grid(a.heads, a.queries, c.block_h, c.splits);
  status = launch_kernel(k, {{g.x, g.y, g.z}, {static_cast<unsigned>(k.threads), 1, 1}}, &decode, stream);
  if (status != KF_OK || !combine) return status;
  kf_mla_combine_args merge = {decode.part_o, decode.part_lse, a.o, a.lse, a.queries, a.heads, c.splits};
  const mla::Grid cg = mla::combine_grid(a.queries, a.heads);
  return launch_kernel(*combine, {{cg.x, cg.y, cg.z}, {static_cast<unsigned>(mla::kCombineThreads), 1, 1}}, &merge,
                       stream);
}

}  // namespace

kf_status launch_mla(const KernelImpl& k, const kf_mla_decode_args& a, void* scratch, size_t scratch_bytes,
                     void* stream) {
  return plan_and_launch(k, a, scratch, scratch_bytes, stream, "kf_launch_mla");
}

kf_status run_mla(const kf_db& db, const kf_mla_shape& shape, const kf_mla_decode_args& a, void* scratch,
                  size_t scratch_bytes, void* stream) {
  const char* function = "kf_run_mla";
  MlaShapeKey key;
  kf_status status = mla_key(shape, function, &key);
  if (status == KF_OK) status = check_args(a, function, nullptr);
  if (status != KF_OK) return status;
  if (a.heads != shape.heads || a.topk != shape.topk)
    return refuse(KF_ERR_INVALID_ARGUMENT, function, nullptr,
                  "args has heads = %d, topk = %d; shape has heads = %d, topk = %d", a.heads, a.topk, shape.heads,
                  shape.topk);
  const kf_kernel* kernel = nullptr;
  if ((status = select_mla(db, key, a.queries, function, &kernel)) != KF_OK) return status;
  return plan_and_launch(*kernel->impl, a, scratch, scratch_bytes, stream, function);
}

kf_status check_mla_indices(const int32_t* indices, int64_t queries, int64_t topk, int64_t kv_rows,
                            int64_t* bad_position) {
  const char* function = "kf_check_mla_indices";
  if (bad_position) *bad_position = -1;
  if (!indices) return fail(KF_ERR_INVALID_ARGUMENT, "%s: host_indices is NULL", function);
  if (queries < 1 || topk < 1 || kv_rows < 1)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: queries = %lld, topk = %lld, kv_rows = %lld: each must be at least 1",
                function, static_cast<long long>(queries), static_cast<long long>(topk),
                static_cast<long long>(kv_rows));
  int64_t count = 0;
  if (__builtin_mul_overflow(queries, topk, &count))
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: queries x topk overflows", function);
  for (int64_t i = 0; i < count; ++i) {
    const int32_t v = indices[i];
    if (v == -1 || (v >= 0 && v < kv_rows)) continue;
    if (bad_position) *bad_position = i;
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: indices[%lld] (query %lld, slot %lld) = %d: must be -1 (unused) or a KV "
                "row in [0, kv_rows = %lld)", function, static_cast<long long>(i), static_cast<long long>(i / topk),
                static_cast<long long>(i % topk), v, static_cast<long long>(kv_rows));
  }
  return KF_OK;
}

}  // namespace rt
}  // namespace kf
