// The w4a16_linear family's naming and enumeration (shape and config keys, kernel names,
// the config space per arch) and the arch table with its occupancy model. Occupancy
// expectations are worked out by hand from the vendors' numbers quoted in each case, not
// from the implementation.
#include <doctest/doctest.h>

#include "test_util.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "arch.h"
#include "error.h"
#include "genkernels.h"
#include "linear_family.h"
#include "model.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/tiling.h"
#include "w4a16_linear/wgmma_tiling.h"

namespace {

using namespace kf_test;

// The cluster dims a linear candidate is compiled with.
std::string cand_cluster(const kf::LinearShape& s, const kf::LinearConfig& c, const kf::ArchInfo& arch) {
  return kf::make_linear_candidate(s, c, arch).params.at("cluster");
}

kf::KernelResources res(int vgprs, int lds = 0) {
  kf::KernelResources r;
  r.vgprs_or_regs = vgprs;
  r.lds_bytes = lds;
  return r;
}

// Every shape genkernels derives from the built-in model, in every group size, dtype and
// quantisation the CLI offers.
std::vector<kf::LinearShape> qwen_shapes() {
  std::vector<kf::LinearShape> out;
  for (const auto& l : kf::builtin_model("qwen3-35b").linears)
    for (int g : {32, 64, 128, 0})
      for (bool bf16 : {true, false})
        for (bool asym : {false, true}) out.push_back({l.n, l.k, g, bf16, asym});
  return out;
}

bool same_fields(const kf::LinearConfig& a, const kf::LinearConfig& b) {
  return a.kind == b.kind && a.block_m == b.block_m && a.block_n == b.block_n &&
         a.block_k == b.block_k && a.warps == b.warps && a.split_k == b.split_k &&
         a.stages == b.stages && a.swapped == b.swapped && a.stream_blocks == b.stream_blocks;
}

// The wgmma configs of `warps` warps the generator emits for a shape on sm_90a, each
// checked to be 64 weight rows per warpgroup and at most 128 rows of x (256 rows'
// accumulators spill at 384 or more threads).
int wide_wgmma_configs(const kf::LinearShape& s, int warps) {
  int count = 0;
  for (const auto& c : kf::enumerate_linear_configs(s, kf::arch_info("sm_90a"))) {
    if (c.kind != kf::LinearKind::wgmma || c.warps != warps || c.stream_blocks > 0) continue;  // one block per tile
    ++count;
    CHECK(c.block_n == 16 * warps);
    CHECK(c.block_m <= 128);
  }
  return count;
}

}  // namespace

TEST_SUITE("config") {

// The wgmma kind's register split (w4a16_linear/wgmma_tiling.h): a block's multiplying
// warpgroups raise their budget (setmaxnreg.inc) only from what its producer warpgroup
// gave back (setmaxnreg.dec), a pool per block; asking for more hung every block that
// launched at its full share (bench/NOTES.md linear v48).
TEST_CASE("wgmma register split: the warpgroups take no more than the producer gives back") {
  namespace wg = kf::w4a16::wgmma;
  CHECK(wg::block_threads(4) == 256);
  CHECK(wg::consumer_regs(4) == 0);  // one multiplying warpgroup: 255 registers at launch already
  for (int warps : {8, 12, 16}) {
    CAPTURE(warps);
    const int threads = wg::block_threads(warps), launch = wg::launch_regs(warps);
    const int producer = wg::producer_regs(warps), consumer = wg::consumer_regs(warps);
    CHECK(threads == (warps + 4) * 32);
    CHECK(launch * threads <= 65536);  // the block launches
    CHECK(launch % 8 == 0);
    for (int r : {producer, consumer}) {  // setmaxnreg's range
      CHECK(r % 8 == 0);
      CHECK(r >= 24);
      CHECK(r <= 256);
    }
    CHECK(producer < launch);
    CHECK(consumer > launch);
    CHECK((consumer - launch) * warps * 32 <= (launch - producer) * 128);  // taken <= given back
  }
}

TEST_CASE("LinearShape key: canonical spelling of every field") {
  CHECK(kf::LinearShape{12288, 2048, 128, true, false}.key() == "n12288_k2048_g128_bf16_sym");
  CHECK(kf::LinearShape{2048, 4096, 0, true, false}.key() == "n2048_k4096_gch_bf16_sym");
  CHECK(kf::LinearShape{1024, 2048, 32, false, true}.key() == "n1024_k2048_g32_fp16_asym");
  CHECK(kf::LinearShape{64, 512, 64, false, false}.key() == "n64_k512_g64_fp16_sym");
}

TEST_CASE("LinearShape key <-> parse_linear_shape round trip") {
  for (const auto& s : qwen_shapes()) {
    const std::string key = s.key();
    INFO("key " << key);
    const kf::LinearShape p = kf::parse_linear_shape(key);
    CHECK(p.n == s.n);
    CHECK(p.k == s.k);
    CHECK(p.group == s.group);
    CHECK(p.bf16 == s.bf16);
    CHECK(p.asym == s.asym);
    CHECK(p.key() == key);
  }
  const kf::LinearShape ch = kf::parse_linear_shape("n2048_k4096_gch_fp16_asym");
  CHECK(ch.group == 0);
  CHECK(ch.effective_group() == 4096);
  CHECK_FALSE(ch.bf16);
  CHECK(ch.asym);
  const kf::LinearShape big = kf::parse_linear_shape("n151936_k8192_g64_bf16_sym");
  CHECK(big.n == 151936);
  CHECK(big.k == 8192);
  CHECK(big.group == 64);
}

TEST_CASE("parse_linear_shape rejects bad keys, naming them") {
  const std::vector<std::string> bad = {
      "",
      "n12288_k2048_g128_bf16",            // no quantisation
      "n12288_k2048_g128_f32_sym",         // unknown dtype
      "n12288_k2048_g128_bf16_asymm",      // unknown quantisation
      "n12288_k2048_gpc_bf16_sym",         // group neither number nor ch
      "k2048_n12288_g128_bf16_sym",        // fields out of order
      "n-64_k2048_g128_bf16_sym",          // negative
      "n12288_k2048_g128_bf16_sym_extra",  // trailing junk
      " n12288_k2048_g128_bf16_sym",       // leading space
      "N12288_K2048_G128_BF16_SYM",        // case matters
  };
  for (const auto& key : bad) {
    INFO("key '" << key << "'");
    const std::string msg = error_of([&] { kf::parse_linear_shape(key); });
    CHECK(contains(msg, "'" + key + "'"));
  }
}

TEST_CASE("LinearConfig key: fixed order, every knob") {
  kf::LinearConfig c;
  c.kind = kf::LinearKind::prefill;
  c.block_m = 64;
  c.block_n = 128;
  c.block_k = 64;
  c.warps = 4;
  c.split_k = 1;
  c.stages = 2;
  CHECK(c.key() == "bm64_bn128_bk64_w4_sk1_s2");
  const kf::LinearConfig d{kf::LinearKind::decode, 8, 256, 32, 8, 4, 1};
  CHECK(d.key() == "bm8_bn256_bk32_w8_sk4_s1");
  // Defaults are part of the canonical form too.
  CHECK(kf::LinearConfig{}.key() == "bm1_bn64_bk32_w4_sk1_s1");
}

TEST_CASE("LinearConfig: changing any one knob changes the key and breaks equality") {
  const kf::LinearConfig base{kf::LinearKind::prefill, 64, 128, 64, 4, 1, 2};
  std::vector<kf::LinearConfig> variants;
  for (int i = 0; i < 6; ++i) {
    kf::LinearConfig v = base;
    switch (i) {
      case 0: v.block_m = 32; break;
      case 1: v.block_n = 64; break;
      case 2: v.block_k = 32; break;
      case 3: v.warps = 8; break;
      case 4: v.split_k = 2; break;
      case 5: v.stages = 1; break;
    }
    variants.push_back(v);
  }
  for (const auto& v : variants) {
    INFO("variant " << v.key());
    CHECK(v.key() != base.key());
    CHECK_FALSE(v == base);
  }
  kf::LinearConfig copy = base;
  CHECK(copy == base);
  CHECK(copy.key() == base.key());
  // Keys that could collide if fields were run together: bm1 bn28 vs bm12 bn8.
  const kf::LinearConfig a{kf::LinearKind::decode, 1, 28, 32, 4, 1, 1};
  const kf::LinearConfig b{kf::LinearKind::decode, 12, 8, 32, 4, 1, 1};
  CHECK(a.key() != b.key());
}

TEST_CASE("LinearConfig: within a kind, equal iff keys equal (over the real config space)") {
  for (const char* arch : {"gfx1151", "gfx942", "sm_90a"}) {
    const auto configs = kf::enumerate_linear_configs({2048, 4096, 128, true, false}, kf::arch_info(arch));
    REQUIRE(configs.size() > 10);
    for (const auto& a : configs)
      for (const auto& b : configs) {
        if (a.kind != b.kind) continue;  // the key does not carry the kind (see report)
        const bool fields = same_fields(a, b);
        CHECK(fields == (a.key() == b.key()));
        CHECK(fields == (a == b));
      }
  }
}

TEST_CASE("linear_kernel_name: w4a16_linear_<kind>_<shape>_<config>") {
  const kf::LinearShape s{12288, 2048, 128, true, false};
  const kf::LinearConfig c{kf::LinearKind::prefill, 64, 128, 64, 4, 1, 2};
  CHECK(kf::linear_kernel_name(s, c) ==
        "w4a16_linear_prefill_n12288_k2048_g128_bf16_sym_bm64_bn128_bk64_w4_sk1_s2");
  const kf::LinearShape t{1024, 2048, 0, false, true};
  const kf::LinearConfig d{kf::LinearKind::decode, 4, 64, 32, 8, 2, 1};
  CHECK(kf::linear_kernel_name(t, d) ==
        "w4a16_linear_decode_n1024_k2048_gch_fp16_asym_bm4_bn64_bk32_w8_sk2_s1");
}

TEST_CASE("enumerate_linear_configs: every qwen3-35b shape on every arch") {
  for (const auto& arch_name : kf::supported_archs()) {
    const kf::ArchInfo& arch = kf::arch_info(arch_name);
    for (const auto& s : qwen_shapes()) {
      INFO(arch_name << " " << s.key());
      const auto configs = kf::enumerate_linear_configs(s, arch);
      REQUIRE_FALSE(configs.empty());
      const int n = static_cast<int>(s.n), k = static_cast<int>(s.k), g = s.effective_group();
      std::set<std::string> names;
      int decode = 0, skinny = 0, prefill = 0, wgmma = 0;
      bool seen_skinny = false, seen_prefill = false, seen_wgmma = false;
      for (const auto& c : configs) {
        INFO("config " << kf::kind_name(c.kind) << " " << c.key());
        const int threads = c.warps * arch.wave_size;  // the warps' threads (a wgmma block adds its producer's)
        names.insert(kf::linear_kernel_name(s, c));
        // Parsed back from the pack's kind and config strings, the same config.
        CHECK(same_fields(kf::parse_linear_config(kf::kind_name(c.kind), c.key()), c));
        if (c.kind == kf::LinearKind::skinny) {
          ++skinny;
          seen_skinny = true;
          CHECK_FALSE(seen_prefill);  // skinny after decode, before prefill
          CHECK(arch.vendor == kf::Vendor::nvidia);
          CHECK((c.block_m == 16 || c.block_m == 8));  // 8: the swapped form
          CHECK(c.block_k == 32);
          CHECK(kf::w4a16::skinny::valid(n, k, g, c.block_n, c.warps, c.split_k, c.stages, c.block_m));
          const int kw = k / c.split_k / c.warps;
          CHECK(kw * c.warps * c.split_k == k);
          CHECK(kw % 32 == 0);
          if (s.group != 0) CHECK((kw % g == 0 || g % kw == 0));  // whole groups or a part of one
          if (c.stages > 1) CHECK(kw / 32 > 1);
          const kf::Candidate cand = kf::make_linear_candidate(s, c, arch);
          CHECK(cand.needs_mma);
          CHECK(cand.instance == "w4a16_linear/skinny.cu.in");
        } else if (c.kind == kf::LinearKind::wgmma) {
          ++wgmma;
          seen_wgmma = true;
          CHECK(seen_prefill);  // last
          CHECK(arch.warpgroup_mma);
          CHECK(kf::w4a16::wgmma::valid(n, k, g, c.block_m, c.block_n, c.block_k, c.warps, c.stages, s.asym,
                                        c.split_k));
          CHECK(c.block_n == 16 * c.warps);  // 64 weight rows per warpgroup
          const bool split_ring = c.stages == 4 || c.stages == 5;  // split-K rings of 4 or 5
          CHECK((c.split_k == 1 || ((c.split_k == 2 || c.split_k == 4 || c.split_k == 8) && split_ring)));
          CHECK(cand_cluster(s, c, arch) ==
                (c.split_k > 1 ? "__cluster_dims__(1, 1, " + std::to_string(c.split_k) + ")" : std::string()));
          CHECK(k / c.block_k % c.split_k == 0);  // whole stages per slice
          CHECK(kf::linear_grid(s, c, 300).z == static_cast<unsigned>(c.split_k));
          CHECK(g % c.block_k == 0);  // one group per stage
          const kf::Candidate cand = kf::make_linear_candidate(s, c, arch);
          CHECK(cand.needs_mma);
          CHECK(cand.instance == "w4a16_linear/wgmma.cu.in");
          // The whole ring is dynamic shared memory, within the opt-in maximum.
          CHECK(cand.dynamic_shared ==
                kf::w4a16::wgmma::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, s.asym));
          CHECK(cand.dynamic_shared <= arch.max_dynamic_lds_per_block);
          CHECK(kf::linear_grid(s, c, 300).shared == static_cast<unsigned>(cand.dynamic_shared));
        } else if (c.kind == kf::LinearKind::decode) {
          ++decode;
          CHECK_FALSE(seen_skinny);   // decode first
          CHECK_FALSE(seen_prefill);
          CHECK(kf::w4a16::decode_valid(n, k, g, c.block_n, c.block_k, threads, c.split_k));
          CHECK((c.stages == 1 || c.stages == 2));
          // Prefetching (stages 2) only where a thread takes more than one k-step.
          if (c.stages == 2) CHECK(k / c.split_k / (threads / (c.block_n / 4) * c.block_k) > 1);
          CHECK(c.block_m <= 16);
        } else {
          ++prefill;
          seen_prefill = true;
          CHECK_FALSE(seen_wgmma);
          CHECK(kf::w4a16::prefill_valid(n, k, g, c.block_m, c.block_n, c.block_k, c.warps, c.split_k));
          // split-K only on the small-M tiles
          if (c.split_k > 1) CHECK(c.block_m <= 32);
          CHECK((c.stages >= 1 && c.stages <= 4));
          // The asynchronous ring: its stages fit the arch's static shared memory.
          if (c.stages >= 3) {
            CHECK(kf::w4a16::prefill_pipelined_valid(n, k, g, c.block_m, c.block_n, c.block_k, c.warps, c.split_k,
                                                     c.stages, s.asym, arch.wave_size, arch.max_lds_per_block));
            CHECK(kf::w4a16::pipelined_smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, s.asym) <=
                  arch.max_lds_per_block);
          }
        }
        const kf::Candidate cand = kf::make_linear_candidate(s, c, arch);
        CHECK(cand.threads == (c.kind == kf::LinearKind::wgmma ? kf::w4a16::wgmma::block_threads(c.warps) : threads));
        CHECK(cand.name == kf::linear_kernel_name(s, c));
      }
      CHECK(decode > 0);
      CHECK(prefill > 0);
      // The wgmma kind exactly where the arch has the instruction and a stage of 64 k fits
      // in a group (not g32: the decode, skinny and prefill kinds serve those).
      CHECK((wgmma > 0) == (arch.warpgroup_mma && g % 64 == 0));
      CHECK(arch.warpgroup_mma == (arch_name == "sm_90a"));
      // Only NVIDIA gets the skinny kind, and there every shape of the model has some.
      if (arch.vendor == kf::Vendor::nvidia)
        CHECK(skinny > 0);
      else
        CHECK(skinny == 0);
      CHECK(names.size() == configs.size());
    }
  }
}

TEST_CASE("enumerate_linear_configs: complete over its grid and deterministic") {
  const kf::LinearShape s{2048, 512, 128, true, false};
  for (const auto& arch_name : kf::supported_archs()) {
    const kf::ArchInfo& arch = kf::arch_info(arch_name);
    INFO(arch_name);
    const auto first = kf::enumerate_linear_configs(s, arch);
    const auto second = kf::enumerate_linear_configs(s, arch);
    REQUIRE(first.size() == second.size());
    for (size_t i = 0; i < first.size(); ++i) {
      CHECK(first[i].kind == second[i].kind);
      CHECK(first[i].key() == second[i].key());
    }
    auto has = [&](const kf::LinearConfig& want) {
      return std::any_of(first.begin(), first.end(),
                         [&](const kf::LinearConfig& c) { return same_fields(c, want); });
    };
    size_t valid = 0;
    for (int bm : {1, 2, 4, 8, 16})
      for (int bn : {64, 128, 256})
        for (int bk : {32, 64})
          for (int w : {4, 8})
            for (int sk : {1, 2, 4, 8, 16})
              if ((sk <= 4 || bm <= 4) && kf::w4a16::decode_valid(2048, 512, 128, bn, bk, w * arch.wave_size, sk)) {
                ++valid;
                CHECK(has({kf::LinearKind::decode, bm, bn, bk, w, sk, 1}));
                // and the prefetching variant (a ring of 2) when a thread takes
                // several k-steps
                const int steps = 512 / sk / (w * arch.wave_size / (bn / 4) * bk);
                if (steps > 1) {
                  ++valid;
                  CHECK(has({kf::LinearKind::decode, bm, bn, bk, w, sk, 2}));
                }
              }
    // Skinny, on NVIDIA only: every valid point of its grid, both forms.
    for (int bm : {16, 8})
      for (int bn : {64, 128})
        for (int w : {2, 4, 8})
          for (int sk : {1, 2, 4, 8})
            for (int st : {2, 3, 4, 6, 8})
              if (arch.vendor == kf::Vendor::nvidia && kf::w4a16::skinny::valid(2048, 512, 128, bn, w, sk, st, bm)) {
                ++valid;
                CHECK(has({kf::LinearKind::skinny, bm, bn, 32, w, sk, st}));
              }
    // and the swapped form's other widths
    for (int bn : {32, 96})
      for (int w : {2, 4, 8})
        for (int sk : {1, 2, 4, 8})
          for (int st : {2, 3, 4, 6, 8})
            if (arch.vendor == kf::Vendor::nvidia && kf::w4a16::skinny::valid(2048, 512, 128, bn, w, sk, st, 8)) {
              ++valid;
              CHECK(has({kf::LinearKind::skinny, 8, bn, 32, w, sk, st}));
            }
    // and the swapped form at block_m 16 (_sw)
    for (int bn : {32, 64, 96, 128})
      for (int w : {2, 4, 8, 16})
        for (int sk : {1, 2})
          for (int st : {2, 4})
            if (arch.vendor == kf::Vendor::nvidia && kf::w4a16::skinny::valid(2048, 512, 128, bn, w, sk, st, 16)) {
              ++valid;
              CHECK(has({kf::LinearKind::skinny, 16, bn, 32, w, sk, st, false, false, true}));
            }
    for (int bm : {16, 32, 64, 128})
      for (int bn : {64, 128, 256})
        for (int bk : {32, 64})
          for (int w : {4, 8})
            for (int st : {1, 2})
              if (kf::w4a16::prefill_valid(2048, 512, 128, bm, bn, bk, w)) {
                ++valid;
                CHECK(has({kf::LinearKind::prefill, bm, bn, bk, w, 1, st}));
              }
    for (int bm : {16, 32})
      for (int bn : {64, 128})
        for (int w : {4, 8})
          for (int sk : {2, 4, 8})
            if (kf::w4a16::prefill_valid(2048, 512, 128, bm, bn, 64, w, sk)) {
              ++valid;
              CHECK(has({kf::LinearKind::prefill, bm, bn, 64, w, sk, 2}));
            }
    // The pipelined grid: block_k 64 up to block_m 64, block_m 128 at block_k 32 with 8
    // warps, split-K at stages 4 with 4 warps, each where its stages fit.
    auto pipelined = [&](int bm, int bn, int bk, int w, int sk, int st) {
      if (!kf::w4a16::prefill_pipelined_valid(2048, 512, 128, bm, bn, bk, w, sk, st, false, arch.wave_size,
                                               arch.max_lds_per_block))
        return;
      ++valid;
      CHECK(has({kf::LinearKind::prefill, bm, bn, bk, w, sk, st}));
    };
    for (int st : {3, 4})
      for (int bn : {64, 128}) {
        for (int bm : {32, 64})
          for (int w : {4, 8}) pipelined(bm, bn, 64, w, 1, st);
        pipelined(128, bn, 32, 8, 1, st);
      }
    for (int bm : {16, 32})
      for (int bn : {64, 128})
        for (int sk : {2, 4}) pipelined(bm, bn, 64, 4, sk, 4);
    // wgmma, where the arch has it: every valid point of its grid.
    for (int bm : {32, 64, 128, 256})
      for (int w : {4, 8, 12, 16})
        for (int bk : {64, 128})
          for (int st : {3, 4, 5})
            if (arch.warpgroup_mma && (w < 12 || bm <= 128) &&
                kf::w4a16::wgmma::valid(2048, 512, 128, bm, 16 * w, bk, w, st, false)) {
              ++valid;
              CHECK(has({kf::LinearKind::wgmma, bm, 16 * w, bk, w, 1, st}));
            }
    for (int bm : {32, 64, 128, 256})
      for (int w : {4, 8, 12, 16})
        for (int bk : {64, 128})
          for (int sk : {2, 4, 8})
            for (int st : {4, 5})
              if (arch.warpgroup_mma && (w < 12 || bm <= 128) &&
                  kf::w4a16::wgmma::valid(2048, 512, 128, bm, 16 * w, bk, w, st, false, sk)) {
                ++valid;
                CHECK(has({kf::LinearKind::wgmma, bm, 16 * w, bk, w, sk, st}));
              }
    // and stream-K over the arch's SMs (_stkB)
    for (int bm : {64, 128, 256})
      for (int w : {8, 12})
        for (int bk : {64, 128})
          for (int st : {4, 5, 6})
            if (arch.stream_blocks > 0 && (w < 12 || bm <= 128) &&
                kf::w4a16::wgmma::stream_valid(2048, 512, 128, bm, 16 * w, bk, w, st, false, arch.stream_blocks)) {
              ++valid;
              kf::LinearConfig c{kf::LinearKind::wgmma, bm, 16 * w, bk, w, 1, st};
              c.stream_blocks = arch.stream_blocks;
              CHECK(has(c));
            }
    CHECK(first.size() == valid);
  }
}

TEST_CASE("wgmma kind: the MoE GEMMs' row tables count against shared memory; products narrow to the rows held") {
  namespace wg = kf::w4a16::wgmma;
  // A five-stage block_m 128 x 192 ring leaves 1 KiB: room for a dense tile, not for the
  // gathered one's 1552 bytes of row tables.
  CHECK(wg::valid(12288, 2048, 128, 128, 192, 128, 12, 5, false));
  CHECK_FALSE(wg::valid_gathered(12288, 2048, 128, 128, 192, 128, 12, 5, false));
  CHECK(wg::valid_gathered(1024, 2048, 128, 128, 256, 128, 16, 4, false));
  CHECK_FALSE(wg::valid_gathered(1024, 2048, 128, 128, 256, 100, 16, 4, false));  // valid()'s rules too
  // The narrowest of 128, 64, 32, 16 that covers the rows held.
  CHECK(wg::product_width(128, 128) == 128);
  CHECK(wg::product_width(128, 65) == 128);
  CHECK(wg::product_width(128, 64) == 64);
  CHECK(wg::product_width(128, 33) == 64);
  CHECK(wg::product_width(128, 17) == 32);
  CHECK(wg::product_width(128, 16) == 16);
  CHECK(wg::product_width(128, 1) == 16);
  CHECK(wg::product_width(16, 1) == 16);
  CHECK(wg::product_width(256, 129) == 256);
  for (int bm : {16, 32, 64, 128, 256})
    for (int rows = 1; rows <= bm; ++rows) {
      const int w = wg::product_width(bm, rows);
      CHECK((w >= rows && w >= 16 && w <= bm && (w == 16 || rows > w / 2)));
    }
}

TEST_CASE("enumerate_linear_configs: three-warpgroup wgmma tiles where 192 columns divide N") {
  CHECK(kf::w4a16::wgmma::valid(12288, 2048, 128, 128, 192, 64, 12, 4, false));
  CHECK(kf::w4a16::wgmma::valid(9216, 2048, 128, 64, 192, 128, 12, 3, true));
  CHECK_FALSE(kf::w4a16::wgmma::valid(2048, 2048, 128, 128, 192, 64, 12, 4, false));  // 192 does not divide 2048
  CHECK_FALSE(kf::w4a16::wgmma::valid(12288, 2048, 128, 128, 320, 64, 20, 4, false));  // five warpgroups
  CHECK_FALSE(kf::w4a16::wgmma::valid(12288, 2048, 128, 128, 128, 64, 12, 4, false));  // 64 rows per warpgroup
  // 31 one tile a block or split-K in rings of 4 (10 at block_m 32, 21 at 64 and 128),
  // and 16 split-K in rings of 5.
  CHECK(wide_wgmma_configs({12288, 2048, 128, true, false}, 12) == 47);
  CHECK(wide_wgmma_configs({2048, 4096, 128, true, false}, 12) == 0);
}

TEST_CASE("enumerate_linear_configs: four-warpgroup wgmma tiles, 256 columns, up to block_m 128") {
  CHECK(kf::w4a16::wgmma::valid(2048, 4096, 128, 128, 256, 64, 16, 4, false));
  CHECK_FALSE(kf::w4a16::wgmma::valid(1152, 2048, 128, 128, 256, 64, 16, 4, false));  // 256 does not divide 1152
  CHECK_FALSE(kf::w4a16::wgmma::valid(2048, 4096, 128, 128, 192, 64, 16, 4, false));  // 64 rows per warpgroup
  CHECK(wide_wgmma_configs({2048, 4096, 128, true, false}, 16) > 0);
  CHECK(wide_wgmma_configs({1152, 2048, 128, true, false}, 16) == 0);
  for (const auto& c : kf::enumerate_linear_configs({2048, 4096, 128, true, false}, kf::arch_info("gfx942")))
    CHECK(c.kind != kf::LinearKind::wgmma);
}

TEST_CASE("wgmma stream-K (_stkB): key, parse, candidate, grid and scratch; wgmma without split-K, sm_90a only") {
  const kf::LinearShape s{9216, 2048, 128, true, false};
  kf::LinearConfig c{kf::LinearKind::wgmma, 128, 192, 128, 12, 1, 4};
  c.stream_blocks = 132;
  CHECK(c.key() == "bm128_bn192_bk128_w12_sk1_s4_stk132");
  const kf::LinearConfig back = kf::parse_linear_config("wgmma", c.key());
  CHECK(back.stream_blocks == 132);
  CHECK(same_fields(back, c));
  CHECK(kf::parse_linear_config("wgmma", "bm128_bn192_bk128_w12_sk1_s4").stream_blocks == 0);
  for (const char* bad : {"bm128_bn192_bk128_w12_sk1_s4_stk", "bm128_bn192_bk128_w12_sk1_s4_stk0",
                          "bm128_bn192_bk128_w12_sk1_s4stk132", "bm128_bn192_bk128_w12_sk1_s4_sw_stk132"})
    CHECK_THROWS_AS(kf::parse_linear_config("wgmma", bad), kf::Error);

  const kf::Candidate cand = kf::make_linear_candidate(s, c, kf::arch_info("sm_90a"));
  CHECK(cand.name == "w4a16_linear_wgmma_n9216_k2048_g128_bf16_sym_bm128_bn192_bk128_w12_sk1_s4_stk132");
  CHECK(cand.params.at("stream_blocks") == "132");
  CHECK(cand.params.at("cluster") == "");
  CHECK(kf::make_linear_candidate(s, {kf::LinearKind::wgmma, 128, 192, 128, 12, 1, 4}, kf::arch_info("sm_90a"))
            .params.at("stream_blocks") == "0");
  // B blocks whatever M (fewer on a part with fewer SMs); scratch for B tiles and B flags.
  for (int64_t m : {1, 256, 4096}) {
    INFO("m " << m);
    const kf::LaunchGrid g = kf::linear_grid(s, c, m);
    CHECK((g.x == 132 && g.y == 1 && g.z == 1));
    CHECK(kf::linear_workspace_floats(s, c, m) == 132 * 128 * 192 / 2);  // bf16 pairs (wgmma.h)
    CHECK(kf::linear_counter_ints(s, c, m) == 132);
    CHECK(kf::linear_grid(s, c, m, 114).x == 114);  // one block per SM of a smaller part
    CHECK(kf::linear_grid(s, c, m, 200).x == 132);
  }
  const kf::LinearShape s16{9216, 2048, 128, false, false};  // fp16: fp32 partials, a whole tile
  CHECK(kf::linear_workspace_floats(s16, c, 256) == 132 * 128 * 192);
  kf::LinearConfig split = c;
  split.split_k = 2;
  CHECK_THROWS_AS(kf::make_linear_candidate(s, split, kf::arch_info("sm_90a")), kf::Error);
  kf::LinearConfig skinny{kf::LinearKind::skinny, 16, 64, 32, 4, 1, 4};
  skinny.stream_blocks = 132;
  CHECK_THROWS_AS(kf::make_linear_candidate(s, skinny, kf::arch_info("sm_90a")), kf::Error);

  // Enumerated for sm_90a's 132 SMs: block_m 64, 128, 256 x two or three warpgroups x
  // block_k 64, 128 x 4-6 stages where the ring fits, three warpgroups only up to block_m
  // 128 (and where 192 divides N): 9216 x 2048 has 12 at block_m 64 (all fit), 10 at 128
  // (block_k 128: 4 and 5 stages), 3 at 256 (block_k 64 only).
  for (const auto& arch : kf::supported_archs()) {
    INFO(arch);
    int stream = 0;
    for (const auto& e : kf::enumerate_linear_configs(s, kf::arch_info(arch))) {
      if (e.stream_blocks == 0) continue;
      ++stream;
      CHECK(e.kind == kf::LinearKind::wgmma);
      CHECK(e.split_k == 1);
      CHECK(e.stream_blocks == 132);
      CHECK(kf::w4a16::wgmma::stream_valid(9216, 2048, 128, e.block_m, e.block_n, e.block_k, e.warps, e.stages, false,
                                           132));
    }
    CHECK(stream == (arch == "sm_90a" ? 12 + 10 + 3 : 0));
  }
  int narrow = 0;  // 192 does not divide 2048: two warpgroups only
  for (const auto& e : kf::enumerate_linear_configs({2048, 4096, 128, true, false}, kf::arch_info("sm_90a")))
    narrow += e.stream_blocks > 0;
  CHECK(narrow == 6 + 5 + 3);
  CHECK_FALSE(kf::w4a16::wgmma::stream_valid(9216, 2048, 128, 128, 192, 128, 12, 4, false, 0));
  CHECK_FALSE(kf::w4a16::wgmma::stream_valid(9216, 2048, 128, 128, 192, 128, 12, 4, false, 2048));
  CHECK(kf::w4a16::wgmma::valid(9216, 2048, 128, 16, 192, 128, 12, 4, false));
  // Partials read in chunks of 16 words: block_m 32 leaves 8 words of bf16 pairs a thread.
  CHECK_FALSE(kf::w4a16::wgmma::stream_valid(9216, 2048, 128, 16, 192, 128, 12, 4, false, 132));
  CHECK_FALSE(kf::w4a16::wgmma::stream_valid(9216, 2048, 128, 32, 192, 128, 12, 4, false, 132));
  CHECK(kf::w4a16::wgmma::stream_valid(9216, 2048, 128, 64, 192, 128, 12, 4, false, 132));
}

// Deals the steps of `tiles` tiles of `tile_steps` k-steps to `blocks` blocks the way
// wgmma.h walks them, and checks what the kernel relies on: each step is multiplied
// once; a block contributes at most once, in the first run it takes; each tile is stored
// by one run, which waits only on lower tickets, and exactly on the blocks that
// contributed to that tile.
void check_stream_runs(int tiles, int tile_steps, int blocks) {
  namespace wg = kf::w4a16::wgmma;
  CAPTURE(tiles);
  CAPTURE(tile_steps);
  CAPTURE(blocks);
  const long long steps = static_cast<long long>(tiles) * tile_steps;
  std::vector<int> multiplied(steps, 0), stored(tiles, 0);
  std::vector<std::set<int>> contributors(tiles), awaited(tiles);
  int runs = 0;
  for (int ticket = 0; ticket < blocks; ++ticket) {
    const long long first = wg::stream_first_step(ticket, blocks, steps);
    int taken = 0;
    for (long long end = wg::stream_first_step(ticket + 1, blocks, steps); end > first; ++taken) {
      const wg::StreamRun r = wg::stream_run(first, end, tile_steps);
      REQUIRE(r.begin < end);
      REQUIRE(r.tile == r.begin / tile_steps);  // one tile per run
      for (long long i = r.begin; i < end; ++i) ++multiplied[i];
      ++runs;
      if (r.role == wg::StreamRole::contribute) {
        CHECK(taken == 0);
        contributors[r.tile].insert(ticket);
      } else {
        ++stored[r.tile];
      }
      if (r.role == wg::StreamRole::finish) {
        const long long tile_first = static_cast<long long>(r.tile) * tile_steps;
        for (int b = wg::stream_block_of(tile_first, blocks, steps); b < ticket; ++b)
          if (wg::stream_holds_steps(b, blocks, steps)) awaited[r.tile].insert(b);
        CHECK_FALSE(awaited[r.tile].empty());
      }
      end = r.begin;
    }
    if (!wg::stream_holds_steps(ticket, blocks, steps)) CHECK(taken == 0);
  }
  CHECK(std::count(multiplied.begin(), multiplied.end(), 1) == steps);
  CHECK(std::count(stored.begin(), stored.end(), 1) == tiles);
  for (int t = 0; t < tiles; ++t) {
    CHECK(awaited[t] == contributors[t]);
    const int finisher = wg::stream_block_of(static_cast<long long>(t + 1) * tile_steps - 1, blocks, steps);
    for (int b : contributors[t]) CHECK(b < finisher);
  }
  CHECK(runs <= tiles + blocks);
}

TEST_CASE("wgmma stream-K runs: every step once, every tile stored once, waits only on the blocks that contributed") {
  for (int tiles : {1, 5, 96, 288})
    for (int tile_steps : {1, 4, 16, 32})
      for (int blocks : {1, 2, 7, 132, 200}) check_stream_runs(tiles, tile_steps, blocks);
  // 9216 x 2048 at M = 256, block_m 128 x block_n 192, block_k 128: 96 tiles of 16 steps
  // on 132 blocks: 11 or 12 steps each, so every tile is split between two blocks.
  namespace wg = kf::w4a16::wgmma;
  CHECK(wg::stream_first_step(1, 132, 96 * 16) == 11);
  CHECK(wg::stream_first_step(132, 132, 96 * 16) == 96 * 16);
  CHECK(wg::stream_block_of(0, 132, 96 * 16) == 0);
  CHECK(wg::stream_block_of(11, 132, 96 * 16) == 1);
  CHECK(wg::stream_block_of(96 * 16 - 1, 132, 96 * 16) == 131);
  // Fewer steps than blocks: some blocks hold none.
  CHECK_FALSE(wg::stream_holds_steps(0, 8, 3));
  CHECK(wg::stream_holds_steps(7, 8, 3));
}

TEST_CASE("enumerate_linear_configs: wave size shapes the decode space") {
  // K = 512, block_n 64: 16 threads along N. wave32 with 4 warps = 128 threads -> 8 along
  // K -> 8 * 32 = 256 k per step, so split-K 2 (256 each) still fits; wave64 with 4 warps
  // = 256 threads -> 16 * 32 = 512, so split-K 2 does not.
  const kf::LinearShape s{2048, 512, 128, true, false};
  auto has = [](const std::vector<kf::LinearConfig>& cs, const std::string& key) {
    return std::any_of(cs.begin(), cs.end(), [&](const kf::LinearConfig& c) {
      return c.kind == kf::LinearKind::decode && c.key() == key;
    });
  };
  const auto rdna = kf::enumerate_linear_configs(s, kf::arch_info("gfx1151"));
  const auto cdna = kf::enumerate_linear_configs(s, kf::arch_info("gfx942"));
  CHECK(has(rdna, "bm1_bn64_bk32_w4_sk2_s1"));
  CHECK_FALSE(has(cdna, "bm1_bn64_bk32_w4_sk2_s1"));
  CHECK(has(cdna, "bm1_bn64_bk32_w4_sk1_s1"));
  for (const auto& c : cdna) {
    const kf::Candidate cand = kf::make_linear_candidate(s, c, kf::arch_info("gfx942"));
    CHECK(cand.threads == c.warps * 64);
  }
}

TEST_CASE("make_linear_candidate: decode parameters") {
  const kf::LinearShape s{1024, 2048, 0, false, true};
  const kf::LinearConfig c{kf::LinearKind::decode, 4, 64, 32, 8, 2, 1};
  const kf::Candidate cand = kf::make_linear_candidate(s, c, kf::arch_info("gfx942"));
  CHECK(cand.op == "w4a16_linear");
  CHECK(cand.kind == "decode");
  CHECK(cand.arch == "gfx942");
  CHECK(cand.shape == "n1024_k2048_gch_fp16_asym");
  CHECK(cand.config == "bm4_bn64_bk32_w8_sk2_s1");
  CHECK(cand.name == "w4a16_linear_decode_n1024_k2048_gch_fp16_asym_bm4_bn64_bk32_w8_sk2_s1");
  CHECK(cand.instance == "w4a16_linear/decode.cu.in");
  CHECK(cand.threads == 512);
  CHECK_FALSE(cand.needs_mma);
  CHECK(cand.min_occupancy == 2);
  const kf::TemplateParams want = {
      {"name", cand.name},
      {"config", "decode n1024_k2048_gch_fp16_asym bm4_bn64_bk32_w8_sk2_s1 gfx942"},
      {"n", "1024"},
      {"k", "2048"},
      {"group", "2048"},  // per-channel: one group spanning K
      {"bf16", "false"},
      {"asym", "true"},
      {"block_m", "4"},
      {"block_n", "64"},
      {"block_k", "32"},
      {"threads", "512"},
      {"split_k", "2"},
      {"stages", "1"},
  };
  CHECK(cand.params == want);
}

TEST_CASE("make_linear_candidate: prefill parameters") {
  const kf::LinearShape s{12288, 2048, 128, true, false};
  const kf::LinearConfig c{kf::LinearKind::prefill, 64, 128, 64, 4, 1, 2};
  const kf::Candidate cand = kf::make_linear_candidate(s, c, kf::arch_info("gfx1151"));
  CHECK(cand.kind == "prefill");
  CHECK(cand.instance == "w4a16_linear/prefill.cu.in");
  CHECK(cand.threads == 128);
  CHECK(cand.needs_mma);
  CHECK(cand.min_occupancy == 1);
  const kf::TemplateParams want = {
      {"name", "w4a16_linear_prefill_n12288_k2048_g128_bf16_sym_bm64_bn128_bk64_w4_sk1_s2"},
      {"config", "prefill n12288_k2048_g128_bf16_sym bm64_bn128_bk64_w4_sk1_s2 gfx1151"},
      {"n", "12288"},
      {"k", "2048"},
      {"group", "128"},
      {"bf16", "true"},
      {"asym", "false"},
      {"block_m", "64"},
      {"block_n", "128"},
      {"block_k", "64"},
      {"threads", "128"},
      {"warps", "4"},
      {"split_k", "1"},
      {"stages", "2"},
  };
  CHECK(cand.params == want);
  // The same config on sm_90a: threads from the NVIDIA warp size, arch in the config line.
  const kf::Candidate nv = kf::make_linear_candidate(s, c, kf::arch_info("sm_90a"));
  CHECK(nv.threads == 128);
  CHECK(nv.params.at("config") == "prefill n12288_k2048_g128_bf16_sym bm64_bn128_bk64_w4_sk1_s2 sm_90a");
  CHECK(nv.name == cand.name);
}

TEST_CASE("skinny::valid (the generator's and the template's rule), case by case") {
  auto config_valid = [](int n, int k, int g, int bn, int w, int sk, int st) {
    return kf::w4a16::skinny::valid(n, k, g, bn, w, sk, st);
  };
  // n, k, group, block_n, warps, split_k, stages
  CHECK(config_valid(2048, 4096, 128, 128, 4, 1, 1));   // kw 1024: 8 groups per warp
  CHECK(config_valid(2048, 4096, 128, 128, 8, 4, 1));   // kw 128: one group
  CHECK(config_valid(2048, 4096, 128, 128, 8, 8, 1));   // kw 64: half a group, folded once
  CHECK_FALSE(config_valid(2048, 768, 128, 64, 8, 1, 1));  // kw 96 would straddle two groups
  CHECK(config_valid(2048, 4096, 64, 128, 8, 8, 1));    // kw 64 = group 64
  CHECK(config_valid(2048, 512, 32, 64, 4, 4, 1));      // kw 32: one span
  CHECK_FALSE(config_valid(2048, 512, 32, 64, 4, 4, 2));  // a ring needs two spans
  CHECK(config_valid(2048, 512, 32, 64, 4, 2, 2));      // kw 64: two spans
  CHECK(config_valid(2048, 512, 32, 64, 4, 1, 4));
  CHECK(config_valid(2048, 512, 32, 64, 4, 1, 3));        // any ring depth up to the spans
  CHECK_FALSE(config_valid(2048, 512, 32, 64, 4, 2, 3));  // kw 64: two spans, three slots
  CHECK(config_valid(2048, 4096, 128, 64, 4, 1, 5));       // 4 x 5 slots of 2 KiB: 40 KiB, static
  CHECK(kf::w4a16::skinny::dynamic_shared_bytes(64, 4, 5) == 0);
  CHECK(config_valid(2048, 4096, 128, 64, 4, 1, 6));       // 48 KiB and the epilogue's word: dynamic
  CHECK(kf::w4a16::skinny::dynamic_shared_bytes(64, 4, 6) == 48 * 1024);
  CHECK(config_valid(2048, 4096, 128, 128, 8, 1, 8));      // 8 x 8 slots of 3 KiB: 192 KiB
  CHECK(kf::w4a16::skinny::dynamic_shared_bytes(128, 8, 8) == 192 * 1024);
  // A split's block 0 receives the other blocks' whole tiles after its ring: 16 x 128 x 4
  // bytes from each. 192 + 3 x 8 KiB fits; 192 + 7 x 8 KiB does not.
  CHECK(kf::w4a16::skinny::received_bytes(128, 4) == 3 * 8 * 1024);
  CHECK(kf::w4a16::skinny::dynamic_shared_bytes(128, 8, 8, 16, 4) == (192 + 24) * 1024);
  CHECK(config_valid(2048, 8192, 128, 128, 8, 4, 8));   // kw 256: 8 spans
  CHECK_FALSE(config_valid(2048, 16384, 128, 128, 8, 8, 8));  // 192 + 56 KiB
  // Near 48 KiB, the received tiles move a static ring to dynamic memory.
  CHECK(kf::w4a16::skinny::dynamic_shared_bytes(64, 4, 5) == 0);  // 40 KiB
  CHECK(kf::w4a16::skinny::dynamic_shared_bytes(64, 4, 5, 16, 3) == (40 + 8) * 1024);
  // Block_m 8 x block_n 32 over 16 warps: 256 tile entries, split all the same.
  CHECK(config_valid(2048, 4096, 128, 32, 16, 2, 4));
  CHECK_FALSE(config_valid(2048, 4096, 128, 256, 8, 1, 8));  // 8 x 8 slots of 5 KiB: over 227 KiB
  CHECK_FALSE(config_valid(2048, 4096, 128, 64, 2, 1, 9));   // deeper than kMaxStages
  CHECK_FALSE(config_valid(2048, 4096, 128, 96, 4, 1, 1));   // block_n not whole 32s
  CHECK(config_valid(96, 4096, 128, 32, 4, 1, 1));
  CHECK_FALSE(config_valid(2176, 4096, 128, 256, 4, 1, 1));  // 2176 not a multiple of 256
  CHECK_FALSE(config_valid(2048, 4096, 128, 128, 4, 0, 1));  // split_k >= 1
  CHECK_FALSE(config_valid(2048, 4096, 96, 128, 4, 1, 1));   // group not whole spans
  // K = 2080 (65 spans), group 32, 8 splits of 260: 8 warps of 32 would leave 4 k
  // uncovered; the warps' ranges must tile each split.
  CHECK_FALSE(config_valid(2048, 2080, 32, 128, 8, 8, 1));
  // Per-channel (group = K): one scale per column, folded at the end of each warp's
  // slice, so any split into whole spans.
  CHECK(config_valid(2048, 4096, 4096, 128, 1, 1, 4));
  CHECK(config_valid(2048, 4096, 4096, 128, 4, 2, 1));
  CHECK_FALSE(config_valid(2048, 4096, 4096, 128, 8, 32, 1));  // 16 k per warp
}

TEST_CASE("skinny kind: name, candidate parameters, parse back, decode geometry") {
  const kf::LinearShape s{12288, 2048, 128, true, false};
  const kf::LinearConfig c{kf::LinearKind::skinny, 16, 128, 32, 8, 2, 2};
  CHECK(std::string(kf::kind_name(c.kind)) == "skinny");
  CHECK(kf::linear_kernel_name(s, c) == "w4a16_linear_skinny_n12288_k2048_g128_bf16_sym_bm16_bn128_bk32_w8_sk2_s2");
  const kf::LinearConfig back = kf::parse_linear_config("skinny", "bm16_bn128_bk32_w8_sk2_s2");
  CHECK(back.kind == kf::LinearKind::skinny);
  CHECK(back == c);
  CHECK_FALSE(back == kf::parse_linear_config("decode", "bm16_bn128_bk32_w8_sk2_s2"));

  const kf::Candidate cand = kf::make_linear_candidate(s, c, kf::arch_info("sm_90a"));
  CHECK(cand.op == "w4a16_linear");
  CHECK(cand.kind == "skinny");
  CHECK(cand.config == "bm16_bn128_bk32_w8_sk2_s2");
  CHECK(cand.instance == "w4a16_linear/skinny.cu.in");
  CHECK(cand.threads == 256);
  CHECK(cand.needs_mma);
  CHECK(cand.min_occupancy == 2);
  // Exactly skinny.cu.in's placeholders: block_k is the template's own.
  const kf::TemplateParams want = {
      {"name", cand.name},
      {"config", "skinny n12288_k2048_g128_bf16_sym bm16_bn128_bk32_w8_sk2_s2 sm_90a"},
      {"n", "12288"},
      {"k", "2048"},
      {"group", "128"},
      {"bf16", "true"},
      {"asym", "false"},
      {"block_m", "16"},
      {"block_n", "128"},
      {"threads", "256"},
      {"paired", "false"},
      {"warps", "8"},
      {"split_k", "2"},
      {"stages", "2"},
      // The split tile's two blocks are one thread-block cluster (skinny.h sums on chip).
      {"cluster", "__cluster_dims__(1, 2, 1)"},
  };
  CHECK(cand.params == want);
  const kf::Candidate unsplit =
      kf::make_linear_candidate(s, {kf::LinearKind::skinny, 16, 128, 32, 8, 1, 2}, kf::arch_info("sm_90a"));
  CHECK(unsplit.params.at("cluster") == "");
  CHECK_THROWS_AS(kf::make_linear_candidate(s, {kf::LinearKind::skinny, 12, 128, 32, 8, 2, 2}, kf::arch_info("sm_90a")),
                  kf::Error);
  CHECK_THROWS_AS(kf::make_linear_candidate(s, {kf::LinearKind::skinny, 16, 128, 64, 8, 2, 2}, kf::arch_info("sm_90a")),
                  kf::Error);

  // The swapped form at block_m 16: _sw in the key and name, PAIRED in the template, the
  // same grid and shared memory as block_m 16; block_m 8 (always swapped) and the other
  // kinds do not take it.
  kf::LinearConfig sw = c;
  sw.swapped = true;
  CHECK(sw.key() == "bm16_bn128_bk32_w8_sk2_s2_sw");
  CHECK_FALSE(sw == c);
  const kf::LinearConfig sw_back = kf::parse_linear_config("skinny", sw.key());
  CHECK(sw_back.swapped);
  CHECK(sw_back == sw);
  CHECK_FALSE(kf::parse_linear_config("skinny", c.key()).swapped);
  for (const char* bad : {"bm16_bn128_bk32_w8_sk2_s2_sw_sw", "bm16_bn128_bk32_w8_sk2_s2sw", "bm16_bn128_bk32_w8_sk2_s2_SW"})
    CHECK_THROWS_AS(kf::parse_linear_config("skinny", bad), kf::Error);
  const kf::Candidate sw_cand = kf::make_linear_candidate(s, sw, kf::arch_info("sm_90a"));
  CHECK(sw_cand.name == "w4a16_linear_skinny_n12288_k2048_g128_bf16_sym_bm16_bn128_bk32_w8_sk2_s2_sw");
  CHECK(sw_cand.params.at("paired") == "true");
  CHECK(sw_cand.dynamic_shared == cand.dynamic_shared);
  kf::LinearConfig sw8 = sw;
  sw8.block_m = 8;
  CHECK_THROWS_AS(kf::make_linear_candidate(s, sw8, kf::arch_info("sm_90a")), kf::Error);
  kf::LinearConfig sw_decode = sw;
  sw_decode.kind = kf::LinearKind::decode;
  CHECK_THROWS_AS(kf::make_linear_candidate(s, sw_decode, kf::arch_info("sm_90a")), kf::Error);

  // The decode kind's grid (N / block_n, split_k, ceil(M / 16)); no split-K scratch.
  for (int64_t m : {1, 16, 17, 64}) {
    INFO("m " << m);
    const kf::LaunchGrid g = kf::linear_grid(s, c, m);
    const kf::LaunchGrid d = kf::linear_grid(s, {kf::LinearKind::decode, 16, 128, 32, 8, 2, 2}, m);
    CHECK(g.x == 96);
    CHECK(g.y == 2);
    CHECK(g.z == static_cast<unsigned>((m + 15) / 16));
    CHECK((g.x == d.x && g.y == d.y && g.z == d.z));
    CHECK(kf::linear_workspace_floats(s, c, m) == 0);
    CHECK(kf::linear_counter_ints(s, c, m) == 0);
    const kf::LinearConfig decode{kf::LinearKind::decode, 16, 128, 32, 8, 2, 2};
    CHECK(kf::linear_workspace_floats(s, decode, m) == 2 * m * 12288);
    CHECK(kf::linear_counter_ints(s, decode, m) == 96 * ((m + 15) / 16));
  }
}

TEST_CASE("enumerate_linear_configs: skinny only on NVIDIA, between decode and prefill; wgmma last, on sm_90a") {
  const kf::LinearShape s{2048, 4096, 128, true, false};
  for (const auto& arch_name : kf::supported_archs()) {
    INFO(arch_name);
    const auto configs = kf::enumerate_linear_configs(s, kf::arch_info(arch_name));
    std::string order;  // one letter per run of a kind: d, s, p, w
    for (const auto& c : configs) {
      const char letter = kf::kind_name(c.kind)[0];
      if (order.empty() || order.back() != letter) order += letter;
    }
    CHECK(order == (arch_name == "sm_90a" ? "dspw" : "dp"));
  }
  // K = 4096, group 128 on sm_90a, stages 2, 3, 4, 6, 8 up to the warp's spans; every
  // ring fits the 227 KiB a block may have (above 48 KiB as dynamic shared memory). Per
  // block_m (16, 8) and block_n (64, 128):
  //   w2 sk 1..8 x 5 stages = 20; w4 sk 1..4 x 5 + sk 8 (4 spans) x 2-4 = 18;
  //   w8 sk 1, 2 x 5 + sk 4 (4 spans) x 2-4 + sk 8 (2 spans, half a group) x 2 = 14;
  // and once more for the swapped form's block_n 32 (96 does not divide N = 2048).
  // w16 (8 spans a warp unsplit, 4 at sk 2, 2 at sk 4) where the ring and a split's
  // received tiles fit: 40 in all, 8 and 7 at block_m 16 (block_n 64, 128), 9 and 7 at
  // block_m 8, and 9 at block_n 32 (5 unsplit, sk 2 x 3 stages, sk 4 x 2 stages: a split
  // tile's 256 entries leave half of the 512 threads idle in its sum). The swapped form at
  // block_m 16: block_n 32, 64, 128 (96 does not divide N) x 2-16 warps x sk 1, 2 x
  // stages 2, 4, all 48 valid.
  const auto nv = kf::enumerate_linear_configs(s, kf::arch_info("sm_90a"));
  CHECK(std::count_if(nv.begin(), nv.end(), [](const kf::LinearConfig& c) { return c.kind == kf::LinearKind::skinny; }) ==
        5 * (20 + 18 + 14) + 40 + 48);
  CHECK(std::count_if(nv.begin(), nv.end(), [](const kf::LinearConfig& c) {
          return c.kind == kf::LinearKind::skinny && c.split_k > 1 && c.block_m * c.block_n < c.warps * 32;
        }) == 4);
  // Per-channel: one scale per column, so every split into whole spans: the same
  // configs (group 128 now takes the slices of half a group too).
  const auto ch = kf::enumerate_linear_configs({2048, 4096, 0, true, false}, kf::arch_info("sm_90a"));
  CHECK(std::count_if(ch.begin(), ch.end(), [](const kf::LinearConfig& c) { return c.kind == kf::LinearKind::skinny; }) ==
        5 * (20 + 18 + 14) + 40 + 48);
}

TEST_CASE("arch table") {
  CHECK(kf::supported_archs() == std::vector<std::string>{"gfx1151", "gfx1100", "gfx942", "sm_90a"});
  const kf::ArchInfo& rdna = kf::arch_info("gfx1151");
  CHECK(rdna.name == "gfx1151");
  CHECK(rdna.vendor == kf::Vendor::amd);
  CHECK(rdna.wave_size == 32);
  CHECK(rdna.mma == "v_wmma");
  CHECK(kf::arch_info("gfx1100").wave_size == 32);
  CHECK(kf::arch_info("gfx1100").mma == "v_wmma");
  const kf::ArchInfo& cdna = kf::arch_info("gfx942");
  CHECK(cdna.vendor == kf::Vendor::amd);
  CHECK(cdna.wave_size == 64);
  CHECK(cdna.mma == "v_mfma");
  const kf::ArchInfo& hopper = kf::arch_info("sm_90a");
  CHECK(hopper.vendor == kf::Vendor::nvidia);
  CHECK(hopper.wave_size == 32);
}

TEST_CASE("arch_info: unknown arch named with the supported ones") {
  for (const std::string bad : {"gfx90a", "sm_90", "GFX1151", ""}) {
    INFO("arch '" << bad << "'");
    const std::string msg = error_of([&] { kf::arch_info(bad); });
    CHECK(contains(msg, "'" + bad + "'"));
    CHECK(contains(msg, "gfx1151"));
    CHECK(contains(msg, "sm_90a"));
  }
}

TEST_CASE("parse_arch_list") {
  CHECK(kf::parse_arch_list("gfx1151") == std::vector<std::string>{"gfx1151"});
  CHECK(kf::parse_arch_list("gfx1151,sm_90a") == std::vector<std::string>{"gfx1151", "sm_90a"});
  // Duplicates collapse, first occurrence keeps its place.
  CHECK(kf::parse_arch_list("sm_90a,gfx942,sm_90a,gfx942,gfx1100") ==
        std::vector<std::string>{"sm_90a", "gfx942", "gfx1100"});
  std::string msg = error_of([] { kf::parse_arch_list("gfx1151,bogus"); });
  CHECK(contains(msg, "'bogus'"));
  msg = error_of([] { kf::parse_arch_list("gfx1151,,sm_90a"); });
  CHECK(contains(msg, "'gfx1151,,sm_90a'"));
  msg = error_of([] { kf::parse_arch_list(""); });
  CHECK(contains(msg, "--arch"));
}

TEST_CASE("occupancy: gfx1151 (1536 VGPRs/lane, granule 24, 16 waves/SIMD, 4 SIMDs)") {
  const kf::ArchInfo& a = kf::arch_info("gfx1151");
  // 256 threads = 8 waves per block: blocks never limit, registers do.
  CHECK(kf::occupancy(a, res(96), 256) == 16);   // 1536 / 96
  CHECK(kf::occupancy(a, res(97), 256) == 12);   // 97 -> 120, 1536 / 120 = 12.8
  CHECK(kf::occupancy(a, res(120), 256) == 12);
  CHECK(kf::occupancy(a, res(121), 256) == 10);  // -> 144, 10.7
  CHECK(kf::occupancy(a, res(24), 256) == 16);   // capped by the 16 wave slots
  CHECK(kf::occupancy(a, res(0), 256) == 16);
  // Whole workgroups only: 203 -> 216 VGPRs gives 7 waves/SIMD = 28 per WGP, so three
  // 8-wave blocks (24 waves, 6 per SIMD); 256 -> 264 gives 5/SIMD, two blocks, 4 per SIMD.
  CHECK(kf::occupancy(a, res(203), 256) == 6);
  CHECK(kf::occupancy(a, res(256), 256) == 4);
  // A one-wave block still occupies a SIMD (no rounding down to 0).
  CHECK(kf::occupancy(a, res(32, 65536), 32) == 1);
  // LDS: 128 KiB per WGP, 64 KiB per workgroup; 4 waves per block spread over 4 SIMDs.
  CHECK(kf::occupancy(a, res(32, 32768), 128) == 4);   // 4 blocks * 4 waves / 4 SIMDs
  CHECK(kf::occupancy(a, res(32, 65536), 128) == 2);   // 2 blocks
  CHECK(kf::occupancy(a, res(32, 18432), 128) == 7);   // 7 blocks
  CHECK(kf::occupancy(a, res(32, 65537), 128) == 0);   // does not fit at all
  CHECK(kf::occupancy(a, res(32, 0), 0) == 0);         // no threads, no waves
}

TEST_CASE("occupancy: gfx942 (512 VGPRs/lane, granule 8, 8 waves/SIMD, 64 KiB LDS/CU)") {
  const kf::ArchInfo& a = kf::arch_info("gfx942");
  CHECK(kf::occupancy(a, res(64), 256) == 8);
  CHECK(kf::occupancy(a, res(65), 256) == 7);   // 72 -> 7.1
  CHECK(kf::occupancy(a, res(128), 256) == 4);
  CHECK(kf::occupancy(a, res(129), 256) == 3);  // 136 -> 3.8
  CHECK(kf::occupancy(a, res(500), 256) == 1);  // 504
  CHECK(kf::occupancy(a, res(512), 256) == 1);
  CHECK(kf::occupancy(a, res(8), 256) == 8);    // capped by the 8 wave slots
  // LDS: the whole CU has 64 KiB.
  CHECK(kf::occupancy(a, res(32, 32768), 256) == 2);   // 2 blocks * 4 waves / 4 SIMDs
  CHECK(kf::occupancy(a, res(104, 18432), 256) == 3);  // 3 blocks; registers allow 4
  CHECK(kf::occupancy(a, res(32, 65536), 256) == 1);
  CHECK(kf::occupancy(a, res(32, 65537), 256) == 0);
}

TEST_CASE("occupancy: sm_90a (64K regs/SM in 256-register warp units, 64 warps, 4 schedulers)") {
  const kf::ArchInfo& a = kf::arch_info("sm_90a");
  // 256 threads = 8 warps per block.
  CHECK(kf::occupancy(a, res(32), 256) == 16);   // 1024/warp -> 64 warps -> 8 blocks
  CHECK(kf::occupancy(a, res(33), 256) == 12);   // 1056 -> 1280/warp -> 51 warps -> 6 blocks
  CHECK(kf::occupancy(a, res(40), 256) == 12);   // 1280/warp exactly
  CHECK(kf::occupancy(a, res(41), 256) == 10);   // 1312 -> 1536 -> 42 warps -> 5 blocks
  CHECK(kf::occupancy(a, res(128), 256) == 4);   // 4096/warp -> 16 warps -> 2 blocks
  CHECK(kf::occupancy(a, res(255), 128) == 2);   // 8160 -> 8192 -> 8 warps -> 2 blocks of 4
  CHECK(kf::occupancy(a, res(255), 1024) == 0);  // 32 warps need 256K registers
  CHECK(kf::occupancy(a, res(16), 32) == 8);     // 1-warp blocks: 32 blocks/SM limit
  CHECK(kf::occupancy(a, res(96, 18432), 128) == 5);   // 3072/warp -> 21 warps -> 5 blocks
  // Shared memory: 228 KiB per SM; static allocations at most 48 KiB per block.
  CHECK(kf::occupancy(a, res(32, 40000), 128) == 5);   // 5 blocks * 4 warps / 4
  CHECK(kf::occupancy(a, res(32, 49152), 128) == 4);   // 233472 / 49152 = 4 blocks
  CHECK(kf::occupancy(a, res(32, 49153), 128) == 0);
  CHECK(kf::occupancy(a, res(32), 0) == 0);
}

// autotune hands genkernels the names a pack lacks; after a template change that is
// thousands of names, which a regex alternation of them cannot hold.
TEST_CASE("run_genkernels: an exact name list selects those kernels, however many") {
  TempDir tmp;
  kf::GenOptions opt;
  opt.archs = {"sm_90a"};
  opt.out_dir = tmp.path.string();
  opt.list_only = true;
  std::ostringstream all, err;
  kf::run_genkernels(opt, all, err);
  std::vector<std::string> names;
  std::istringstream lines(all.str());
  for (std::string arch, name; lines >> arch >> name && arch == "sm_90a"; lines.ignore(1 << 20, '\n'))
    if (names.size() % 2 == 0 || name.find("_decode_") != std::string::npos) names.push_back(name);
  REQUIRE(names.size() > 1000);
  opt.names = names;
  std::ostringstream some;
  kf::run_genkernels(opt, some, err);
  std::set<std::string> listed;
  std::istringstream again(some.str());
  for (std::string arch, name; again >> arch >> name && arch == "sm_90a"; again.ignore(1 << 20, '\n'))
    listed.insert(name);
  CHECK(listed == std::set<std::string>(names.begin(), names.end()));
  // With a filter both must match.
  opt.filter = "_decode_";
  std::ostringstream both;
  kf::run_genkernels(opt, both, err);
  CHECK(contains(both.str(), "_decode_"));
  CHECK_FALSE(contains(both.str(), "_prefill_"));
}

}  // TEST_SUITE

TEST_CASE("the wgmma kind's split-K: one thread-block cluster per tile, no workspace, tiles that fit the ring") {
  const kf::LinearShape s{2048, 4096, 128, true, false};
  const kf::ArchInfo& hopper = kf::arch_info("sm_90a");
  const kf::LinearConfig split{kf::LinearKind::wgmma, 64, 128, 64, 8, 2, 4};
  const kf::Candidate c = kf::make_linear_candidate(s, split, hopper);
  CHECK(c.params.at("cluster") == "__cluster_dims__(1, 1, 2)");
  CHECK(kf::make_linear_candidate(s, {kf::LinearKind::wgmma, 64, 128, 64, 8, 1, 4}, hopper).params.at("cluster") == "");
  // Its blocks sum on chip: no scratch, unlike the prefill kind's split.
  CHECK(kf::linear_workspace_floats(s, split, 256) == 0);
  CHECK(kf::linear_counter_ints(s, split, 256) == 0);
  CHECK(kf::linear_workspace_floats(s, {kf::LinearKind::prefill, 64, 128, 64, 4, 2, 2}, 256) == 2 * 256 * 2048);

  namespace wg = kf::w4a16::wgmma;
  CHECK(wg::valid(2048, 4096, 128, 64, 128, 64, 8, 4, false, 8));   // 8 row groups, 8 blocks
  CHECK_FALSE(wg::valid(2048, 4096, 128, 64, 128, 64, 8, 4, false, 16));  // a cluster has at most 8
  CHECK_FALSE(wg::valid(2048, 4096, 128, 64, 128, 64, 8, 4, false, 3));   // 8 row groups over 3 ranks
  // The fp32 tile (256 x 128 x 4 bytes) must fit the ring it reuses: 3 stages of 64 k
  // (~37 KiB each) do not hold it, 4 do.
  CHECK(wg::valid(2048, 4096, 128, 256, 128, 64, 8, 3, false, 1));
  CHECK_FALSE(wg::valid(2048, 4096, 128, 256, 128, 64, 8, 3, false, 2));
  CHECK(wg::valid(2048, 4096, 128, 256, 128, 64, 8, 4, false, 2));
}
