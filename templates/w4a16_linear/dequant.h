// Unpacking GPTQ int4 weights: per-column scale and zero point for one group, and the
// eight 4-bit values of one int32 (k ascending from the low nibble). N is passed as a
// value: a compile-time constant in specialised kernels, folded by the compiler.
//
// Int-to-float conversion instructions run at a fraction of the FMA rate, so a nibble
// is turned into a float by placing it in the mantissa of 2^23 (0x4B000000 is 8388608.0f,
// whose last mantissa bit is worth 1) and subtracting 2^23 + z: one logic op and one add,
// and q - z comes out exact.
#pragma once
#include "kf_portability.h"

namespace kf {
namespace w4a16 {

constexpr uint32_t kMagicBits = 0x4B000000u;  // 8388608.0f = 2^23
constexpr float kMagic = 8388608.0f;

// Scale and 2^23 + zero point of four consecutive columns n .. n+3 (n % 4 == 0) of
// group `grp`.
template <bool BF16, bool ASYM>
KF_INLINE void load_group_params(const uint16_t* scales, const uint32_t* qzeros, int N, int grp, int n,
                                 float (&scale)[4], float (&base)[4]) {
  const u32x2 s = load8(scales + (size_t)grp * N + n);
  scale[0] = Act16<BF16>::to_f32(s.x & 0xffffu);
  scale[1] = Act16<BF16>::to_f32(s.x >> 16);
  scale[2] = Act16<BF16>::to_f32(s.y & 0xffffu);
  scale[3] = Act16<BF16>::to_f32(s.y >> 16);
  uint32_t zbits = 0x8888u;  // uint4b8: z = 8
  if constexpr (ASYM) zbits = qzeros[(size_t)grp * (N / 8) + n / 8] >> (4 * (n % 8));
#pragma unroll
  for (int c = 0; c < 4; ++c) base[c] = kMagic + (float)((zbits >> (4 * c)) & 0xfu);
}

// The eight weights (q_j - z) * scale of one int32 of one column, in fp32.
KF_INLINE void dequant8(uint32_t q, float scale, float base, float (&w)[8]) {
#pragma unroll
  for (int j = 0; j < 8; ++j) w[j] = (bits_as_float(((q >> (4 * j)) & 0xfu) | kMagicBits) - base) * scale;
}

}  // namespace w4a16
}  // namespace kf
