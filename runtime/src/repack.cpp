// Loader helpers. kf_repack_weights: the kernels read GPTQ tensors as checkpoints store
// them, so there is no repack. Engines that have a "repack" step in their loader call
// this instead: it touches no memory (the pointers may be device pointers) and only
// checks that the buffers have exactly the sizes the shape implies and the alignment
// kf_launch needs; kf_check_moe_weights does the same for stacked MoE experts.
// kf_repack_mxfp4_scales (below) does reorder: MXFP4 scales, on the host.
#include <cstdint>

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

// kf_check_moe_weights: the MoE GEMMs read every expert's GPTQ tensors stacked along a
// leading E axis, as checkpoints store them per expert; like kf_repack_weights it moves
// nothing and checks the sizes and alignment of one GEMM's stacked buffers.
extern "C" kf_status kf_check_moe_weights(const kf_moe_shape* shape, int gemm, const void* qweight,
                                          size_t qweight_bytes, const void* scales, size_t scales_bytes,
                                          const void* qzeros, size_t qzeros_bytes) {
  const char* function = "kf_check_moe_weights";
  if (!shape) return fail(KF_ERR_INVALID_ARGUMENT, "%s: shape is NULL", function);
  if (gemm != 1 && gemm != 2)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: gemm = %d, must be 1 (gate_up) or 2 (down)", function, gemm);
  const kf_moe_shape& s = *shape;
  // gemm1: W1[e] is [2I, H] (N = 2I, K = H); gemm2: W2[e] is [H, I].
  const int64_t n = gemm == 1 ? 2 * s.intermediate : s.hidden, k = gemm == 1 ? s.hidden : s.intermediate;
  const int64_t g = s.group == 0 ? k : s.group;
  if (s.experts < 1 || s.experts > 1024 || n < 8 || k < 8 || s.group < 0 || n % 8 != 0 || k % 8 != 0 || k % g != 0)
    return fail(KF_ERR_INVALID_ARGUMENT,
                "%s: gemm%d of E = %lld, N = %lld, K = %lld, group = %d: E must be 1 to 1024, N and K positive "
                "multiples of 8, and the group size (0 = per-channel) must divide K", function, gemm,
                static_cast<long long>(s.experts), static_cast<long long>(n), static_cast<long long>(k), s.group);
  const int64_t e = s.experts;
  auto check = [&](const char* what, const void* p, size_t bytes, int64_t expected, uintptr_t alignment,
                   const char* layout) -> kf_status {
    if (!p) return fail(KF_ERR_INVALID_ARGUMENT, "%s: gemm%d %s is NULL", function, gemm, what);
    if (static_cast<int64_t>(bytes) != expected)
      return fail(KF_ERR_INVALID_ARGUMENT, "%s: gemm%d %s is %zu bytes; %s for E = %lld, N = %lld, K = %lld, "
                  "group = %lld is %lld bytes", function, gemm, what, bytes, layout, static_cast<long long>(e),
                  static_cast<long long>(n), static_cast<long long>(k), static_cast<long long>(g),
                  static_cast<long long>(expected));
    if (reinterpret_cast<uintptr_t>(p) % alignment != 0)
      return fail(KF_ERR_INVALID_ARGUMENT, "%s: gemm%d %s at %p is not %u-byte aligned", function, gemm, what, p,
                  static_cast<unsigned>(alignment));
    return KF_OK;
  };
  kf_status status = check("qweight", qweight, qweight_bytes, e * (k / 8) * n * 4, 16, "int32 [E, K/8, N]");
  if (status == KF_OK) status = check("scales", scales, scales_bytes, e * (k / g) * n * 2, 8, "16-bit [E, K/G, N]");
  if (status == KF_OK && (s.asym || qzeros))
    status = check("qzeros", qzeros, qzeros_bytes, e * (k / g) * (n / 8) * 4, 4, "int32 [E, K/G, N/8]");
  return status;
}

// kf_repack_mxfp4_scales: MXFP4 checkpoints store a weight's e8m0 scales row by row,
// [E, N, K/32]; the kernels read a k-tile's scales of consecutive columns in 16-byte
// pieces, so they take them k-block-major, [E, K/32, N] (templates/mxfp4_moe/args.h).
// A transpose per expert, in tiles so both sides are read and written in runs.
extern "C" kf_status kf_repack_mxfp4_scales(int64_t experts, int64_t n, int64_t k, const uint8_t* src,
                                            uint8_t* dst) {
  const char* function = "kf_repack_mxfp4_scales";
  if (!src || !dst) return fail(KF_ERR_INVALID_ARGUMENT, "%s: %s is NULL", function, !src ? "src" : "dst");
  if (experts < 1 || n < 1)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: experts = %lld, n = %lld: each must be at least 1", function,
                static_cast<long long>(experts), static_cast<long long>(n));
  if (k < 32 || k % 32 != 0)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: k = %lld is not a positive multiple of 32 (the MXFP4 block: one scale "
                "per 32 values)", function, static_cast<long long>(k));
  const int64_t blocks = k / 32;
  int64_t per_expert = 0, total = 0;
  if (__builtin_mul_overflow(n, blocks, &per_expert) || __builtin_mul_overflow(per_expert, experts, &total) ||
      static_cast<uint64_t>(total) > SIZE_MAX)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: experts x n x k / 32 = %lld x %lld x %lld bytes overflows", function,
                static_cast<long long>(experts), static_cast<long long>(n), static_cast<long long>(blocks));
  const uintptr_t s = reinterpret_cast<uintptr_t>(src), d = reinterpret_cast<uintptr_t>(dst);
  const uintptr_t bytes = static_cast<uintptr_t>(total);
  if (s < d + bytes && d < s + bytes)
    return fail(KF_ERR_INVALID_ARGUMENT, "%s: src and dst overlap (%lld bytes each); the repack is not in place",
                function, static_cast<long long>(total));
  constexpr int64_t kTile = 64;
  for (int64_t e = 0; e < experts; ++e) {
    const uint8_t* from = src + e * per_expert;  // [N, K/32]
    uint8_t* to = dst + e * per_expert;          // [K/32, N]
    for (int64_t n0 = 0; n0 < n; n0 += kTile)
      for (int64_t b0 = 0; b0 < blocks; b0 += kTile) {
        const int64_t n1 = n0 + kTile < n ? n0 + kTile : n, b1 = b0 + kTile < blocks ? b0 + kTile : blocks;
        for (int64_t row = n0; row < n1; ++row)
          for (int64_t b = b0; b < b1; ++b) to[b * n + row] = from[row * blocks + b];
      }
  }
  return KF_OK;
}
