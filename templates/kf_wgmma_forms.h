// Two more forms of Hopper's warpgroup MMA (sm_90a only), beside kf_wgmma.h's
// register-A / K-major-B one, for kernels whose operands both live in shared memory
// (attention: S = Q K^T with Q and K tiles in shared memory, then O += P V with V read
// from the very K tile):
//   mma_ss: A (64 x 16) from shared memory (B 32 or 64 wide), K-major and 128-byte
//           swizzled like the B tiles of kf_wgmma_layout.h (the A rows are its n rows);
//   mma_rs_mn: A from registers, B "MN-major" (N contiguous: B[k][n] stored k-row by
//           k-row, 128-byte swizzled per 64-element n block): the instruction's
//           transposed-B flag.
// A tile stored by b_tile_offset_sw128 (rows r, 64-element column blocks c) is at the same
// time the K-major operand over (n = r, k = c) and the MN-major one over (k = r, n = c):
// mn_tile_offset_sw128 (kf_wgmma_forms_layout.h) is that second reading of the same bytes.
// Kept in its own header so the kernels built on kf_wgmma.h keep their builds.
// tests/gpu/check_wgmma_layout.cu checks both forms on the device.
#pragma once
#include "kf_wgmma.h"
#include "kf_wgmma_forms_layout.h"

namespace kf {
namespace wg {

// Matrix descriptor of the k16 step at k (a multiple of 16) of an MN-major tile laid out
// by mn_tile_offset_sw128 (tile 1024-byte aligned): its rows k .. k + 15 start 128 k bytes
// in, a whole number of 8-row atoms, so the swizzle phase holds.
KF_INLINE uint64_t mn_desc_sw128(const void* tile, int k, int k_extent) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(tile)) + 128 * k;
  return desc_start_field(addr) | static_cast<uint64_t>(mn_leading_bytes(k_extent) >> 4) << 16 |
         uint64_t{kMnStrideBytes >> 4} << 32 | uint64_t{1} << 62;
}

// Matrix descriptor of the k16 step at k of a 64-row K-major A tile laid out by
// b_tile_offset_sw128(m, k, 64): the B tiles' descriptor over 64 rows.
KF_INLINE uint64_t a_desc_sw128(const void* tile, int k) { return b_desc_sw128(tile, k, 64); }

#define KF_WGF_D8(b)                                                                                       \
  "+f"(d[b + 0]), "+f"(d[b + 1]), "+f"(d[b + 2]), "+f"(d[b + 3]), "+f"(d[b + 4]), "+f"(d[b + 5]),        \
      "+f"(d[b + 6]), "+f"(d[b + 7])
#define KF_WGF_D32(b) KF_WGF_D8(b), KF_WGF_D8(b + 8), KF_WGF_D8(b + 16), KF_WGF_D8(b + 24)
#define KF_WGF_D16(b) KF_WGF_D8(b), KF_WGF_D8(b + 8)

#define KF_WGF_REGS16 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
#define KF_WGF_REGS32                                                                                      \
  KF_WGF_REGS16 ", %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define KF_WGF_SS(SHAPE, TYPE, REGS, OUTS, ADESC, BDESC, ONE)                                              \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #ONE ", 0;\nwgmma.mma_async.sync.aligned." SHAPE     \
               ".f32." TYPE "." TYPE " {" REGS "}, %" #ADESC ", %" #BDESC ", p, 1, 1, 0, 0;\n}\n"          \
               : OUTS                                                                                     \
               : "l"(a_desc), "l"(b_desc), "r"(1))

// d (N / 2 fp32 per thread, m64nN) += A (shared memory, a_desc) x B (K-major, b_desc);
// N = 32 lets two warpgroups split one 64-row B tile between them.
template <int N, bool BF16>
KF_INLINE void mma_ss(float (&d)[N / 2], uint64_t a_desc, uint64_t b_desc) {
  static_assert(N == 32 || N == 64, "the widths kforge's templates use");
  if constexpr (N == 32) {
    if constexpr (BF16)
      KF_WGF_SS("m64n32k16", "bf16", KF_WGF_REGS16, KF_WGF_D16(0), 16, 17, 18);
    else
      KF_WGF_SS("m64n32k16", "f16", KF_WGF_REGS16, KF_WGF_D16(0), 16, 17, 18);
  } else {
    if constexpr (BF16)
      KF_WGF_SS("m64n64k16", "bf16", KF_WGF_REGS32, KF_WGF_D32(0), 32, 33, 34);
    else
      KF_WGF_SS("m64n64k16", "f16", KF_WGF_REGS32, KF_WGF_D32(0), 32, 33, 34);
  }
}

// The 128 accumulators of an n256 product, in four runs of 32.
#define KF_WGF_REGS128                                                                                       \
  KF_WGF_REGS32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, "     \
                "%49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, "   \
                "%67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, "   \
                "%85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, " \
                "%103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, "    \
                "%118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define KF_WGF_RS_MN_N256(TYPE)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\nwgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE \
               "." TYPE " {" KF_WGF_REGS128 "}, {%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"           \
               : KF_WGF_D32(0), KF_WGF_D32(32), KF_WGF_D32(64), KF_WGF_D32(96)                            \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1))

// d (128 fp32 per thread, m64n256) += A (registers, as kf_wgmma.h) x B (MN-major, b_desc).
template <bool BF16>
KF_INLINE void mma_rs_mn_n256(float (&d)[128], const uint32_t (&a)[4], uint64_t b_desc) {
  if constexpr (BF16)
    KF_WGF_RS_MN_N256("bf16");
  else
    KF_WGF_RS_MN_N256("f16");
}
#undef KF_WGF_RS_MN_N256
#undef KF_WGF_REGS128
#undef KF_WGF_SS
#undef KF_WGF_D16
#undef KF_WGF_REGS16
#undef KF_WGF_REGS32
#undef KF_WGF_D32
#undef KF_WGF_D8

}  // namespace wg
}  // namespace kf
