// Hopper's warpgroup matrix multiply (wgmma, sm_90a only), for the templates that use
// it: four warps (a warpgroup, 128 threads) issue one asynchronous 64 x N x 16 product.
// Kept apart from kf_portability.h because no other target has it: a template that
// includes this header is an NVIDIA-only kind.
//
// The form used here takes A (64 x 16, 16-bit) from registers and B (16 x N) from
// shared memory through a matrix descriptor; D (64 x N fp32) stays in registers.
//   A: warp w of the group holds rows 16w .. 16w + 15 exactly as an mma.sync m16n8k16
//      A fragment (layout::Mma16Sm80::a_pair): registers (row g, k 2t..), (row g + 8,
//      k 2t..), (row g, k 2t + 8..), (row g + 8, k 2t + 8..), g = lane / 4, t = lane % 4.
//   D: element 4j + e of warp w's lane: row 16w + g + 8 (e / 2), column 8j + 2t + e % 2
//      (the m16n8 C fragment of each 8 columns in turn): kf_wgmma_layout.h.
//   B: "K-major" (B[k][n] stored n-major with k contiguous, like a weight row), without
//      swizzling: 8 x 8 core matrices of 8 n-rows x 16 bytes, each 128 contiguous bytes;
//      the descriptor's leading byte offset is the distance between the two core matrices
//      of a k16 step (along k), its stride byte offset that between 8-row groups along n.
// tests/gpu/check_wgmma_layout.cu tests these on the device (ctest gpu_check_wgmma_layout).
#pragma once
#include "kf_portability.h"
#include "kf_wgmma_layout.h"

#if !KF_NVIDIA
#error "kf_wgmma.h: warpgroup MMA exists only on NVIDIA sm_90a"
#endif

namespace kf {
namespace wg {

// Matrix descriptor of a B tile laid out by b_tile_offset, starting at its k16 step
// `tile` (a shared-memory address, 16-byte aligned): leading offset 128 bytes (the next
// 8 k), stride offset k_extent * 16 bytes (the next 8 rows), no swizzle.
KF_INLINE uint64_t b_desc(const void* tile, int k_extent) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
  const uint64_t lbo = 128 >> 4, sbo = static_cast<uint64_t>(k_extent * 16) >> 4;
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | lbo << 16 | sbo << 32;
}

// Matrix descriptor of the k16 step at k of a B tile laid out by b_tile_offset_sw128
// (tile 1024-byte aligned): start at the step's first chunk of row 0, stride 1024 bytes
// (the next 8-row atom), the leading offset unused (a step never leaves its 128-byte
// rows), 128-byte swizzle mode.
KF_INLINE uint64_t b_desc_sw128(const void* tile, int k, int n_extent) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(tile)) + b_tile_offset_sw128(0, k, n_extent);
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | uint64_t{1} << 16 | uint64_t{1024 >> 4} << 32 |
         uint64_t{1} << 62;
}

// Orders this thread's register writes before the next wgmma reads them.
KF_INLINE void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
KF_INLINE void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Returns when at most P committed groups are still running.
template <int P>
KF_INLINE void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(P) : "memory");
}
// Orders ordinary shared-memory accesses (st.shared, cp.async: the generic proxy) with
// wgmma's reads (the async proxy). A writer fences before the barrier that publishes its
// writes; a reader that learns of other threads' writes from a phase barrier (cp.async
// copies that arrive on it) fences after its wait, before its products read them.
KF_INLINE void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Per-warpgroup register budgets (setmaxnreg; every warp of the warpgroup executes it):
// a warpgroup that only issues copies gives registers back so that the multiplying ones
// can take them, within the block's share of the register file at launch.
template <int REGS>
KF_INLINE void lower_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
template <int REGS>
KF_INLINE void raise_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
// Ties a register to the asm statements around it, so the compiler neither reads an
// accumulator before wait() nor moves its initialisation past the first product.
KF_INLINE void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }
// Every accumulator of an array fenced: after wait<0>(), before anything reads them.
template <int N>
KF_INLINE void fence_operands(float (&acc)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) fence_operand(acc[i]);
}
// An accumulator array zeroed and fenced before its first product.
template <int N>
KF_INLINE void zero_operands(float (&acc)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    acc[i] = 0.f;
    fence_operand(acc[i]);
  }
}
// The __byte_perm selector by which lane t of a quad builds its A-fragment pairs from a
// packed 4-bit word: byte t of the word (nibbles 2t, 2t + 1) and byte t of the word
// shifted right by 4, into the two 16-bit halves (w4a16_linear/wgmma.h, mxfp4_moe).
KF_INLINE uint32_t nibble_select(int t) { return static_cast<uint32_t>(t) | static_cast<uint32_t>(4 + t) << 8; }
// The prologue of a ring in which every thread issues its share of each stage's copies:
// stages 0 .. AHEAD - 1 issued, a commit group each (empty past the last of `stages`),
// so that cp_async_wait counts stages.
template <int AHEAD, class Issue>
KF_INLINE void issue_ahead(int stages, Issue&& issue) {
#pragma unroll
  for (int s = 0; s < AHEAD; ++s) {
    if (s < stages) issue(s);
    cp_async_commit();
  }
}

#define KF_WG_REGS8 "%0, %1, %2, %3, %4, %5, %6, %7"
#define KF_WG_REGS16 KF_WG_REGS8 ", %8, %9, %10, %11, %12, %13, %14, %15"
#define KF_WG_REGS32                                                                                          \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31"
#define KF_WG_REGS64                                                                                            \
  KF_WG_REGS32                                                                                                  \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, " \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define KF_WG_REGS128                                                                                           \
  KF_WG_REGS64                                                                                                  \
  ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, " \
  "%85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, "   \
  "%105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, "       \
  "%122, %123, %124, %125, %126, %127"
#define KF_WG_D16(b)                                                                                            \
  "+f"(d[b + 0]), "+f"(d[b + 1]), "+f"(d[b + 2]), "+f"(d[b + 3]), "+f"(d[b + 4]), "+f"(d[b + 5]),             \
      "+f"(d[b + 6]), "+f"(d[b + 7]), "+f"(d[b + 8]), "+f"(d[b + 9]), "+f"(d[b + 10]), "+f"(d[b + 11]),       \
      "+f"(d[b + 12]), "+f"(d[b + 13]), "+f"(d[b + 14]), "+f"(d[b + 15])
#define KF_WG_OUT8                                                                                       \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
#define KF_WG_OUT16 KF_WG_D16(0)
#define KF_WG_OUT32 KF_WG_D16(0), KF_WG_D16(16)
#define KF_WG_OUT64 KF_WG_OUT32, KF_WG_D16(32), KF_WG_D16(48)
#define KF_WG_OUT128 KF_WG_OUT64, KF_WG_D16(64), KF_WG_D16(80), KF_WG_D16(96), KF_WG_D16(112)
// D += A B for one shape and type: REGS/OUTS name the N / 2 accumulators, A0 .. DESC the
// operand numbers after them, ONE the always-true accumulate predicate's source.
#define KF_WG_MMA_RS(SHAPE, TYPE, REGS, OUTS, A0, A1, A2, A3, DESC, ONE)                                   \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #ONE ", 0;\nwgmma.mma_async.sync.aligned." SHAPE   \
               ".f32." TYPE "." TYPE " {" REGS "}, {%" #A0 ", %" #A1 ", %" #A2 ", %" #A3 "}, %" #DESC \
               ", p, 1, 1, 0;\n}\n"                                                                        \
               : OUTS                                                                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1))

// d (N / 2 fp32 per thread) += A (a, this thread's 4 registers) x B (b_desc); asynchronous:
// commit() and wait() before d is read, fence() before it when a or d was just written.
template <int N, bool BF16>
KF_INLINE void mma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b_desc) {
  static_assert(N == 16 || N == 32 || N == 64 || N == 128 || N == 256, "the widths kforge's templates use");
  if constexpr (N == 16) {
    if constexpr (BF16)
      KF_WG_MMA_RS("m64n16k16", "bf16", KF_WG_REGS8, KF_WG_OUT8, 8, 9, 10, 11, 12, 13);
    else
      KF_WG_MMA_RS("m64n16k16", "f16", KF_WG_REGS8, KF_WG_OUT8, 8, 9, 10, 11, 12, 13);
  } else if constexpr (N == 32) {
    if constexpr (BF16)
      KF_WG_MMA_RS("m64n32k16", "bf16", KF_WG_REGS16, KF_WG_OUT16, 16, 17, 18, 19, 20, 21);
    else
      KF_WG_MMA_RS("m64n32k16", "f16", KF_WG_REGS16, KF_WG_OUT16, 16, 17, 18, 19, 20, 21);
  } else if constexpr (N == 64) {
    if constexpr (BF16)
      KF_WG_MMA_RS("m64n64k16", "bf16", KF_WG_REGS32, KF_WG_OUT32, 32, 33, 34, 35, 36, 37);
    else
      KF_WG_MMA_RS("m64n64k16", "f16", KF_WG_REGS32, KF_WG_OUT32, 32, 33, 34, 35, 36, 37);
  } else if constexpr (N == 128) {
    if constexpr (BF16)
      KF_WG_MMA_RS("m64n128k16", "bf16", KF_WG_REGS64, KF_WG_OUT64, 64, 65, 66, 67, 68, 69);
    else
      KF_WG_MMA_RS("m64n128k16", "f16", KF_WG_REGS64, KF_WG_OUT64, 64, 65, 66, 67, 68, 69);
  } else {
    if constexpr (BF16)
      KF_WG_MMA_RS("m64n256k16", "bf16", KF_WG_REGS128, KF_WG_OUT128, 128, 129, 130, 131, 132, 133);
    else
      KF_WG_MMA_RS("m64n256k16", "f16", KF_WG_REGS128, KF_WG_OUT128, 128, 129, 130, 131, 132, 133);
  }
}
#undef KF_WG_MMA_RS
#undef KF_WG_OUT128
#undef KF_WG_OUT64
#undef KF_WG_OUT32
#undef KF_WG_OUT16
#undef KF_WG_OUT8
#undef KF_WG_D16
#undef KF_WG_REGS128
#undef KF_WG_REGS64
#undef KF_WG_REGS32
#undef KF_WG_REGS16
#undef KF_WG_REGS8

}  // namespace wg
}  // namespace kf
