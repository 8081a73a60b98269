// What both sparse_mla decode kinds (decode.h, decode_wgmma.h) share: the slot positions
// a block covers and the log-sum-exp a row ends with.
#pragma once
#include "kf_portability.h"
#include "sparse_mla/args.h"
#include "sparse_mla/launch.h"

namespace kf {
namespace mla {

// Query qi's slots are its TOPK index slots, then its extra rows estart, estart + 1, ...
// (a count <= 0 is none); KV split `split` of SPLITS covers slot positions [lo, hi).
struct BlockSlots {
  int estart, lo, hi;
};
template <int TOPK, int SPLITS>
KF_INLINE BlockSlots block_slots(const kf_mla_decode_args& a, int qi, int split) {
  const int ecount = a.extra_count ? (a.extra_count[qi] > 0 ? a.extra_count[qi] : 0) : 0;
  const int slots = TOPK + ecount;
  return {a.extra_start ? a.extra_start[qi] : 0, static_cast<int>(split_begin(slots, split, SPLITS)),
          static_cast<int>(split_begin(slots, split + 1, SPLITS))};
}

// Row qh = q * H + head of an H-head kernel: lse = ln(sum exp(logit)) = (m + log2 l) ln 2 from the base-2
// running max m and sum l (-inf for a row with no key), stored in a.lse (unsplit, when
// given) or in part `split`'s plane of a.part_lse.
template <int H, int SPLITS>
KF_INLINE void store_lse(const kf_mla_decode_args& a, int split, size_t qh, float m, float l) {
  const float lse = l > 0.f ? (m + fast_log2(l)) * 0.6931471805599453f : neg_inf();
  if (SPLITS == 1) {
    if (a.lse) a.lse[qh] = lse;
  } else {
    a.part_lse[(size_t)split * a.queries * H + qh] = lse;
  }
}

}  // namespace mla
}  // namespace kf
