// moe_align: routing (topk_ids) -> the sorted slot list the MoE GEMMs walk (args.h).
// One workgroup of THREADS (>= E) threads, everything in shared memory:
//   1. count each expert's slots (ids outside [0, E) are dropped);
//   2. pad each count up to a multiple of block_m and scan: start of each expert's run
//      (within waves by shuffles, then across them);
//   3. write expert_ids per block and fill the runs with the padding id T * top_k;
//   4. scatter every slot to its expert's run (order within a run is arbitrary: rows are
//      independent, so the GEMM results do not depend on it).
// Nothing comes back to the host: num_padded stays on the device for the GEMMs.
// Blocks past the first only zero the optional buffer (a reducing gemm2's y, args.h),
// kAlignZeroElems values each, so the layer needs no launch for it.
#pragma once
#include "kf_portability.h"
#include "w4a16_moe/args.h"
#include "w4a16_moe/launch.h"

namespace kf {

template <int THREADS>
KF_INLINE void moe_align_zero(const kf_moe_align_args& a, int64_t block) {
  constexpr int kSteps = (int)(moe::kAlignZeroElems / (THREADS * 8));
  static_assert(kSteps * THREADS * 8 == moe::kAlignZeroElems, "a zeroing block: whole 16-byte steps");
  uint16_t* z = static_cast<uint16_t*>(a.zero);
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
    const int64_t i = block * moe::kAlignZeroElems + ((int64_t)s * THREADS + thread_id()) * 8;
    if (i < a.zero_count) store16(z + i, u32x4{0, 0, 0, 0});
  }
}

template <int THREADS>
constexpr int kAlignWaves = THREADS / KF_WAVE;

// Inclusive prefix sum of `incl` over the lanes of the wave, by exchanges with the lanes
// 1, 2, 4, ... apart: after the step with mask m, `total` is the sum over the aligned run
// of 2m lanes holding this one and `incl` the part of it up to this lane. Ints travel as
// float bits (shuffle_xor moves bits unchanged).
KF_INLINE void wave_scan(int lane, int& incl, int& total) {
#pragma unroll
  for (int m = 1; m < KF_WAVE; m *= 2) {
    const int other = static_cast<int>(float_as_bits(shuffle_xor(bits_as_float(static_cast<uint32_t>(total)), m)));
    if (lane & m) incl += other;
    total += other;
  }
}

// The inclusive scan of the padded run lengths, one expert per thread (`padded`, 0 past
// the experts), into scan[] (moe::kMaxExperts entries): within each wave by shuffles, then
// across the waves' totals (wave_sum, kAlignWaves<THREADS> entries), three barriers in
// all. A block-wide Hillis-Steele scan takes two per step (16 for 256 experts); this
// saves ~0.6 us of a small T's ~5 us launch on an H200 (bench/NOTES.md MoE v15).
template <int THREADS>
KF_INLINE void scan_padded_runs(int tid, int padded, int* scan, int* wave_sum) {
  const int lane = tid % KF_WAVE, wave = tid / KF_WAVE;
  int incl = padded, wave_total = padded;
  wave_scan(lane, incl, wave_total);
  if (lane == 0) wave_sum[wave] = wave_total;
  barrier();
  if (wave == 0) {  // the waves' exclusive offsets, in place
    const int mine = lane < kAlignWaves<THREADS> ? wave_sum[lane] : 0;
    int before = mine, all = mine;
    wave_scan(lane, before, all);
    if (lane < kAlignWaves<THREADS>) wave_sum[lane] = before - mine;
  }
  barrier();
  if (tid < moe::kMaxExperts) scan[tid] = wave_sum[wave] + incl;
  barrier();
}

template <int THREADS>
KF_INLINE void moe_align(const kf_moe_align_args& a) {
  static_assert(kAlignWaves<THREADS> <= KF_WAVE, "one wave scans the waves' totals");
  static_assert(THREADS % KF_WAVE == 0, "whole waves");
  static_assert(THREADS >= moe::kMaxExperts, "one thread per expert in the scan");
  if (block_x() > 0) {  // uniform per block, before any barrier
    if (a.zero) moe_align_zero<THREADS>(a, block_x() - 1);
    return;
  }
  KF_SHARED int count[moe::kMaxExperts];
  KF_SHARED int scan[moe::kMaxExperts];
  const int tid = thread_id();
  const int E = a.experts, slots = a.t * a.top_k, bm = a.block_m;

  if (tid < E) count[tid] = 0;
  barrier();
  for (int s = tid; s < slots; s += THREADS) {
    const int e = a.topk_ids[s];
    if (e >= 0 && e < E) atomic_add_shared(&count[e], 1);
  }
  barrier();

  const int padded = tid < E ? (count[tid] + bm - 1) / bm * bm : 0;
  KF_SHARED int wave_sum[kAlignWaves<THREADS>];
  scan_padded_runs<THREADS>(tid, padded, scan, wave_sum);
  const int total = scan[E - 1];
  const int start = tid < E ? scan[tid] - padded : 0;

  if (tid < E)
    for (int b = start / bm; b < (start + padded) / bm; ++b) a.expert_ids[b] = tid;
  for (int i = tid; i < total; i += THREADS) a.sorted_ids[i] = slots;
  // The padding fill must land before the scatter overwrites it; count[] becomes each
  // run's cursor.
  if (tid < E) count[tid] = start;
  barrier();
  for (int s = tid; s < slots; s += THREADS) {
    const int e = a.topk_ids[s];
    if (e >= 0 && e < E) a.sorted_ids[atomic_add_shared(&count[e], 1)] = s;
  }
  if (tid == 0) a.num_padded[0] = total;
}

}  // namespace kf
