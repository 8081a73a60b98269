// The mxfp4_moe family on the host: names and keys, what shapes and configs it accepts,
// its candidate space per arch, and the gpt-oss models that list its shapes.
#include <doctest/doctest.h>

#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "arch.h"
#include "error.h"
#include "genkernels.h"
#include "model.h"
#include "mxfp4_family.h"
#include "kf_wgmma_layout.h"
#include "mxfp4_moe/decode_tiling.h"
#include "mxfp4_moe/tiling.h"
#include "mxfp4_moe/wgmma_tiling.h"

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
  c.kind = kf::Mxfp4Kind::decode;
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
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), sm90)) decode += x.kind == kf::Mxfp4Kind::decode;
  CHECK(decode >= 12);
}

TEST_CASE("the wgmma kind: sm_90a only, its name, rules, template and dynamic shared memory") {
  kf::Mxfp4Config c{128, 64, 64, 4, 4, 1};
  c.kind = kf::Mxfp4Kind::wgmma;
  CHECK(kf::mxfp4_kernel_name(gate_up(), c) == "mxfp4_moe_gemm1_wgmma_e128_topk4_n5760_k2880_swiglu_bm128_bn64_bk64_w4_s4_ep1");
  CHECK(kf::parse_mxfp4_config(c.key(), "wgmma") == c);
  const kf::ArchInfo& sm90 = kf::arch_info("sm_90a");
  CHECK(kf::mxfp4_config_problem(gate_up(), c, sm90).empty());
  CHECK(kf::mxfp4_config_problem(gate_up(), c, kf::arch_info("gfx942")).find("sm_90a") != std::string::npos);
  const kf::Candidate cand = kf::make_mxfp4_candidate(gate_up(), c, sm90);
  CHECK(cand.kind == "wgmma");
  CHECK(cand.instance == "mxfp4_moe/gemm_wgmma.cu.in");
  CHECK(cand.needs_mma);
  CHECK(cand.params.count("subtiles") == 0);
  // 4 stages of (128 x 64 x 2 + 64 x 32 + 2 x 64 bytes, rounded to 1 KiB) + the alignment slack.
  CHECK(cand.dynamic_shared == 4 * 19 * 1024 + 1024);
  kf::Mxfp4Config bad = c;
  bad.block_n = 128;  // 8 warps' worth of rows on 4 warps
  CHECK(kf::mxfp4_config_problem(gate_up(), bad, sm90).find("wgmma rules") != std::string::npos);
  bad = c;
  bad.block_k = 128;  // 2880 is not a multiple of 128
  CHECK_FALSE(kf::mxfp4_config_problem(gate_up(), bad, sm90).empty());
  int wgmma = 0;
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), sm90)) wgmma += x.kind == kf::Mxfp4Kind::wgmma;
  CHECK(wgmma >= 12);
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), kf::arch_info("gfx1151")))
    CHECK(x.kind != kf::Mxfp4Kind::wgmma);
}

TEST_CASE("persistent wgmma configs: the _p key, the template flag, a grid of a few blocks per SM") {
  kf::Mxfp4Config c{128, 64, 64, 4, 4, 1};
  c.kind = kf::Mxfp4Kind::wgmma;
  c.persistent = 2;
  CHECK(c.key() == "bm128_bn64_bk64_w4_s4_ep1_p2");
  CHECK(kf::parse_mxfp4_config(c.key(), "wgmma") == c);
  CHECK(kf::parse_mxfp4_config("bm128_bn64_bk64_w4_s4_ep1", "wgmma").persistent == 0);
  CHECK_THROWS_AS(kf::parse_mxfp4_config("bm128_bn64_bk64_w4_s4_ep1_p", "wgmma"), kf::Error);
  const kf::ArchInfo& sm90 = kf::arch_info("sm_90a");
  CHECK(kf::mxfp4_config_problem(gate_up(), c, sm90).empty());
  CHECK(kf::make_mxfp4_candidate(gate_up(), c, sm90).params.at("persistent") == "true");
  c.persistent = 0;
  CHECK(kf::make_mxfp4_candidate(gate_up(), c, sm90).params.at("persistent") == "false");
  kf::Mxfp4Config mma{64, 64, 64, 4, 3, 1};
  mma.persistent = 1;
  CHECK(kf::mxfp4_config_problem(gate_up(), mma, sm90).find("only the wgmma kind") != std::string::npos);
  // 5760 / 64 = 90 column tiles per slot block; 132 SMs x 2 walkers.
  c.persistent = 2;
  const kf::LaunchGrid many = kf::mxfp4_grid(gate_up(), c, 128 * 40, 132);
  CHECK((many.x == 264 && many.y == 1 && many.z == 1));
  const kf::LaunchGrid few = kf::mxfp4_grid(gate_up(), c, 128, 132);  // one slot block: 90 tiles
  CHECK(few.x == 90);
  c.persistent = 0;
  const kf::LaunchGrid plain = kf::mxfp4_grid(gate_up(), c, 128 * 40, 132);
  CHECK((plain.x == 90 && plain.y == 40));
  int persistent = 0;
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), sm90)) persistent += x.persistent > 0;
  CHECK(persistent >= 12);
}

TEST_CASE("split-K decode configs: the _sk key, sm_90a clusters, whole chunks, grid z") {
  kf::Mxfp4Config c{1, 16, 32, 8, 1, 1};
  c.kind = kf::Mxfp4Kind::decode;
  c.split_k = 3;
  CHECK(c.key() == "bm1_bn16_bk32_w8_s1_ep1_sk3");
  CHECK(kf::parse_mxfp4_config(c.key(), "decode") == c);
  CHECK(kf::parse_mxfp4_config("bm1_bn16_bk32_w8_s1_ep1", "decode").split_k == 1);
  CHECK_THROWS_AS(kf::parse_mxfp4_config("bm1_bn16_bk32_w8_s1_ep1_sk1", "decode"), kf::Error);  // 1 has no suffix
  const kf::ArchInfo& sm90 = kf::arch_info("sm_90a");
  CHECK(kf::mxfp4_config_problem(gate_up(), c, sm90).empty());  // K 2880: 90 chunks, 30 per block
  const kf::Candidate cand = kf::make_mxfp4_candidate(gate_up(), c, sm90);
  CHECK(cand.params.at("split_k") == "3");
  CHECK(cand.params.at("cluster") == "__cluster_dims__(1, 1, 3)");
  c.split_k = 1;
  CHECK(kf::make_mxfp4_candidate(gate_up(), c, sm90).params.at("cluster").empty());
  c.split_k = 7;
  CHECK(kf::mxfp4_config_problem(gate_up(), c, sm90).find("must divide K / 32 = 90") != std::string::npos);
  c.split_k = 2;
  CHECK(kf::mxfp4_config_problem(gate_up(), c, kf::arch_info("gfx942")).find("cluster") != std::string::npos);
  kf::Mxfp4Config mma{16, 64, 64, 4, 2, 1};
  mma.split_k = 2;
  CHECK(kf::mxfp4_config_problem(gate_up(), mma, sm90).find("only the decode kind") != std::string::npos);
  // The cluster's blocks go along z; each stages only its K slice of x.
  const kf::LaunchGrid g = kf::mxfp4_grid(gate_up(), c, 4, 132);
  CHECK((g.x == 5760 / 16 && g.y == 4 && g.z == 2));
  CHECK(kf::mxfp4::decode_smem_bytes(1, 16, 2880, 2) < kf::mxfp4::decode_smem_bytes(1, 16, 2880, 1));
  int split_sm90 = 0, split_gfx = 0;
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), sm90)) {
    split_sm90 += x.split_k > 1;
    if (x.split_k > 1) CHECK(x.block_m <= 2);
  }
  for (const auto& x : kf::enumerate_mxfp4_configs(gate_up(), kf::arch_info("gfx1151"))) split_gfx += x.split_k > 1;
  CHECK(split_sm90 >= 8);
  CHECK(split_gfx == 0);
}

// The wgmma kind's raw weight layout (wgmma_tiling.h): every chunk of a stage has its own
// place, the eight row pairs a warp reads at once hit eight different 16-byte bank
// groups, and the copies' fixed bases plus whole passes land where the reads look.
TEST_CASE("wgmma raw weight layout: a bijection, conflict-free reads, copies in passes") {
  for (int bk : {64, 128})
    for (int bn : {64, 128, 192}) {
      CAPTURE(bk);
      CAPTURE(bn);
      const int chunks = bk / 32, units = bn * chunks;
      std::vector<int> seen(units, 0);
      for (int r = 0; r < bn; ++r)
        for (int j = 0; j < chunks; ++j) {
          const int off = kf::mxfp4::wgmma::raw_chunk_offset(r, j, bk);
          REQUIRE(off % 16 == 0);
          REQUIRE(off / 16 < units);
          ++seen[off / 16];
        }
      CHECK(std::count(seen.begin(), seen.end(), 1) == units);
      // A warp's lanes g = 0..7 read rows c0 = 16 w + 2 g (+ 1): one 16-byte chunk each.
      for (int w = 0; w < bn / 16; ++w)
        for (int j = 0; j < chunks; ++j)
          for (int h = 0; h < 2; ++h) {
            std::set<int> slots;
            for (int g = 0; g < 8; ++g) {
              const int c0 = 64 * (w / 4) + 16 * (w % 4) + 2 * g;
              slots.insert(kf::mxfp4::wgmma::raw_chunk_offset(c0 + h, j, bk) / 16 % 8);
            }
            CHECK(slots.size() == 8);
          }
      // Copies: thread tid has chunk tid % chunks of row tid / chunks, then WR rows per pass.
      for (int warps : {4, 8, 12}) {
        const int threads = 32 * warps, wr = threads / chunks;
        if (bn % wr != 0) continue;
        for (int tid = 0; tid < threads; ++tid)
          for (int pass = 0; pass < bn / wr; ++pass) {
            const int r = tid / chunks + pass * wr, j = tid % chunks;
            CHECK(kf::mxfp4::wgmma::raw_chunk_offset(tid / chunks, j, bk) + pass * wr * (bk / 2) ==
                  kf::mxfp4::wgmma::raw_chunk_offset(r, j, bk));
          }
      }
    }
}

// The A registers: the wgmma A fragment (kf_wgmma_layout.h) of lane (g, t) asks, in k16
// step s, for rows 16w + g (+ 8) at k 2t, 2t + 1 (+ 8). The template feeds row c0 (+ 1)
// and byte t of the step's word lo (hi), i.e. bytes 8s + t (+ 4) of the row: k 16s + 2t,
// 16s + 2t + 1 (+ 8), two e2m1 codes per byte with the low nibble first.
TEST_CASE("wgmma A operand: fragment rows and k pairs are the bytes each thread decodes") {
  for (int w = 0; w < 4; ++w)
    for (int lane = 0; lane < 32; ++lane)
      for (int p = 0; p < 4; ++p) {
        const kf::layout::RC rc = kf::wg::a_pair(w, lane, p);
        const int g = lane / 4, t = lane % 4;
        CHECK(rc.row == 16 * w + g + 8 * (p % 2));          // weight row c0 + p % 2 of the warpgroup
        const int byte_in_step = 4 * (p / 2) + t;            // word lo (p < 2) or hi, byte t
        CHECK(rc.col == 2 * byte_in_step);                   // the byte's low nibble: k 2b
      }
}

// The bit-level decode: a byte of two e2m1 codes becomes bf16 bits of the values scaled
// by 2^-126 (exact for all 16 codes, the subnormal 0.5 too); e8m0 becomes 2^(s - 127).
TEST_CASE("wgmma e2m1 and e8m0 bit builds are exact for every code and exponent") {
  auto bf16 = [](uint32_t bits) {
    const uint32_t u = bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return static_cast<double>(f);
  };
  const double e2m1[16] = {0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    CAPTURE(byte);
    const uint32_t nibbles = (byte & 0xFu) | (byte >> 4) << 16;  // what the byte-permute and mask leave
    const uint32_t v = kf::mxfp4::wgmma::e2m1_pair_scaled(nibbles);
    CHECK(bf16(v & 0xFFFFu) * std::ldexp(1.0, 126) == e2m1[byte & 0xF]);
    CHECK(bf16(v >> 16) * std::ldexp(1.0, 126) == e2m1[byte >> 4]);
    CHECK(std::signbit(bf16(v & 0xFFFFu)) == ((byte & 8u) != 0));
  }
  CHECK(bf16(kf::mxfp4::wgmma::kTwoPow126) == std::ldexp(1.0, 126));
  for (uint32_t s = 0; s < 255; ++s) CHECK(bf16(kf::mxfp4::wgmma::e8m0_bf16(s)) == std::ldexp(1.0, static_cast<int>(s) - 127));
  CHECK(std::isnan(bf16(kf::mxfp4::wgmma::e8m0_bf16(255))));
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
        if (c.kind == kf::Mxfp4Kind::wgmma) {
          CHECK(arch.warpgroup_mma);
          CHECK(kf::mxfp4_dynamic_shared(c) <= kf::mxfp4::wgmma::kMaxShared);
        } else {
          CHECK(kf::mxfp4::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, c.subtiles) <= arch.max_lds_per_block);
        }
        keys.insert(kf::mxfp4_kernel_name(s, c));  // kinds share config keys
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
