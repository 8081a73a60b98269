// Thread-block clusters (NVIDIA sm_90): the few operations the split-K reductions use
// (w4a16_linear/wgmma.h), as inline PTX: cooperative_groups' cluster calls made ptxas
// spill around them (bench/NOTES.md linear v20).
#pragma once
#include <stdint.h>

#include "kf_portability.h"

namespace kf {
namespace cluster {

// Every thread of every block of the cluster arrives and waits; orders shared memory
// (release before, acquire after).
KF_INLINE void sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// Every thread of every block of the cluster arrives and waits, without ordering memory:
// the end of a reduction whose remote shared-memory reads have all returned (each value
// is used before the arrive), so that no block's shared memory goes before the others'
// reads of it. The release form also waits for the thread's global stores to complete
// (a MEMBAR.GPU in the SASS), which after an epilogue's stores is a memory round trip;
// it is not a block barrier for this block's own shared memory.
KF_INLINE void sync_after_reads() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
}

// The two halves of a cluster barrier, apart: every thread arrives once early (relaxed:
// nothing to order yet) and waits only where it needs the other blocks to have started,
// by which time the wait is long satisfied. The relaxed arrive emits no memory barrier.
KF_INLINE void arrive_relaxed() { asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory"); }
KF_INLINE void wait() { asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); }

// After a thread's mbarrier.init, before its arrive_relaxed: the other blocks may use the
// barrier once their wait returns.
KF_INLINE void fence_barrier_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }

// This block's rank in its cluster (x fastest).
KF_INLINE uint32_t rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}

KF_INLINE uint32_t shared_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// The address in block `rank`'s shared memory of this block's shared address `addr`.
KF_INLINE uint32_t map(uint32_t addr, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(addr), "r"(rank));
  return remote;
}

// The float at this block's shared address `addr`, in the shared memory of block `rank`
// of the cluster.
KF_INLINE float load(uint32_t addr, uint32_t rank) {
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(map(addr, rank)) : "memory");
  return v;
}

// Stores v (16 bytes, `remote` 16-byte aligned: a mapped address) and completes its 16
// bytes on the mbarrier at `remote_bar` in the same block: fire and forget, no fence, no
// round trip; the receiver learns of it from its barrier's transaction count. Each store
// is one update of that count, so fewer, wider ones.
KF_INLINE void store_async(uint32_t remote, float4 v, uint32_t remote_bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];" ::"r"(
                   remote),
               "r"(__float_as_uint(v.x)), "r"(__float_as_uint(v.y)), "r"(__float_as_uint(v.z)),
               "r"(__float_as_uint(v.w)), "r"(remote_bar)
               : "memory");
}

}  // namespace cluster
}  // namespace kf
