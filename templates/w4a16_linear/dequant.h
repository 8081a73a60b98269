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

// The raw group parameters of four consecutive columns n .. n+3 (n % 4 == 0) of group
// `grp`: their four 16-bit scales and, asymmetric, the word holding their zero points
// shifted to the low 16 bits. Loading them apart from their decoding lets a kernel put
// the loads in flight early (the decode kind's register ring).
struct GroupWords {
  u32x2 scales;
  uint32_t zeros;
};
template <bool ASYM>
KF_INLINE GroupWords load_group_words(const uint16_t* scales, const uint32_t* qzeros, int N, int grp, int n) {
  GroupWords w{load8(scales + (size_t)grp * N + n), 0x8888u};  // uint4b8: z = 8
  if constexpr (ASYM) w.zeros = qzeros[(size_t)grp * (N / 8) + n / 8] >> (4 * (n % 8));
  return w;
}

// Scale and 2^23 + zero point of the four columns of `w`.
template <bool BF16>
KF_INLINE void group_params(const GroupWords& w, float (&scale)[4], float (&base)[4]) {
  scale[0] = Act16<BF16>::to_f32(w.scales.x & 0xffffu);
  scale[1] = Act16<BF16>::to_f32(w.scales.x >> 16);
  scale[2] = Act16<BF16>::to_f32(w.scales.y & 0xffffu);
  scale[3] = Act16<BF16>::to_f32(w.scales.y >> 16);
#pragma unroll
  for (int c = 0; c < 4; ++c) base[c] = kMagic + (float)((w.zeros >> (4 * c)) & 0xfu);
}

template <bool BF16, bool ASYM>
KF_INLINE void load_group_params(const uint16_t* scales, const uint32_t* qzeros, int N, int grp, int n,
                                 float (&scale)[4], float (&base)[4]) {
  group_params<BF16>(load_group_words<ASYM>(scales, qzeros, N, grp, n), scale, base);
}

// The eight weights (q_j - z) * scale of one int32 of one column, in fp32.
KF_INLINE void dequant8(uint32_t q, float scale, float base, float (&w)[8]) {
#pragma unroll
  for (int j = 0; j < 8; ++j) w[j] = (bits_as_float(((q >> (4 * j)) & 0xfu) | kMagicBits) - base) * scale;
}

}  // namespace w4a16
}  // namespace kf
