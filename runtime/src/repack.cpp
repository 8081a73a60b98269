// kf_repack_weights: the kernels read GPTQ tensors as checkpoints store them, so there
// is no repack. Engines that have a "repack" step in their loader call this instead:
// it touches no memory (the pointers may be device pointers) and only checks that the
// buffers have exactly the sizes the shape implies and the alignment kf_launch needs.
#include "keys.h"
#include "kforge/kforge.h"
#include "status.h"

namespace {

using kf::rt::fail;

kf_status check_buffer(const char* what, const void* p, size_t bytes, int64_t expected, uintptr_t alignment,
                       const char* layout, long long n, long long k, long long g) {
  if (!p) return fail(KF_ERR_INVALID_ARGUMENT, "kf_repack_weights: %s is NULL", what);
  if (static_cast<int64_t>(bytes) != expected)
    return fail(KF_ERR_INVALID_ARGUMENT,
                "kf_repack_weights: %s is %zu bytes; %s for n = %lld, k = %lld, group = %lld is %lld bytes", what,
                bytes, layout, n, k, g, static_cast<long long>(expected));
  if (reinterpret_cast<uintptr_t>(p) % alignment != 0)
    return fail(KF_ERR_INVALID_ARGUMENT, "kf_repack_weights: %s at %p is not %u-byte aligned", what, p,
                static_cast<unsigned>(alignment));
  return KF_OK;
}

}  // namespace

extern "C" kf_status kf_repack_weights(int64_t n, int64_t k, int group, int asym, const void* qweight,
                                       size_t qweight_bytes, const void* scales, size_t scales_bytes,
                                       const void* qzeros, size_t qzeros_bytes) {
  const int64_t g = group == 0 ? k : group;
  if (n < 8 || k < 8 || group < 0 || n % 8 != 0 || k % 8 != 0 || k % g != 0)
    return fail(KF_ERR_INVALID_ARGUMENT,
                "kf_repack_weights: n = %lld, k = %lld, group = %d: N and K must be positive multiples of 8 and the "
                "group size (0 = per-channel) must divide K", static_cast<long long>(n), static_cast<long long>(k),
                group);
  const long long ln = n, lk = k, lg = g;
  kf_status status = check_buffer("qweight", qweight, qweight_bytes, k / 8 * n * 4, 16, "int32 [K/8, N]", ln, lk, lg);
  if (status == KF_OK)
    status = check_buffer("scales", scales, scales_bytes, k / g * n * 2, 8, "16-bit [K/G, N]", ln, lk, lg);
  // Symmetric kernels never read qzeros; check it only when it is given or needed.
  if (status == KF_OK && (asym || qzeros))
    status = check_buffer("qzeros", qzeros, qzeros_bytes, k / g * (n / 8) * 4, 4, "int32 [K/G, N/8]", ln, lk, lg);
  return status;
}
