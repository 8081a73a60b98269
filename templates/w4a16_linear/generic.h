// w4a16_linear generic kernel: one kernel per (arch, dtype, quantisation) that takes N,
// K and the group size at run time, so a runtime can serve a shape nobody tuned.
// It is the decode body with run-time dimensions: 128 columns and 4 rows of M per block,
// 128 threads, 32 k per thread step. Needs N % 8 == 0, K % 32 == 0, group % 32 == 0.
#pragma once
#include "w4a16_linear/decode.h"

namespace kf {

constexpr int kGenericThreads = 128;

template <bool BF16, bool ASYM>
KF_INLINE void w4a16_linear_generic(const kf_linear_args& args) {
  w4a16::decode_body<w4a16::RuntimeDims, w4a16::DenseRows, BF16, ASYM, /*BM=*/4, /*BN=*/128, /*BK=*/32,
                     kGenericThreads, /*SPLIT_K=*/1, /*STAGES=*/1>(w4a16::RuntimeDims{args.n, args.k, args.group},
                                                                     {args.m}, args);
}

}  // namespace kf
