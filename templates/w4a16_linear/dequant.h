// Unpacking GPTQ int4 weights: per-column scale and zero point for one group, and the
// eight 4-bit values of one int32 (k ascending from the low nibble). N is passed as a
// value: a compile-time constant in specialised kernels, folded by the compiler.
#pragma once
#include "kf_portability.h"

namespace kf {
namespace w4a16 {

// Scale and scaled zero of four consecutive columns n .. n+3 (n % 4 == 0) of group
// `grp`: w = q * scale - zs, with zs = z * scale folded once per group.
template <bool BF16, bool ASYM>
KF_INLINE void load_group_params(const uint16_t* scales, const uint32_t* qzeros, int N, int grp, int n,
                                 float (&scale)[4], float (&zs)[4]) {
  const u32x2 s = load8(scales + (size_t)grp * N + n);
  scale[0] = Act16<BF16>::to_f32(s.x & 0xffffu);
  scale[1] = Act16<BF16>::to_f32(s.x >> 16);
  scale[2] = Act16<BF16>::to_f32(s.y & 0xffffu);
  scale[3] = Act16<BF16>::to_f32(s.y >> 16);
  uint32_t zbits = 0x8888u;  // uint4b8: z = 8
  if constexpr (ASYM) zbits = qzeros[(size_t)grp * (N / 8) + n / 8] >> (4 * (n % 8));
#pragma unroll
  for (int c = 0; c < 4; ++c) zs[c] = (float)((zbits >> (4 * c)) & 0xfu) * scale[c];
}

KF_INLINE float nibble(uint32_t q, int j) { return (float)((q >> (4 * j)) & 0xfu); }

}  // namespace w4a16
}  // namespace kf
