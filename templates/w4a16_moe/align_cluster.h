// moe_align as one thread-block cluster (NVIDIA sm_90): the same sorted slot list as
// align.h's single workgroup, for large T. One workgroup walks every slot twice (count,
// then scatter) and its scattered stores all leave one SM: 36-44 us per sort at
// T = 4096, top_k = 8 on an H200 (bench/NOTES.md MoE v10, v14). Here kAlignCluster
// workgroups each take every kAlignCluster-th stride of THREADS slots:
//   1. each counts its own slots per expert in its shared memory;
//   2. after a cluster barrier, the thread of expert e reads e's count from every
//      workgroup of the cluster (distributed shared memory): the total, and the part of
//      the workgroups ranked before this one;
//   3. every workgroup pads and scans the totals itself (the same result everywhere),
//      the owner of expert e (rank e % kAlignCluster) writes e's expert_ids and the
//      padding ids after e's slots;
//   4. each scatters its own slots from the cursor start(e) + its rank's offset, so the
//      workgroups write disjoint places and no order between them is needed.
// A final cluster barrier keeps every workgroup's counts readable until all have read
// them. Blocks after the first cluster zero the optional buffer, as in align.h.
#pragma once
#include "kf_cluster.h"
#include "kf_portability.h"
#include "w4a16_moe/align.h"
#include "w4a16_moe/align_cluster_tiling.h"
#include "w4a16_moe/args.h"

namespace kf {

template <int THREADS>
KF_INLINE void moe_align_cluster(const kf_moe_align_args& a) {
  constexpr int C = moe::kAlignCluster;
  static_assert(kAlignWaves<THREADS> <= KF_WAVE, "one wave scans the waves' totals");
  static_assert(THREADS % KF_WAVE == 0, "whole waves");
  static_assert(THREADS >= moe::kMaxExperts, "one thread per expert in the scan");
  if (block_x() >= C) {  // whole clusters, uniform per cluster: none of them sorts
    if (a.zero) moe_align_zero<THREADS>(a, block_x() - C);
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  KF_SHARED int count[moe::kMaxExperts];   // this workgroup's slots per expert
  KF_SHARED int cursor[moe::kMaxExperts];  // where its next slot of each expert goes
  KF_SHARED int scan[moe::kMaxExperts];
  KF_SHARED int wave_sum[kAlignWaves<THREADS>];
  const int tid = thread_id(), rank = static_cast<int>(cluster::rank());
  const int E = a.experts, slots = a.t * a.top_k, bm = a.block_m;
  const int first = rank * THREADS + tid;  // this thread's slots: first, first + C THREADS, ...

  if (tid < E) count[tid] = 0;
  barrier();
  for (int s = first; s < slots; s += C * THREADS) {
    const int e = a.topk_ids[s];
    if (e >= 0 && e < E) atomic_add_shared(&count[e], 1);
  }
  cluster::sync();

  // Expert tid's slots in all workgroups, and in those ranked before this one. The
  // counts travel as float bits (cluster::load moves 32 bits unchanged).
  int total_e = 0, before_e = 0;
  if (tid < E) {
    const uint32_t addr = cluster::shared_address(&count[tid]);
    int part[C];
#pragma unroll
    for (int r = 0; r < C; ++r) part[r] = static_cast<int>(float_as_bits(cluster::load(addr, r)));
#pragma unroll
    for (int r = 0; r < C; ++r) {
      total_e += part[r];
      before_e += r < rank ? part[r] : 0;
    }
  }

  const int padded = tid < E ? (total_e + bm - 1) / bm * bm : 0;
  scan_padded_runs<THREADS>(tid, padded, scan, wave_sum);
  const int total = scan[E - 1];
  const int start = tid < E ? scan[tid] - padded : 0;

  if (tid < E) {
    if (tid % C == rank) {  // expert tid's blocks and the padding after its slots
      for (int b = start / bm; b < (start + padded) / bm; ++b) a.expert_ids[b] = tid;
      for (int i = start + total_e; i < start + padded; ++i) a.sorted_ids[i] = slots;
    }
    cursor[tid] = start + before_e;
  }
  barrier();
  for (int s = first; s < slots; s += C * THREADS) {
    const int e = a.topk_ids[s];
    if (e >= 0 && e < E) a.sorted_ids[atomic_add_shared(&cursor[e], 1)] = s;
  }
  if (rank == 0 && tid == 0) a.num_padded[0] = total;
  cluster::sync_after_reads();  // no workgroup leaves while another may still read its counts
#endif
}

}  // namespace kf
