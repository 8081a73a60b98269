// Static pruning: each reason a compiled candidate is dropped, in the format the pack
// stores after "pruned:", and the order in which they are checked.
#include <doctest/doctest.h>

#include <string>

#include "arch.h"
#include "linear_family.h"
#include "prune.h"

namespace {

kf::Candidate candidate(kf::LinearKind kind, const char* arch = "gfx1151") {
  const kf::LinearShape s{2048, 512, 128, true, false};
  const kf::LinearConfig c = kind == kf::LinearKind::decode
                                 ? kf::LinearConfig{kind, 1, 64, 32, 4, 1, 1}
                                 : kf::LinearConfig{kind, 64, 64, 64, 4, 1, 1};
  return kf::make_linear_candidate(s, c, kf::arch_info(arch));
}

kf::KernelResources clean() {
  kf::KernelResources r;
  r.vgprs_or_regs = 64;
  r.sgprs = 30;
  r.lds_bytes = 16384;
  return r;
}

}  // namespace

TEST_SUITE("prune") {

TEST_CASE("keep: nothing wrong gives an empty reason") {
  const kf::ArchInfo& a = kf::arch_info("gfx1151");
  CHECK(kf::prune_reason(candidate(kf::LinearKind::decode), a, clean(), 2, -1) == "");
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill), a, clean(), 1, 16) == "");
  // Exactly at the limits is still fine.
  kf::KernelResources r = clean();
  r.lds_bytes = a.max_lds_per_block;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill), a, r, 1, 1) == "");
  // Decode kernels need no matrix instructions.
  CHECK(kf::prune_reason(candidate(kf::LinearKind::decode), a, clean(), 4, 0) == "");
}

TEST_CASE("spills") {
  kf::KernelResources r = clean();
  r.spills = 12;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::decode), kf::arch_info("gfx1151"), r, 8, -1) ==
        "spills(12)");
  r.spills = 1;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "sm_90a"), kf::arch_info("sm_90a"), r, 8, -1) ==
        "spills(1)");
}

TEST_CASE("scratch without spills") {
  kf::KernelResources r = clean();
  r.scratch_bytes = 64;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::decode), kf::arch_info("gfx1151"), r, 8, -1) ==
        "scratch(64)");
}

TEST_CASE("warpgroup MMAs serialized by ptxas") {
  kf::KernelResources r = clean();
  r.mma_serialized = true;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "sm_90a"), kf::arch_info("sm_90a"), r, 1, 16) ==
        "mma_serialized");
  r.spills = 4;  // spills are named first
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "sm_90a"), kf::arch_info("sm_90a"), r, 1, 16) ==
        "spills(4)");
}

TEST_CASE("warpgroup MMA accumulators fenced by ptxas") {
  kf::KernelResources r = clean();
  r.mma_fenced = true;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "sm_90a"), kf::arch_info("sm_90a"), r, 1, 16) ==
        "mma_fenced");
}

TEST_CASE("LDS over the per-block limit") {
  kf::KernelResources r = clean();
  r.lds_bytes = 70000;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill), kf::arch_info("gfx1151"), r, 1, 16) ==
        "lds(70000>65536)");
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "gfx942"), kf::arch_info("gfx942"), r, 1, 16) ==
        "lds(70000>65536)");
  // Hopper: the templates allocate shared memory statically, 48 KiB at most.
  r.lds_bytes = 49152;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "sm_90a"), kf::arch_info("sm_90a"), r, 1, -1) ==
        "");
  r.lds_bytes = 55296;
  CHECK(kf::prune_reason(candidate(kf::LinearKind::prefill, "sm_90a"), kf::arch_info("sm_90a"), r, 1, -1) ==
        "lds(55296>49152)");
}

TEST_CASE("occupancy below the candidate's minimum") {
  const kf::ArchInfo& a = kf::arch_info("gfx1151");
  const kf::Candidate dec = candidate(kf::LinearKind::decode);
  REQUIRE(dec.min_occupancy == 2);
  CHECK(kf::prune_reason(dec, a, clean(), 1, -1) == "occupancy(1<2)");
  CHECK(kf::prune_reason(dec, a, clean(), 2, -1) == "");
  const kf::Candidate pre = candidate(kf::LinearKind::prefill);
  CHECK(kf::prune_reason(pre, a, clean(), 0, 16) == "occupancy(0<1)");
}

TEST_CASE("a matrix kind without matrix instructions") {
  const kf::Candidate pre = candidate(kf::LinearKind::prefill);
  REQUIRE(pre.needs_mma);
  CHECK(kf::prune_reason(pre, kf::arch_info("gfx1151"), clean(), 4, 0) == "no_mma");
  // -1 = could not count (no disassembler): not held against the kernel.
  CHECK(kf::prune_reason(pre, kf::arch_info("gfx1151"), clean(), 4, -1) == "");
}

TEST_CASE("the first failing check gives the reason") {
  kf::KernelResources r = clean();
  r.spills = 3;
  r.scratch_bytes = 128;
  r.lds_bytes = 70000;
  const kf::Candidate pre = candidate(kf::LinearKind::prefill);
  const kf::ArchInfo& a = kf::arch_info("gfx1151");
  CHECK(kf::prune_reason(pre, a, r, 0, 0) == "spills(3)");
  r.spills = 0;
  CHECK(kf::prune_reason(pre, a, r, 0, 0) == "scratch(128)");
  r.scratch_bytes = 0;
  CHECK(kf::prune_reason(pre, a, r, 0, 0) == "lds(70000>65536)");
  r.lds_bytes = 100;
  CHECK(kf::prune_reason(pre, a, r, 0, 0) == "occupancy(0<1)");
  CHECK(kf::prune_reason(pre, a, r, 1, 0) == "no_mma");
}

}  // TEST_SUITE
