// The one header that hides vendor differences from kforge's kernel templates: kernel
// and device qualifiers, thread/block ids, barriers, fences, atomics, 16-bit float
// conversions and the 16x16x16 matrix-multiply atom. Templates include only this (and
// their family's own headers), so one template text compiles with clang's AMDGPU
// backend (-x hip, no HIP headers, no device libraries) and with nvcc.
#pragma once

#include <stdint.h>

#include "kf_mma_layouts.h"

#if defined(__HIP__)
// ---------------------------------------------------------------- AMDGPU (clang, -x hip)
#define KF_AMDGPU 1
#define KF_KERNEL extern "C" __attribute__((global))
#define KF_DEVICE __attribute__((device))
#define KF_INLINE __attribute__((device, always_inline)) inline
#define KF_SHARED __attribute__((shared))
#define KF_LAUNCH_BOUNDS(threads) __attribute__((amdgpu_flat_work_group_size(1, threads)))
#if defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__)
#define KF_WAVE 64
#define KF_MMA_MFMA16 1
#elif defined(__gfx1100__) || defined(__gfx1101__) || defined(__gfx1102__) || \
    defined(__gfx1150__) || defined(__gfx1151__)
#define KF_WAVE 32
#define KF_MMA_WMMA16 1
#elif defined(__HIP_DEVICE_COMPILE__)
#error "kforge templates: unsupported AMDGPU target"
#else
#define KF_WAVE 64
#endif

#elif defined(__CUDACC__)
// ---------------------------------------------------------------- NVIDIA (nvcc)
#define KF_NVIDIA 1
#define KF_KERNEL extern "C" __global__
#define KF_DEVICE __device__
#define KF_INLINE __device__ __forceinline__
#define KF_SHARED __shared__
#define KF_LAUNCH_BOUNDS(threads) __launch_bounds__(threads)
#define KF_WAVE 32
#define KF_MMA_SM80 1
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#else
#error "kforge templates compile as HIP (clang -x hip) or CUDA (nvcc)"
#endif

namespace kf {

// No libc headers on the AMDGPU side: take size_t from the compiler.
typedef __SIZE_TYPE__ size_t;

// ---- thread and block ids ----------------------------------------------------------
#if KF_AMDGPU
KF_INLINE int thread_id() { return __builtin_amdgcn_workitem_id_x(); }
KF_INLINE int block_x() { return __builtin_amdgcn_workgroup_id_x(); }
KF_INLINE int block_y() { return __builtin_amdgcn_workgroup_id_y(); }
KF_INLINE int block_z() { return __builtin_amdgcn_workgroup_id_z(); }
#else
KF_INLINE int thread_id() { return threadIdx.x; }
KF_INLINE int block_x() { return blockIdx.x; }
KF_INLINE int block_y() { return blockIdx.y; }
KF_INLINE int block_z() { return blockIdx.z; }
#endif

// ---- barriers, fences, atomics -----------------------------------------------------
#if KF_AMDGPU
// s_barrier alone orders execution, not LDS traffic: the fences make it __syncthreads.
KF_INLINE void barrier() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
  __builtin_amdgcn_s_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}
KF_INLINE void fence_device() { __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent"); }
KF_INLINE int atomic_add_device(int* p, int v) {
  return __hip_atomic_fetch_add(p, v, __ATOMIC_ACQ_REL, __HIP_MEMORY_SCOPE_AGENT);
}
KF_INLINE void atomic_store_device(int* p, int v) {
  __hip_atomic_store(p, v, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
}
// A load that sees other workgroups' writes after a device fence (bypasses the
// non-coherent per-CU vector cache).
KF_INLINE float load_coherent(const float* p) {
  return __hip_atomic_load(p, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
}
// Counters in shared memory (LDS): ordered among the workgroup only.
KF_INLINE int atomic_add_shared(int* p, int v) {
  return __hip_atomic_fetch_add(p, v, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_WORKGROUP);
}
// A flag between workgroups: the store publishes what this workgroup wrote before its
// last barrier; the load, once it sees the value, makes those writes visible.
KF_INLINE void store_release_device(int* p, int v) {
  __hip_atomic_store(p, v, __ATOMIC_RELEASE, __HIP_MEMORY_SCOPE_AGENT);
}
KF_INLINE int load_acquire_device(const int* p) {
  return __hip_atomic_load(p, __ATOMIC_ACQUIRE, __HIP_MEMORY_SCOPE_AGENT);
}
#else
KF_INLINE void barrier() { __syncthreads(); }
KF_INLINE void fence_device() { __threadfence(); }
KF_INLINE int atomic_add_device(int* p, int v) { return atomicAdd(p, v); }
KF_INLINE void atomic_store_device(int* p, int v) { atomicExch(p, v); }
KF_INLINE float load_coherent(const float* p) { return __ldcg(p); }
KF_INLINE int atomic_add_shared(int* p, int v) { return atomicAdd(p, v); }
KF_INLINE void store_release_device(int* p, int v) {
  asm volatile("st.release.gpu.global.b32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
KF_INLINE int load_acquire_device(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
#endif

// e^x at the hardware's approximate rate (activation epilogues; not for references).
#if KF_AMDGPU
KF_INLINE float fast_exp(float x) { return __builtin_expf(x); }
#else
KF_INLINE float fast_exp(float x) { return __expf(x); }
#endif

// 2^x and log2(x) at the hardware's approximate rate (softmax; not for references).
#if KF_AMDGPU
KF_INLINE float fast_exp2(float x) { return __builtin_amdgcn_exp2f(x); }
KF_INLINE float fast_log2(float x) { return __builtin_amdgcn_logf(x); }
#else
KF_INLINE float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
KF_INLINE float fast_log2(float x) { return __log2f(x); }
#endif
KF_INLINE float neg_inf() { return -__builtin_inff(); }

// ---- lanes of one wave -------------------------------------------------------------
// The value of lane (this lane ^ mask); every lane of the wave must take part.
#if KF_AMDGPU
KF_INLINE float shuffle_xor(float v, int mask) {
  const int lane = thread_id() % KF_WAVE;  // kforge launches 1-D blocks
  return __builtin_bit_cast(float, __builtin_amdgcn_ds_bpermute((lane ^ mask) << 2, __builtin_bit_cast(int, v)));
}
#else
KF_INLINE float shuffle_xor(float v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }
#endif

// ---- vector memory access ----------------------------------------------------------
struct alignas(16) u32x4 {
  uint32_t x, y, z, w;
};
struct alignas(8) u32x2 {
  uint32_t x, y;
};
KF_INLINE u32x4 load16(const void* p) { return *reinterpret_cast<const u32x4*>(p); }
KF_INLINE u32x2 load8(const void* p) { return *reinterpret_cast<const u32x2*>(p); }
KF_INLINE void store16(void* p, u32x4 v) { *reinterpret_cast<u32x4*>(p) = v; }
KF_INLINE void store8(void* p, u32x2 v) { *reinterpret_cast<u32x2*>(p) = v; }

// ---- asynchronous global -> shared copies -----------------------------------------
// cp_async16 copies 16 bytes (both addresses 16-byte aligned), or writes 16 zero bytes
// when !fill. On sm_90a the source is then not read at all (src-size 0), so it may lie
// past the end of an allocation: the dense wgmma kind's copies of rows past M rely on
// it, and kforge_check_linear runs every kernel with x flush against the end of its
// mapping, where such a read would fault. The AMD fallback below reads nothing either.
// cp_async_commit closes the group of copies issued since the last commit;
// cp_async_wait<P>() returns when at most P groups are still in flight (this thread's
// copies only: a barrier must follow before other threads read them).
// sm_90a: cp.async.cg (bypasses L1). AMDGPU has no such copy in the targets kforge
// builds for: the fallback loads through registers and stores to LDS at once, so every
// group is complete when issued.
#if KF_NVIDIA
KF_INLINE void cp_async16(void* smem, const void* gmem, bool fill) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(fill ? 16 : 0)
               : "memory");
}
KF_INLINE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int P>
KF_INLINE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(P) : "memory");
}
#else
KF_INLINE void cp_async16(void* smem, const void* gmem, bool fill) {
  store16(smem, fill ? load16(gmem) : u32x4{0, 0, 0, 0});
}
KF_INLINE void cp_async_commit() {}
template <int P>
KF_INLINE void cp_async_wait() {}
#endif

// Static shared memory (LDS) one block may allocate: sm_90a allows 48 KiB without the
// dynamic opt-in; the AMD targets 64 KiB per workgroup.
#if KF_NVIDIA
#define KF_MAX_STATIC_SHARED 49152
#else
#define KF_MAX_STATIC_SHARED 65536
#endif

// ---- 16-bit floats, kept as raw bits in memory and registers -----------------------
KF_INLINE float bits_as_float(uint32_t u) { return __builtin_bit_cast(float, u); }
KF_INLINE uint32_t float_as_bits(float f) { return __builtin_bit_cast(uint32_t, f); }

KF_INLINE float bf16_to_f32(uint32_t h) { return bits_as_float(h << 16); }
// Round to nearest even; NaN stays a (quiet) NaN instead of rounding into infinity.
KF_INLINE uint32_t f32_to_bf16(float f) {
  uint32_t u = float_as_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
#if KF_AMDGPU
KF_INLINE float f16_to_f32(uint32_t h) {
  return (float)__builtin_bit_cast(_Float16, (uint16_t)h);
}
KF_INLINE uint32_t f32_to_f16(float f) { return __builtin_bit_cast(uint16_t, (_Float16)f); }
#else
KF_INLINE float f16_to_f32(uint32_t h) { return __half2float(__ushort_as_half((unsigned short)h)); }
KF_INLINE uint32_t f32_to_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }
#endif

// Two floats to two packed 16-bit values (low half = a), round to nearest even: one
// conversion instruction on sm_90 for both types.
#if KF_NVIDIA
KF_INLINE uint32_t pack2_bf16(float a, float b) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&v);
}
KF_INLINE uint32_t pack2_f16(float a, float b) {
  const __half2 v = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&v);
}
#else
KF_INLINE uint32_t pack2_bf16(float a, float b) { return f32_to_bf16(a) | f32_to_bf16(b) << 16; }
KF_INLINE uint32_t pack2_f16(float a, float b) { return f32_to_f16(a) | f32_to_f16(b) << 16; }
#endif

// Activation type: BF16 picks bf16, otherwise fp16.
template <bool BF16>
struct Act16 {
  KF_INLINE static float to_f32(uint32_t h) { return BF16 ? bf16_to_f32(h) : f16_to_f32(h); }
  KF_INLINE static uint32_t from_f32(float f) { return BF16 ? f32_to_bf16(f) : f32_to_f16(f); }
  KF_INLINE static uint32_t pack2(float a, float b) { return BF16 ? pack2_bf16(a, b) : pack2_f16(a, b); }
};

// ---- the 16x16x16 matrix-multiply atom (fp16/bf16 in, fp32 accumulate) ------------
#if KF_MMA_WMMA16
using MmaLayout = layout::Wmma16Gfx11;
#elif KF_MMA_MFMA16
using MmaLayout = layout::Mfma16Gfx9;
#else
using MmaLayout = layout::Mma16Sm80;
#endif

struct FragA {
  uint32_t r[MmaLayout::kAPairs];
};
struct FragB {
  uint32_t r[MmaLayout::kBPairs];
};
struct FragC {
  float v[MmaLayout::kCElems];
};

// A tile: As[row * ld + k]; B tile: Ws[n * ld + k] (16-bit values, k contiguous).
#if KF_MMA_SM80
// ldmatrix.x4 loads four 8x8 matrices in one instruction; lane l supplies the address of
// one matrix row. Register j comes from matrix j with each lane holding (row lane/4,
// cols 2*(lane%4), +1), which is exactly the a_pair / b_pair order of Mma16Sm80 when the
// matrices are ordered as below (every row address 16-byte aligned: ld % 8 == 0).
KF_INLINE void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row_addr) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
KF_INLINE void load_frag_a(FragA& f, const uint16_t* tile, int ld, int lane) {
  ldmatrix_x4(f.r, tile + (lane % 16) * ld + (lane / 16) * 8);
}
// B (W[n][k]): matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
KF_INLINE void load_frag_b(FragB& f, const uint16_t* tile, int ld, int lane) {
  const int q = lane / 8;
  ldmatrix_x4(f.r, tile + ((q / 2) * 8 + lane % 8) * ld + (q % 2) * 8);
}
#else
KF_INLINE void load_frag_a(FragA& f, const uint16_t* tile, int ld, int lane) {
#pragma unroll
  for (int p = 0; p < MmaLayout::kAPairs; ++p) {
    const layout::RC rc = MmaLayout::a_pair(lane, p);
    f.r[p] = *reinterpret_cast<const uint32_t*>(tile + rc.row * ld + rc.col);
  }
}
KF_INLINE void load_frag_b(FragB& f, const uint16_t* tile, int ld, int lane) {
#pragma unroll
  for (int p = 0; p < MmaLayout::kBPairs; ++p) {
    const layout::RC rc = MmaLayout::b_pair(lane, p);
    f.r[p] = *reinterpret_cast<const uint32_t*>(tile + rc.row * ld + rc.col);
  }
}
#endif

// B from a tile stored the other way round, Bt[k * ld + n] (e.g. attention's V rows,
// one per k): same fragment as load_frag_b of the transposed tile.
#if KF_MMA_SM80
// ldmatrix.trans hands lane l the pair (rows 2*(l%4), +1; column l/4) of each 8x8
// matrix: matrix p covers k 8*(p%2).., n 8*(p/2).., the b_pair order.
KF_INLINE void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* row_addr) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
KF_INLINE void load_frag_b_kn(FragB& f, const uint16_t* tile, int ld, int lane) {
  const int q = lane / 8;
  ldmatrix_x4_trans(f.r, tile + ((q % 2) * 8 + lane % 8) * ld + (q / 2) * 8);
}
#else
KF_INLINE void load_frag_b_kn(FragB& f, const uint16_t* tile, int ld, int lane) {
#pragma unroll
  for (int p = 0; p < MmaLayout::kBPairs; ++p) {
    const layout::RC rc = MmaLayout::b_pair(lane, p);  // row = n, col = k
    f.r[p] = uint32_t(tile[rc.col * ld + rc.row]) | uint32_t(tile[(rc.col + 1) * ld + rc.row]) << 16;
  }
}
#endif

template <bool BF16>
KF_INLINE void mma16(FragC& c, const FragA& a, const FragB& b) {
#if KF_MMA_WMMA16
  typedef float float8 __attribute__((ext_vector_type(8)));
  float8 acc;
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = c.v[i];
  if constexpr (BF16) {
    typedef short short16 __attribute__((ext_vector_type(16)));
    acc = __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32(__builtin_bit_cast(short16, a.r),
                                                        __builtin_bit_cast(short16, b.r), acc);
  } else {
    typedef _Float16 half16 __attribute__((ext_vector_type(16)));
    acc = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(__builtin_bit_cast(half16, a.r),
                                                       __builtin_bit_cast(half16, b.r), acc);
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) c.v[i] = acc[i];
#elif KF_MMA_MFMA16
  typedef float float4_ __attribute__((ext_vector_type(4)));
  float4_ acc = {c.v[0], c.v[1], c.v[2], c.v[3]};
  if constexpr (BF16) {
    typedef short short4_ __attribute__((ext_vector_type(4)));
    acc = __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(__builtin_bit_cast(short4_, a.r),
                                                     __builtin_bit_cast(short4_, b.r), acc, 0, 0, 0);
  } else {
    typedef _Float16 half4_ __attribute__((ext_vector_type(4)));
    acc = __builtin_amdgcn_mfma_f32_16x16x16f16(__builtin_bit_cast(half4_, a.r),
                                                 __builtin_bit_cast(half4_, b.r), acc, 0, 0, 0);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) c.v[i] = acc[i];
#else
  // Two m16n8k16 products: columns 0-7 use B registers 0-1, columns 8-15 registers 2-3.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float* d = c.v + 4 * h;
    if constexpr (BF16) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
          "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[2 * h]),
            "r"(b.r[2 * h + 1]));
    } else {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
          "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[2 * h]),
            "r"(b.r[2 * h + 1]));
    }
  }
#endif
}

}  // namespace kf
