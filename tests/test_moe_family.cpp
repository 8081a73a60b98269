// The w4a16_moe family on the host: names and keys, what shapes it accepts, its
// candidate space, and the buffer sizes of the kernel ABI (templates/w4a16_moe/launch.h).
#include <doctest/doctest.h>

#include "test_util.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "arch.h"
#include "error.h"
#include "moe_family.h"
#include "moe_routing.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/tiling.h"
#include "w4a16_linear/wgmma_tiling.h"
#include "w4a16_moe/launch.h"

namespace {

using namespace kf_test;

kf::MoeShape qwen_gate_up() { return {1, 256, 8, 1024, 2048, 128, true, false}; }

}  // namespace

TEST_SUITE("moe family") {

TEST_CASE("shape keys and kernel names carry E, top_k, N, K, group, dtype and quantisation") {
  const kf::MoeShape s = qwen_gate_up();
  CHECK(s.op() == "w4a16_moe_gemm1");
  CHECK(s.key() == "e256_topk8_n1024_k2048_g128_bf16_sym");
  kf::LinearConfig cfg{kf::LinearKind::prefill, 32, 64, 32, 4, 1, 2};
  CHECK(kf::moe_kernel_name(s, cfg) == "w4a16_moe_gemm1_prefill_e256_topk8_n1024_k2048_g128_bf16_sym_bm32_bn64_bk32_w4_sk1_s2");
  // The skinny kind over routed rows: its own instance file, the MoE epilogue flags.
  const kf::Candidate sk =
      kf::make_moe_candidate(s, {kf::LinearKind::skinny, 16, 64, 32, 4, 1, 1, true}, kf::arch_info("sm_90a"));
  CHECK(sk.name == "w4a16_moe_gemm1_skinny_e256_topk8_n1024_k2048_g128_bf16_sym_bm16_bn64_bk32_w4_sk1_s1_silu");
  CHECK(sk.instance == "w4a16_moe/gemm_skinny.cu.in");
  CHECK(sk.params.at("silu") == "true");
  CHECK(sk.params.at("red") == "false");
  CHECK(sk.params.at("gemm") == "1");
  CHECK(sk.needs_mma);

  const kf::MoeShape down = kf::parse_moe_shape("w4a16_moe_gemm2", "e128_topk4_n2880_k2880_gch_fp16_asym");
  CHECK(down.gemm == 2);
  CHECK(down.experts == 128);
  CHECK(down.top_k == 4);
  CHECK(down.n == 2880);
  CHECK(down.k == 2880);
  CHECK(down.group == 0);
  CHECK_FALSE(down.bf16);
  CHECK(down.asym);
  CHECK(down.key() == "e128_topk4_n2880_k2880_gch_fp16_asym");

  CHECK_THROWS_WITH_AS(kf::parse_moe_shape("w4a16_moe_gemm3", s.key()), doctest::Contains("w4a16_moe_gemm3"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::parse_moe_shape("w4a16_moe_gemm1", "e256_n1024_k2048_g128_bf16_sym"),
                       doctest::Contains("e256_n1024"), kf::Error);
}

TEST_CASE("shapes the family cannot do are refused, naming the value") {
  kf::MoeShape s = qwen_gate_up();
  CHECK_NOTHROW(kf::validate_moe_shape(s, "experts.gate_up_proj"));
  s.top_k = 300;
  CHECK_THROWS_WITH_AS(kf::validate_moe_shape(s, "experts.gate_up_proj"), doctest::Contains("top_k = 300"), kf::Error);
  s = qwen_gate_up();
  s.experts = 2048;
  s.top_k = 8;
  CHECK_THROWS_WITH_AS(kf::validate_moe_shape(s, "l"), doctest::Contains("E = 2048"), kf::Error);
  s = qwen_gate_up();
  s.n = 1000;
  CHECK_THROWS_WITH_AS(kf::validate_moe_shape(s, "l"), doctest::Contains("N = 1000"), kf::Error);
  s = qwen_gate_up();
  s.group = 96;
  CHECK_THROWS_WITH_AS(kf::validate_moe_shape(s, "l"), doctest::Contains("group size 96"), kf::Error);
}

TEST_CASE("every candidate is one the templates accept, distinct, with both kinds") {
  for (const char* arch : {"gfx1151", "gfx1100", "gfx942", "sm_90a"}) {
    const kf::ArchInfo& info = kf::arch_info(arch);
    for (const kf::MoeShape& s : {qwen_gate_up(), kf::MoeShape{2, 256, 8, 2048, 512, 128, true, false}}) {
      INFO(arch << " " << s.op() << " " << s.key());
      const auto configs = kf::enumerate_moe_configs(s, info);
      std::set<std::string> names;
      int decode = 0, skinny = 0, prefill = 0, wgmma = 0;
      for (const auto& c : configs) {
        const kf::Candidate cand = kf::make_moe_candidate(s, c, info);
        CHECK(names.insert(cand.name).second);
        CHECK(cand.op == s.op());
        CHECK(cand.shape == s.key());
        CHECK(cand.params.at("gemm") == std::to_string(s.gemm));
        CHECK(cand.params.at("name") == cand.name);
        CHECK(cand.params.at("silu") == (c.silu ? "true" : "false"));
        CHECK(cand.params.at("red") == (c.red ? "true" : "false"));
        CHECK(cand.config == c.key());
        if (c.kind == kf::LinearKind::decode) {
          ++decode;
          CHECK(c.block_m <= 8);
          CHECK(kf::w4a16::decode_valid(int(s.n), int(s.k), 128, c.block_n, c.block_k, c.warps * info.wave_size, c.split_k));
          CHECK(cand.instance == "w4a16_moe/gemm_decode.cu.in");
        } else if (c.kind == kf::LinearKind::skinny) {
          ++skinny;
          CHECK(info.vendor == kf::Vendor::nvidia);
          CHECK(cand.needs_mma);
          CHECK((c.block_m == 16 || c.block_m == 8));  // 8: the swapped form
          CHECK(kf::w4a16::skinny::valid(int(s.n), int(s.k), 128, c.block_n, c.warps, c.split_k, c.stages, c.block_m));
          CHECK(cand.instance == "w4a16_moe/gemm_skinny.cu.in");
        } else if (c.kind == kf::LinearKind::wgmma) {
          ++wgmma;
          CHECK(info.warpgroup_mma);
          CHECK(cand.needs_mma);
          CHECK((c.block_m == 16 || c.block_m == 32 || c.block_m == 64 || c.block_m == 128));
          CHECK(kf::w4a16::wgmma::valid(int(s.n), int(s.k), 128, c.block_m, c.block_n, c.block_k, c.warps, c.stages,
                                        s.asym));
          CHECK(cand.dynamic_shared ==
                kf::w4a16::wgmma::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, s.asym));
          CHECK(cand.instance == "w4a16_moe/gemm_wgmma.cu.in");
        } else {
          ++prefill;
          CHECK(cand.needs_mma);
          CHECK(kf::w4a16::prefill_valid(int(s.n), int(s.k), 128, c.block_m, c.block_n, c.block_k, c.warps, c.split_k));
          if (c.stages >= 3)
            CHECK(kf::w4a16::prefill_pipelined_valid(int(s.n), int(s.k), 128, c.block_m, c.block_n, c.block_k, c.warps,
                                                     c.split_k, c.stages, s.asym, info.wave_size,
                                                     info.max_lds_per_block));
          CHECK(cand.instance == "w4a16_moe/gemm_prefill.cu.in");
        }
      }
      CHECK(prefill > 0);
      if (info.wave_size == 32) CHECK(decode > 0);
      CHECK((skinny > 0) == (info.vendor == kf::Vendor::nvidia));
      CHECK((wgmma > 0) == info.warpgroup_mma);
    }
  }
}

TEST_CASE("fused SiLU gemm1: the _silu key suffix round-trips and names say what ran") {
  const kf::MoeShape s = qwen_gate_up();
  kf::LinearConfig cfg{kf::LinearKind::decode, 1, 64, 64, 4, 1, 1};
  cfg.silu = true;
  CHECK(cfg.key() == "bm1_bn64_bk64_w4_sk1_s1_silu");
  CHECK(kf::moe_kernel_name(s, cfg) == "w4a16_moe_gemm1_decode_e256_topk8_n1024_k2048_g128_bf16_sym_bm1_bn64_bk64_w4_sk1_s1_silu");
  const kf::LinearConfig back = kf::parse_linear_config("decode", cfg.key());
  CHECK(back.silu);
  CHECK(back == cfg);
  CHECK_FALSE(kf::parse_linear_config("decode", "bm1_bn64_bk64_w4_sk1_s1").silu);
  CHECK_FALSE(back == kf::parse_linear_config("decode", "bm1_bn64_bk64_w4_sk1_s1"));
  for (const char* bad : {"bm1_bn64_bk64_w4_sk1_s1_silu_silu", "bm1_bn64_bk64_w4_sk1_s1silu", "bm1_bn64_bk64_w4_sk1_s1_SILU",
                          "bm1_bn64_bk64_w4_sk1_silu_s1", "bm1_bn64_bk64_w4_sk1_s1_"})
    CHECK_THROWS_AS(kf::parse_linear_config("decode", bad), kf::Error);
  // Only gemm1 (gate_up) gets it; w4a16_linear never does.
  const kf::ArchInfo& info = kf::arch_info("sm_90a");
  const kf::Candidate c = kf::make_moe_candidate(s, cfg, info);
  CHECK(c.name == kf::moe_kernel_name(s, cfg));
  CHECK(c.config == cfg.key());
  CHECK(c.params.at("silu") == "true");
  CHECK(c.params.at("block_n") == "64");
  const kf::MoeShape down{2, 256, 8, 2048, 512, 128, true, false};
  CHECK_THROWS_WITH_AS(kf::make_moe_candidate(down, cfg, info), doctest::Contains("w4a16_moe_gemm1 only"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::make_linear_candidate(s.expert(), cfg, info), doctest::Contains("w4a16_moe_gemm1"), kf::Error);
}

TEST_CASE("fused SiLU gemm1: every decode config and the prefetching prefill ones get a twin; gemm2 none") {
  for (const char* arch : {"gfx1151", "gfx942", "sm_90a"}) {
    const kf::ArchInfo& info = kf::arch_info(arch);
    for (bool asym : {false, true}) {
      kf::MoeShape s = qwen_gate_up();
      s.asym = asym;
      INFO(arch << " " << s.key());
      const auto configs = kf::enumerate_moe_configs(s, info);
      std::set<std::string> unfused;
      int fused_decode = 0, fused_prefill = 0, decode = 0;
      for (const auto& c : configs)
        if (!c.silu) {
          unfused.insert(std::string(kf::kind_name(c.kind)) + " " + c.key());
          decode += c.kind == kf::LinearKind::decode;
        }
      for (const auto& c : configs) {
        if (!c.silu) continue;
        kf::LinearConfig twin = c;
        twin.silu = false;
        CHECK(unfused.count(std::string(kf::kind_name(c.kind)) + " " + twin.key()));
        if (c.kind == kf::LinearKind::decode) {
          ++fused_decode;
          CHECK(kf::w4a16::decode_silu_valid(int(s.n), c.block_n));
        } else if (c.kind == kf::LinearKind::skinny) {
          CHECK(c.block_n / 2 % 32 == 0);  // whole 32-column chunks of gate and of up
        } else if (c.kind == kf::LinearKind::wgmma) {
          CHECK(info.warpgroup_mma);
          CHECK(c.block_n / 2 % 32 == 0);  // gate and up halves of whole zero-point chunks
        } else {
          ++fused_prefill;
          CHECK(c.stages >= 2);
          CHECK(kf::w4a16::prefill_silu_valid(int(s.n), c.block_m, c.block_n, c.warps, c.stages, s.asym));
          // The split the kernel takes gives every warp an even number of atoms along N.
          const int wm = kf::w4a16::prefill_warps_m(c.block_m, c.block_n, c.warps, true);
          REQUIRE(wm > 0);
          CHECK(c.block_n / (c.warps / wm) / 16 % 2 == 0);
        }
      }
      CHECK(fused_decode == decode);
      CHECK(fused_prefill > 0);
      for (const auto& c : kf::enumerate_moe_configs({2, 256, 8, 2048, 512, 128, true, asym}, info)) CHECK_FALSE(c.silu);
    }
  }
}

TEST_CASE("top_k-reducing gemm2: the _red key suffix round-trips and is gemm2's alone") {
  const kf::MoeShape down{2, 256, 8, 2048, 512, 128, true, false};
  kf::LinearConfig cfg{kf::LinearKind::prefill, 32, 128, 64, 4, 2, 4};
  cfg.red = true;
  CHECK(cfg.key() == "bm32_bn128_bk64_w4_sk2_s4_red");
  CHECK(kf::moe_kernel_name(down, cfg) ==
        "w4a16_moe_gemm2_prefill_e256_topk8_n2048_k512_g128_bf16_sym_bm32_bn128_bk64_w4_sk2_s4_red");
  const kf::LinearConfig back = kf::parse_linear_config("prefill", cfg.key());
  CHECK(back.red);
  CHECK_FALSE(back.silu);
  CHECK(back == cfg);
  CHECK_FALSE(kf::parse_linear_config("prefill", "bm32_bn128_bk64_w4_sk2_s4").red);
  for (const char* bad : {"bm32_bn128_bk64_w4_sk2_s4_red_red", "bm32_bn128_bk64_w4_sk2_s4_silu_red",
                          "bm32_bn128_bk64_w4_sk2_s4_red_silu", "bm32_bn128_bk64_w4_sk2_s4red"})
    CHECK_THROWS_AS(kf::parse_linear_config("prefill", bad), kf::Error);
  const kf::ArchInfo& info = kf::arch_info("sm_90a");
  const kf::Candidate c = kf::make_moe_candidate(down, cfg, info);
  CHECK(c.name == kf::moe_kernel_name(down, cfg));
  CHECK(c.config == cfg.key());
  CHECK(c.params.at("red") == "true");
  CHECK(c.params.at("silu") == "false");
  CHECK(c.params.at("stages") == "4");
  CHECK_THROWS_WITH_AS(kf::make_moe_candidate(qwen_gate_up(), cfg, info), doctest::Contains("w4a16_moe_gemm2 only"),
                       kf::Error);
  CHECK_THROWS_WITH_AS(kf::make_linear_candidate(down.expert(), cfg, info), doctest::Contains("w4a16_moe_gemm2"),
                       kf::Error);
}

TEST_CASE("top_k-reducing gemm2: every decode config and the prefetching prefill ones get a twin; gemm1 none") {
  for (const char* arch : {"gfx1151", "gfx942", "sm_90a"}) {
    const kf::ArchInfo& info = kf::arch_info(arch);
    for (bool asym : {false, true}) {
      const kf::MoeShape s{2, 256, 8, 2048, 512, 128, true, asym};
      INFO(arch << " " << s.key());
      const auto configs = kf::enumerate_moe_configs(s, info);
      std::set<std::string> plain;
      int decode = 0, prefetching = 0, red_decode = 0, red_prefill = 0;
      for (const auto& c : configs)
        if (!c.red) {
          plain.insert(std::string(kf::kind_name(c.kind)) + " " + c.key());
          decode += c.kind == kf::LinearKind::decode;
          prefetching += c.kind == kf::LinearKind::prefill && c.stages >= 2;
        }
      for (const auto& c : configs) {
        CHECK_FALSE(c.silu);
        if (!c.red) continue;
        kf::LinearConfig twin = c;
        twin.red = false;
        CHECK(plain.count(std::string(kf::kind_name(c.kind)) + " " + twin.key()));
        if (c.kind == kf::LinearKind::decode) {
          ++red_decode;
        } else if (c.kind == kf::LinearKind::wgmma) {
          CHECK(info.warpgroup_mma);
        } else if (c.kind == kf::LinearKind::prefill) {
          ++red_prefill;
          CHECK(c.stages >= 2);
        }
      }
      CHECK(red_decode == decode);
      CHECK(red_prefill == prefetching);
      CHECK(red_prefill > 0);
      kf::MoeShape up = qwen_gate_up();
      up.asym = asym;
      for (const auto& c : kf::enumerate_moe_configs(up, info)) CHECK_FALSE(c.red);
    }
  }
}

TEST_CASE("fused SiLU column map: gate and up runs tile N once, pairs share a block and an output column") {
  // N = 1024 (I = 512) in blocks of 64: decode runs of 32, prefill runs of 16 (two warps
  // of two atoms along N), and 128-wide blocks with runs of 32.
  const int n = 1024;
  for (auto [bn, chunk] : {std::pair{64, 32}, std::pair{64, 16}, std::pair{128, 32}, std::pair{32, 16}}) {
    CAPTURE(bn);
    CAPTURE(chunk);
    std::vector<int> hits(n, 0);
    for (int b = 0; b < n / bn; ++b)
      for (int l = 0; l < bn; ++l) {
        const int col = kf::w4a16::silu_weight_col(n, bn, chunk, b, l);
        REQUIRE(col >= 0);
        REQUIRE(col < n);
        ++hits[col];
        if (l / chunk % 2 == 0) {  // a gate column: its up partner is `chunk` columns on
          CHECK(col < n / 2);
          CHECK(col / (bn / 2) == b);  // the block's own gate columns
          CHECK(kf::w4a16::silu_weight_col(n, bn, chunk, b, l + chunk) == n / 2 + col);
        }
        // Runs keep 4-column (one 16-byte load) groups contiguous.
        if (l % 4 != 0) CHECK(col == kf::w4a16::silu_weight_col(n, bn, chunk, b, l - 1) + 1);
      }
    CHECK(std::count(hits.begin(), hits.end(), 1) == n);
  }
  // Prefill splits: a 64-wide 4-warp tile of 32 rows takes 2 x 2 warps with silu (two
  // atoms each along N) where the plain tile takes 1 x 4; a 16-row one cannot.
  CHECK(kf::w4a16::prefill_warps_m(32, 64, 4) == 1);
  CHECK(kf::w4a16::prefill_warps_m(32, 64, 4, true) == 2);
  CHECK(kf::w4a16::prefill_warps_m(16, 64, 4, true) == 0);
  CHECK_FALSE(kf::w4a16::prefill_silu_valid(1024, 16, 64, 4, 2, false));
  CHECK(kf::w4a16::prefill_silu_valid(1024, 16, 128, 4, 2, false));
  // Pipelined asymmetric stages copy zero points 32 columns at a time: runs of 16 cannot.
  CHECK(kf::w4a16::prefill_silu_valid(1024, 16, 128, 4, 4, false));
  CHECK_FALSE(kf::w4a16::prefill_silu_valid(1024, 16, 128, 4, 4, true));
  CHECK(kf::w4a16::prefill_silu_valid(1024, 16, 128, 4, 2, true));
}

TEST_CASE("the helper kernels: one align per arch, silu_mul and sum per dtype") {
  const kf::ArchInfo& info = kf::arch_info("sm_90a");
  const kf::Candidate align = kf::make_moe_align_candidate(info);
  CHECK(align.name == "moe_align_any");
  CHECK(align.op == "moe_align");
  CHECK(align.threads == kf::moe::kAlignThreads);
  // The cluster form only where thread-block clusters exist.
  const std::vector<kf::Candidate> aligns = kf::make_moe_align_candidates(info);
  REQUIRE(aligns.size() == 2);
  CHECK(aligns[0].name == "moe_align_any");
  CHECK(aligns[1].name == "moe_align_cluster_any");
  CHECK(aligns[1].op == "moe_align");
  CHECK(aligns[1].kind == "align_cluster");
  CHECK(aligns[1].config == "t1024_c8");
  CHECK(aligns[1].params.at("cluster") == "8");
  CHECK(aligns[1].instance == "w4a16_moe/align_cluster.cu.in");
  for (const char* amd : {"gfx1151", "gfx1100", "gfx942"}) {
    const std::vector<kf::Candidate> one = kf::make_moe_align_candidates(kf::arch_info(amd));
    REQUIRE(one.size() == 1);
    CHECK(one[0].name == "moe_align_any");
  }
  CHECK(kf::make_moe_silu_mul_candidate(true, info).name == "moe_silu_mul_any_bf16");
  CHECK(kf::make_moe_sum_candidate(false, info).name == "moe_sum_any_fp16");
  CHECK(kf::make_moe_sum_candidate(false, info).params.at("bf16") == "false");
}

TEST_CASE("sorted capacity covers every routing's padded slots, in whole blocks") {
  for (auto a : kf::all_routing_archetypes())
    for (int64_t t : {1, 2, 3, 16, 100, 1024})
      for (int bm : {1, 4, 16, 64}) {
        const int experts = 64, top_k = 6;
        const auto ids = kf::generate_routing(a, t, experts, top_k, 7 + t);
        const kf::RoutingStats st = kf::routing_stats(ids, t, experts, top_k, bm);
        const int64_t cap = kf::moe::sorted_capacity(t, top_k, experts, bm);
        INFO(kf::routing_archetype_name(a) << " T=" << t << " bm=" << bm);
        CHECK(cap % bm == 0);
        CHECK(cap >= st.padded_slots);
        CHECK(cap < t * top_k + std::min<int64_t>(experts, t * top_k) * bm + bm);
      }
  // One token: its top_k experts, one padded block each, and no more.
  CHECK(kf::moe::sorted_capacity(1, 8, 256, 16) == 8 * 16);
}

TEST_CASE("split-K scratch follows the capacity; unsplit kernels need none") {
  const kf::MoeShape s = qwen_gate_up();
  const kf::LinearConfig sk2{kf::LinearKind::decode, 4, 64, 32, 4, 2, 1};
  const int64_t cap = kf::moe::sorted_capacity(5, 8, 256, 4);
  CHECK(kf::moe_workspace_floats(s, sk2, 5) == 2 * cap * 1024);
  CHECK(kf::moe_counter_ints(s, sk2, 5) == (1024 / 64) * (cap / 4));
  const kf::LinearConfig sk1{kf::LinearKind::prefill, 32, 64, 32, 4, 1, 2};
  CHECK(kf::moe_workspace_floats(s, sk1, 4096) == 0);
  CHECK(kf::moe_counter_ints(s, sk1, 4096) == 0);
  // The skinny kind's split tiles sum within a thread-block cluster.
  const kf::LinearConfig skinny_sk2{kf::LinearKind::skinny, 8, 64, 32, 4, 2, 4};
  CHECK(kf::moe_workspace_floats(s, skinny_sk2, 5) == 0);
  CHECK(kf::moe_counter_ints(s, skinny_sk2, 5) == 0);
  CHECK(kf::make_moe_candidate(s, skinny_sk2, kf::arch_info("sm_90a")).params.at("cluster") == "__cluster_dims__(1, 2, 1)");
  // The MoE wgmma kernels never split, and their template has no cluster placeholder.
  CHECK_FALSE(kf::make_moe_candidate(s, {kf::LinearKind::wgmma, 64, 128, 64, 8, 1, 4}, kf::arch_info("sm_90a"))
                  .params.count("cluster"));
}

}  // TEST_SUITE
