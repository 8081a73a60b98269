// The mxfp4_moe family on the host: names and keys, what shapes and configs it accepts,
// its candidate space per arch, and the gpt-oss models that list its shapes.
#include <doctest/doctest.h>

#include "test_util.h"

#include <set>

#include "arch.h"
#include "error.h"
#include "genkernels.h"
#include "model.h"
#include "mxfp4_family.h"
#include "mxfp4_moe/tiling.h"

namespace {

using namespace kf_test;

kf::Mxfp4MoeShape gate_up() { return {1, 128, 4, 5760, 2880, true}; }

}  // namespace

TEST_SUITE("mxfp4 family") {

TEST_CASE("shape and config keys round-trip and name the kernel") {
  const kf::Mxfp4MoeShape s = gate_up();
  CHECK(s.op() == "mxfp4_moe_gemm1");
  CHECK(s.key() == "e128_topk4_n5760_k2880_swiglu");
  const kf::Mxfp4Config c{16, 96, 64, 4, 3, 1};
  CHECK(c.key() == "bm16_bn96_bk64_w4_s3_ep1");
  CHECK(kf::mxfp4_kernel_name(s, c) == "mxfp4_moe_gemm1_e128_topk4_n5760_k2880_swiglu_bm16_bn96_bk64_w4_s3_ep1");
  const kf::Mxfp4MoeShape down = kf::parse_mxfp4_shape("mxfp4_moe_gemm2", "e32_topk4_n2880_k2880");
  CHECK(down.gemm == 2);
  CHECK(down.experts == 32);
  CHECK_FALSE(down.swiglu);
  CHECK(kf::parse_mxfp4_shape(s.op(), s.key()).key() == s.key());
  CHECK(kf::parse_mxfp4_config(c.key()) == c);
  CHECK_THROWS_WITH_AS(kf::parse_mxfp4_shape("mxfp4_moe_gemm3", s.key()), doctest::Contains("mxfp4_moe_gemm3"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::parse_mxfp4_config("bm16_bn96_bk64_w4_s3"), doctest::Contains("bm16_bn96_bk64_w4_s3"), kf::Error);
}

TEST_CASE("the decode kind: its own name, rules and kernel template") {
  kf::Mxfp4Config c{4, 32, 32, 4, 1, 1};
  c.decode = true;
  CHECK(kf::mxfp4_kernel_name(gate_up(), c) == "mxfp4_moe_gemm1_decode_e128_topk4_n5760_k2880_swiglu_bm4_bn32_bk32_w4_s1_ep1");
  CHECK(kf::parse_mxfp4_config(c.key(), "decode") == c);
  CHECK_FALSE(kf::parse_mxfp4_config(c.key(), "mma") == c);
  CHECK_THROWS_WITH_AS(kf::parse_mxfp4_config(c.key(), "gemv"), doctest::Contains("'gemv'"), kf::Error);
  const kf::ArchInfo& sm90 = kf::arch_info("sm_90a");
  CHECK(kf::mxfp4_config_problem(gate_up(), c, sm90).empty());
  const kf::Candidate cand = kf::make_mxfp4_candidate(gate_up(), c, sm90);
  CHECK(cand.kind == "decode");
  CHECK(cand.instance == "mxfp4_moe/gemv.cu.in");
  CHECK_FALSE(cand.needs_mma);
  CHECK(cand.params.count("stages") == 0);
  // Over 8 slots per block, or a weight row spread over more than half a wave.
  kf::Mxfp4Config wide = c;
  wide.block_m = 16;
  CHECK(kf::mxfp4_config_problem(gate_up(), wide, sm90).find("decode rules") != std::string::npos);
  kf::Mxfp4Config thin = c;
  thin.block_n = 2;
  CHECK_FALSE(kf::mxfp4_config_problem(gate_up(), thin, sm90).empty());
  int decode = 0;
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), sm90)) decode += x.decode;
  CHECK(decode >= 12);
}

TEST_CASE("bad shapes are named: K not a multiple of 32, top_k > E, SwiGLU on gemm2") {
  CHECK_NOTHROW(kf::validate_mxfp4_shape(gate_up(), "experts.gate_up_proj"));
  CHECK_THROWS_WITH_AS(kf::validate_mxfp4_shape({1, 128, 4, 5760, 2890, true}, "l"), doctest::Contains("K = 2890"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::validate_mxfp4_shape({1, 4, 8, 5760, 2880, true}, "l"), doctest::Contains("top_k = 8"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::validate_mxfp4_shape({2, 128, 4, 2880, 2880, true}, "l"), doctest::Contains("gemm1"), kf::Error);
  CHECK_THROWS_WITH_AS(kf::validate_mxfp4_shape({1, 2048, 4, 5760, 2880, true}, "l"), doctest::Contains("E = 2048"), kf::Error);
}

TEST_CASE("every arch enumerates valid, distinct configs from decode to prefill block sizes") {
  for (const auto& name : kf::supported_archs()) {
    const kf::ArchInfo& arch = kf::arch_info(name);
    for (const kf::Mxfp4MoeShape& s : {gate_up(), kf::Mxfp4MoeShape{2, 128, 4, 2880, 2880, false}}) {
      INFO(name << " " << s.key());
      const auto configs = kf::enumerate_mxfp4_configs(s, arch);
      REQUIRE_FALSE(configs.empty());
      std::set<std::string> keys;
      std::set<int> block_m;
      for (const auto& c : configs) {
        CHECK(kf::mxfp4_config_problem(s, c, arch).empty());
        CHECK(s.n % c.block_n == 0);
        CHECK(s.k % c.block_k == 0);
        CHECK(kf::mxfp4::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, c.subtiles) <= arch.max_lds_per_block);
        keys.insert(c.key());
        block_m.insert(c.block_m);
        CHECK(kf::make_mxfp4_candidate(s, c, arch).threads == c.warps * arch.wave_size);
      }
      CHECK(keys.size() == configs.size());
      CHECK(block_m.count(16));
      CHECK(block_m.count(64));
    }
  }
  // 2880 = 64 x 45: a 128-wide column block cannot tile gpt-oss's down projection.
  CHECK_FALSE(kf::mxfp4_config_problem({2, 128, 4, 2880, 2880, false}, {16, 128, 64, 4, 2, 1}, kf::arch_info("sm_90a")).empty());
}

TEST_CASE("gpt-oss models list MXFP4 experts; genkernels emits them with the routing helpers") {
  for (const char* name : {"gpt-oss-120b", "gpt-oss-20b"}) {
    const kf::ModelDesc m = kf::builtin_model(name);
    REQUIRE(m.moe.size() == 2);
    CHECK(m.moe[0].mxfp4);
    CHECK(m.moe[0].swiglu);
    CHECK(m.moe[0].n == 5760);
    CHECK(m.moe[1].k == 2880);
  }
  CHECK(kf::builtin_model("gpt-oss-120b").moe[0].experts == 128);
  CHECK(kf::builtin_model("gpt-oss-20b").moe[0].experts == 32);

  TempDir tmp;
  kf::GenOptions opt;
  opt.archs = {"sm_90a"};
  opt.model = "gpt-oss-120b";
  opt.ops = {"mxfp4_moe"};
  opt.out_dir = tmp.path.string();
  opt.list_only = true;
  std::ostringstream out, err;
  kf::run_genkernels(opt, out, err);
  CHECK(contains(out.str(), "mxfp4_moe_gemm1_e128_topk4_n5760_k2880_swiglu_bm16_"));
  CHECK(contains(out.str(), "mxfp4_moe_gemm2_e128_topk4_n2880_k2880_bm64_"));
  CHECK(contains(out.str(), "moe_align_any"));
  CHECK(contains(out.str(), "moe_sum_any_bf16"));
  CHECK_FALSE(contains(out.str(), "w4a16_moe_gemm"));
}

}  // TEST_SUITE
