// The fused SiLU-and-mul epilogue of a gate_up projection (SILU = true in the decode and
// prefill bodies; the MoE family's gemm1 config suffix _silu). The weight's N columns
// are gate [0, N/2) and up [N/2, N); instead of the N products the kernel writes
//   h[m, i] = silu(gate[m, i]) * up[m, i],  i < N/2  (y has N/2 columns),
// so the elementwise pass that would read them back (w4a16_moe/elementwise.h) and the
// round trip of the products through memory go away.
//
// Column block b still covers BN columns of the product: the BN/2 gate columns
// [b BN/2, (b + 1) BN/2) and the BN/2 up columns they pair with. Its local columns are
// runs of CHUNK gate columns and CHUNK up columns in turn (silu_weight_col, tiling.h),
// so a weight load still reads contiguous columns (runs of at least 16 columns, 64
// bytes of qweight) and both sums of a pair end in the same block:
//   decode   CHUNK = BN / 2: the up half goes through shared memory to the threads that
//            hold the gate half (a few KB at most: BM <= 8 rows);
//   prefill  CHUNK = BN / WN / 2: a warp's atoms j < TN/2 hold gate columns and atom
//            j + TN/2 their up partners at the same fragment position, so one thread
//            holds both sums (TN even: prefill_warps_m with silu).
// With split-K the partials are reduced first, as without SiLU: only the last block of
// a tile applies it.
#pragma once
#include "kf_portability.h"

namespace kf {
namespace w4a16 {

// silu(g) * u = g / (1 + e^-g) * u, in fp32 (the elementwise moe_silu_mul computes the
// same expression).
KF_INLINE float silu_mul(float g, float u) { return g / (1.f + fast_exp(-g)) * u; }

}  // namespace w4a16
}  // namespace kf
