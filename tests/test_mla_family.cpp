// The sparse_mla family on the host: names and keys, what shapes and configs it accepts,
// its candidate space per arch, the scratch formulas of templates/sparse_mla/launch.h,
// and the built-in model that lists its shapes.
#include <doctest/doctest.h>

#include "test_util.h"

#include <set>

#include "arch.h"
#include "error.h"
#include "genkernels.h"
#include "mla_family.h"
#include "model.h"
#include "sparse_mla/launch.h"
#include "sparse_mla/wgmma_tiling.h"

namespace {

using namespace kf_test;

kf::MlaShape h128() { return {128, 2048, 0, true}; }

}  // namespace

TEST_SUITE("mla family") {

TEST_CASE("shape and config keys round-trip and name the kernel") {
  const kf::MlaShape s = h128();
  CHECK(s.key() == "h128_topk2048_x0_bf16");
  const kf::MlaConfig c{32, 16, 8, 4, 2};
  CHECK(c.key() == "bh32_bk16_w8_sp4_s2");
  CHECK(kf::mla_kernel_name(s, c) == "sparse_mla_decode_h128_topk2048_x0_bf16_bh32_bk16_w8_sp4_s2");
  const kf::MlaShape w = kf::parse_mla_shape("h16_topk512_x128_fp16");
  CHECK(w.heads == 16);
  CHECK(w.topk == 512);
  CHECK(w.extras == 128);
  CHECK_FALSE(w.bf16);
  CHECK(kf::parse_mla_config(c.key()) == c);
  CHECK_THROWS_WITH_AS(kf::parse_mla_shape("h128_topk2048_bf16"), doctest::Contains("h128_topk2048_bf16"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::parse_mla_config("bh16_bk16_w4_sp1"), doctest::Contains("bh16_bk16_w4_sp1"), kf::Error);
}

TEST_CASE("unsupported heads, topk and extras are named") {
  CHECK_NOTHROW(kf::validate_mla_shape(h128(), "attn"));
  CHECK_THROWS_WITH_AS(kf::validate_mla_shape({24, 2048, 0, true}, "attn"), doctest::Contains("H = 24"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::validate_mla_shape({512, 2048, 0, true}, "attn"), doctest::Contains("H = 512"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::validate_mla_shape({128, 0, 0, true}, "attn"), doctest::Contains("topk = 0"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::validate_mla_shape({128, 2048, -1, true}, "attn"), doctest::Contains("extras = -1"),
                       kf::Error);
}

TEST_CASE("config rules: heads per block divide H, warps cover the head tiles, shared memory fits") {
  const kf::ArchInfo& sm90 = kf::arch_info("sm_90a");
  const kf::MlaShape s = h128();
  CHECK(kf::mla_config_problem(s, {16, 16, 4, 1, 2}, sm90).empty());
  CHECK(kf::mla_config_problem({16, 2048, 0, true}, {32, 16, 8, 1, 1}, sm90).find("does not divide") != std::string::npos);
  CHECK(kf::mla_config_problem(s, {64, 16, 2, 1, 1}, sm90).find("multiple of block_h / 16") != std::string::npos);
  CHECK(kf::mla_config_problem(s, {16, 24, 4, 1, 1}, sm90).find("block_k") != std::string::npos);
  // Two 32-row KV stages are 74 KB: over the 48 KB of static shared memory on sm_90a.
  CHECK(kf::mla_config_problem(s, {16, 32, 4, 1, 2}, sm90).find("shared memory") != std::string::npos);
  // One head tile over four warps would hold 36 k-steps of Q and 512 output dims each.
  CHECK(kf::mla_config_problem(s, {64, 16, 4, 1, 1}, sm90).find("registers") != std::string::npos);
  CHECK(kf::mla_config_problem(s, {16, 16, 4, 128, 1}, sm90).find("splits") != std::string::npos);
}

TEST_CASE("every arch enumerates valid, distinct configs, splits and stages included") {
  for (const auto& name : kf::supported_archs()) {
    const kf::ArchInfo& arch = kf::arch_info(name);
    for (int64_t heads : {16, 128}) {
      const kf::MlaShape s{heads, 2048, 0, true};
      const auto configs = kf::enumerate_mla_configs(s, arch);
      INFO(name << " H=" << heads);
      REQUIRE_FALSE(configs.empty());
      std::set<std::string> keys, splits;
      for (const auto& c : configs) {
        CHECK(kf::mla_config_problem(s, c, arch).empty());
        if (c.kind == kf::MlaKind::wgmma)
          CHECK(kf::mla_dynamic_shared(c) <= kf::mla::wgmma::kMaxShared);
        else
          CHECK(kf::mla::decode_smem_bytes(c.block_h, c.block_k, c.warps, c.stages) <= arch.max_lds_per_block);
        keys.insert(std::string(kf::mla_kind_name(c.kind)) + " " + c.key());
        splits.insert(std::to_string(c.splits));
        const kf::Candidate cand = kf::make_mla_candidate(s, c, arch);
        CHECK(cand.threads == c.warps * arch.wave_size);
        CHECK(cand.needs_mma);
        CHECK(cand.name == kf::mla_kernel_name(s, c));
      }
      CHECK(keys.size() == configs.size());
      CHECK(splits.size() > 3);
    }
  }
}

TEST_CASE("the wgmma kind: sm_90a only, H a multiple of 64, one tile with its splits, dynamic shared memory") {
  const kf::ArchInfo& sm90 = kf::arch_info("sm_90a");
  kf::MlaConfig c{64, 64, 8, 4, 2};
  c.kind = kf::MlaKind::wgmma;
  CHECK(kf::mla_kernel_name(h128(), c) == "sparse_mla_decode_wgmma_h128_topk2048_x0_bf16_bh64_bk64_w8_sp4_s2");
  CHECK(kf::parse_mla_config(c.key(), "wgmma") == c);
  CHECK_FALSE(kf::parse_mla_config(c.key()) == c);  // the same key read as the decode kind
  CHECK_THROWS_WITH_AS(kf::parse_mla_config(c.key(), "mma"), doctest::Contains("'mma'"), kf::Error);
  CHECK(kf::mla_config_problem(h128(), c, sm90).empty());
  CHECK(kf::mla_config_problem({64, 2048, 128, false}, c, sm90).empty());
  CHECK(kf::mla_config_problem({32, 2048, 0, true}, c, sm90).find("H = 32") != std::string::npos);
  CHECK(kf::mla_config_problem(h128(), c, kf::arch_info("gfx942")).find("sm_90a") != std::string::npos);
  kf::MlaConfig other = c;
  other.block_k = 32;
  CHECK(kf::mla_config_problem(h128(), other, sm90).find("wgmma rules") != std::string::npos);
  // Q and two 64-row stages (3 x 72 KB) plus the exchange buffers: above the static limit,
  // within the 227 KB a block may opt in to.
  CHECK(kf::mla_dynamic_shared(c) > 3 * 73728);
  CHECK(kf::mla_dynamic_shared(c) <= kf::mla::wgmma::kMaxShared);
  CHECK(kf::mla_dynamic_shared({64, 64, 8, 4, 2}) == 0);
  const kf::Candidate cand = kf::make_mla_candidate(h128(), c, sm90);
  CHECK(cand.kind == "wgmma");
  CHECK(cand.instance == "sparse_mla/decode_wgmma.cu.in");
  CHECK(cand.threads == 256);
  CHECK(cand.dynamic_shared == kf::mla_dynamic_shared(c));
  CHECK(cand.params.count("splits"));
  CHECK_FALSE(cand.params.count("block_k"));

  size_t wgmma_h128 = 0, wgmma_h16 = 0;
  for (const auto& e : kf::enumerate_mla_configs(h128(), sm90)) wgmma_h128 += e.kind == kf::MlaKind::wgmma;
  for (const auto& e : kf::enumerate_mla_configs({16, 2048, 0, true}, sm90)) wgmma_h16 += e.kind == kf::MlaKind::wgmma;
  CHECK(wgmma_h128 == 6);  // splits 1 .. 32
  CHECK(wgmma_h16 == 0);
  for (const auto& e : kf::enumerate_mla_configs(h128(), kf::arch_info("gfx1100"))) CHECK(e.kind == kf::MlaKind::decode);
}

TEST_CASE("split scratch: partial outputs and lse per split, none unsplit") {
  const kf::MlaShape s = h128();
  CHECK(kf::mla_part_floats(s, {16, 16, 4, 1, 1}, 7) == 0);
  CHECK(kf::mla_part_floats(s, {16, 16, 4, 8, 1}, 7) == 8 * 7 * 128 * 512 + 8 * 7 * 128);
  // Part i of L slots: [floor(i L / n), floor((i + 1) L / n)): contiguous and covering.
  for (int64_t slots : {0, 1, 5, 2048, 2176})
    for (int n : {1, 3, 8, 64}) {
      CHECK(kf::mla::split_begin(slots, 0, n) == 0);
      CHECK(kf::mla::split_begin(slots, n, n) == slots);
      for (int i = 0; i < n; ++i) CHECK(kf::mla::split_begin(slots, i, n) <= kf::mla::split_begin(slots, i + 1, n));
    }
}

TEST_CASE("deepseek-v3.2 lists the MLA buckets; genkernels --list emits them and one combine per dtype") {
  const kf::ModelDesc m = kf::builtin_model("deepseek-v3.2");
  REQUIRE(m.mla.size() == 8);
  std::set<std::string> keys;
  for (const auto& l : m.mla) keys.insert(kf::MlaShape{l.heads, l.topk, l.extras, true}.key());
  CHECK(keys.count("h16_topk2048_x0_bf16"));
  CHECK(keys.count("h128_topk2048_x128_bf16"));

  TempDir tmp;
  kf::GenOptions opt;
  opt.archs = {"sm_90a"};
  opt.model = "deepseek-v3.2";
  opt.ops = {"sparse_mla_decode"};
  opt.out_dir = tmp.path.string();
  opt.list_only = true;
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  CHECK(stats.candidates > 8);
  CHECK(contains(out.str(), "sparse_mla_decode_h128_topk2048_x128_bf16_bh16_bk16_w4_sp1_s2"));
  CHECK(contains(out.str(), "sparse_mla_combine_any_bf16"));
  CHECK_FALSE(contains(out.str(), "w4a16_"));
  CHECK_THROWS_WITH_AS(kf::resolve_ops({"sparse_mla"}), doctest::Contains("'sparse_mla'"), kf::Error);
}

}  // TEST_SUITE
