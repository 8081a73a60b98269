// The w4a16_moe family on the host: names and keys, what shapes it accepts, its
// candidate space, and the buffer sizes of the kernel ABI (templates/w4a16_moe/launch.h).
#include <doctest/doctest.h>

#include "test_util.h"

#include <set>

#include "arch.h"
#include "error.h"
#include "moe_family.h"
#include "moe_routing.h"
#include "w4a16_linear/tiling.h"
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
      int decode = 0, prefill = 0;
      for (const auto& c : configs) {
        const kf::Candidate cand = kf::make_moe_candidate(s, c, info);
        CHECK(names.insert(cand.name).second);
        CHECK(cand.op == s.op());
        CHECK(cand.shape == s.key());
        CHECK(cand.params.at("gemm") == std::to_string(s.gemm));
        CHECK(cand.params.at("name") == cand.name);
        if (c.kind == kf::LinearKind::decode) {
          ++decode;
          CHECK(c.block_m <= 8);
          CHECK(kf::w4a16::decode_valid(int(s.n), int(s.k), 128, c.block_n, c.block_k, c.warps * info.wave_size, c.split_k));
          CHECK(cand.instance == "w4a16_moe/gemm_decode.cu.in");
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
    }
  }
}

TEST_CASE("the helper kernels: one align per arch, silu_mul and sum per dtype") {
  const kf::ArchInfo& info = kf::arch_info("sm_90a");
  const kf::Candidate align = kf::make_moe_align_candidate(info);
  CHECK(align.name == "moe_align_any");
  CHECK(align.op == "moe_align");
  CHECK(align.threads == kf::moe::kAlignThreads);
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
}

}  // TEST_SUITE
