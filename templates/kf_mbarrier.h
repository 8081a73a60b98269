// Shared-memory barriers with phases (mbarrier, sm_90) for pipelines whose producers and
// consumers are different warps: a slot's "full" barrier completes when the copies into
// it have landed, its "empty" barrier when every consumer is done with it. A barrier of
// count c completes a phase after c arrivals and starts the next; waiters name the
// phase's parity (0, 1, 0, ...). NVIDIA-only, like kf_wgmma.h: the kinds that include it
// are sm_90a kinds.
#pragma once
#include <stdint.h>

#include "kf_portability.h"

namespace kf {
namespace mbar {

KF_INLINE uint32_t address(const uint64_t* bar) { return static_cast<uint32_t>(__cvta_generic_to_shared(bar)); }

// One thread initialises; a block barrier must follow before any other thread uses it.
KF_INLINE void init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(address(bar)), "r"(count) : "memory");
}

// One arrival (release: this thread's earlier shared-memory accesses are ordered before
// the phase completes).
KF_INLINE void arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(address(bar)) : "memory");
}

// One arrival, made when every cp.async this thread has issued so far has landed; the
// thread goes on at once. `noinc`: the barrier's count already includes this arrival.
KF_INLINE void arrive_when_copied(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(address(bar)) : "memory");
}

// The one arrival of a barrier of count 1 that also expects `bytes` of asynchronous
// stores (cluster::store_async) before its phase completes.
KF_INLINE void arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(address(bar)), "r"(bytes) : "memory");
}

// Returns once the phase of the given parity has completed, with what other blocks of the
// cluster stored into this block's shared memory under it visible (acquire, cluster scope).
KF_INLINE void wait_cluster(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "KF_MBAR_WAITC_%=:\n"
      "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra KF_MBAR_WAITC_%=;\n"
      "}\n" ::"r"(address(bar)),
      "r"(parity)
      : "memory");
}

// Returns once the phase of the given parity has completed (acquire).
KF_INLINE void wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "KF_MBAR_WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra KF_MBAR_WAIT_%=;\n"
      "}\n" ::"r"(address(bar)),
      "r"(parity)
      : "memory");
}

// A barrier that THREADS threads of the block meet at (named barrier ID, 1-15; 0 is
// __syncthreads'): the multiplying warps meeting without the producer warps that fill
// their ring.
template <int ID, int THREADS>
KF_INLINE void sync_threads() {
  static_assert(ID > 0 && ID < 16 && THREADS % 32 == 0, "a named barrier of whole warps");
  asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "n"(THREADS) : "memory");
}

}  // namespace mbar
}  // namespace kf
