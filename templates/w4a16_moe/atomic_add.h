// Packed 16-bit atomic adds for the MoE gemm2 epilogue that reduces over top_k (config
// suffix _red, gemm.h): every routed slot adds its routing-weight-scaled row into its
// token's row of y, so two adjacent outputs go in one 32-bit atomic (bf16x2 / half2).
// Kept apart from kf_portability.h so the other families' kernels do not depend on it.
//   sm_90a  atomicAdd on __nv_bfloat162 / __half2 (native red.global.add.*x2)
//   gfx942  global_atomic_pk_add_bf16 / _f16 (the packed float atomics of gfx940+)
//   gfx11   a compare-and-swap loop on the 32-bit word, the pair added in fp32
// Every add rounds the running sum to the 16-bit type, and the order in which a token's
// slots arrive is not fixed: the result is not bit-reproducible (moe_sum's is).
#pragma once
#include "kf_portability.h"

namespace kf {
namespace moe {

// (lo, hi) of a packed word, plus (a, b), rounded back to the type (a CAS fallback's step).
template <bool BF16>
KF_INLINE uint32_t add_packed(uint32_t word, uint32_t v) {
  using T = Act16<BF16>;
  return T::pack2(T::to_f32(word & 0xffffu) + T::to_f32(v & 0xffffu), T::to_f32(word >> 16) + T::to_f32(v >> 16));
}

// *p += v, two 16-bit values of the activation type packed as (lo, hi); p 4-byte aligned,
// in global memory. No value returned: the adds of other blocks may land in any order.
template <bool BF16>
KF_INLINE void atomic_add_packed(uint32_t* p, uint32_t v) {
#if KF_NVIDIA
  if constexpr (BF16)
    atomicAdd(reinterpret_cast<__nv_bfloat162*>(p), *reinterpret_cast<const __nv_bfloat162*>(&v));
  else
    atomicAdd(reinterpret_cast<__half2*>(p), *reinterpret_cast<const __half2*>(&v));
#elif defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__)
  typedef __attribute__((address_space(1))) uint32_t global_u32;
  global_u32* g = (global_u32*)p;
  if constexpr (BF16) {
    typedef short short2_ __attribute__((ext_vector_type(2)));
    typedef __attribute__((address_space(1))) short2_ global_short2;
    __builtin_amdgcn_global_atomic_fadd_v2bf16((global_short2*)g, __builtin_bit_cast(short2_, v));
  } else {
    typedef _Float16 half2_ __attribute__((ext_vector_type(2)));
    typedef __attribute__((address_space(1))) half2_ global_half2;
    __builtin_amdgcn_global_atomic_fadd_v2f16((global_half2*)g, __builtin_bit_cast(half2_, v));
  }
#else
  uint32_t old = __hip_atomic_load(p, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
  while (!__hip_atomic_compare_exchange_weak(p, &old, add_packed<BF16>(old, v), __ATOMIC_RELAXED, __ATOMIC_RELAXED,
                                             __HIP_MEMORY_SCOPE_AGENT)) {
  }
#endif
}

}  // namespace moe
}  // namespace kf
