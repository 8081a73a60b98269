// Runtime MXFP4 MoE selection and checks that need no GPU: each GEMM's winner by T
// range (routing-robust rows only, schema 1 packs too), kf_select by key,
// kf_kernel_block_m, what swiglu = 0 means, untuned and impossible shapes, kernel rows
// the runtime cannot launch, scratch sizes, the single GEMM launch refusing bad inputs
// before it needs a device, and kf_repack_mxfp4_scales. Launch order, grids and the
// layer's bad inputs (nothing launched): tests/runtime_fake_cuda/test_mxfp4_run.cpp.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kforge/kforge.hpp"
#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;

const char* kGemm1 = "e8_topk2_n256_k256_swiglu";  // gate_up: N = 2 I, K = H, SwiGLU fused
const char* kGemm1Plain = "e8_topk2_n256_k256";    // the same without the SwiGLU
const char* kGemm2 = "e8_topk2_n256_k128";         // down: N = H, K = I

kf_mxfp4_moe_shape layer_shape() { return kf_testing::small_mxfp4_shape(); }

struct Mxfp4Pack {
  TempDir dir{"rt-mxfp4"};
  std::string path = dir.file("kforge.sqlite");
  std::string g1_small, g1_large, g1_zipf, g2_small, g2_large;

  explicit Mxfp4Pack(int schema = 2) {
    TestPackBuilder b;
    b.set_schema(schema);
    g1_small = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1");
    g1_large = b.add_mxfp4_kernel(1, kGemm1, "bm64_bn128_bk64_w8_s3_ep1");
    b.add_mxfp4_winner(1, kGemm1, g1_small, 1, 8);
    b.add_mxfp4_winner(1, kGemm1, g1_large, 9, 4096);
    g2_small = b.add_mxfp4_kernel(2, kGemm2, "bm16_bn64_bk64_w4_s2_ep1");
    g2_large = b.add_mxfp4_kernel(2, kGemm2, "bm32_bn128_bk32_w4_s2_ep2");
    b.add_mxfp4_winner(2, kGemm2, g2_small, 1, 16);
    b.add_mxfp4_winner(2, kGemm2, g2_large, 17, 4096);
    if (schema >= 2) {  // a per-archetype winner: evidence, never served
      g1_zipf = b.add_mxfp4_kernel(1, kGemm1, "bm32_bn64_bk64_w4_s2_ep1");
      b.add_mxfp4_winner(1, kGemm1, g1_zipf, 1, 4096, "zipf1");
    }
    b.add_moe_helpers();
    b.add_generic(true, false);
    b.write(path);
  }
};

std::string pick_mxfp4(const kf_db* db, int gemm, int64_t t, kf_mxfp4_moe_shape s = layer_shape()) {
  const kf_kernel* k = nullptr;
  if (kf_select_mxfp4_moe(db, gemm, &s, t, &k) != KF_OK) return "";
  return kf_kernel_name(k);
}

template <class T>
T* fake(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

kf_mxfp4_moe_gemm_args gemm_args(int gemm, int t) {
  kf_mxfp4_moe_gemm_args g{};
  g.x = fake<const void>(0x100000);
  g.weight = fake<const uint8_t>(0x200000);
  g.scales = fake<const uint8_t>(0x300000);
  g.bias = fake<const float>(0x380000);
  g.topk_weights = fake<const float>(0x400000);
  g.sorted_ids = fake<const int32_t>(0x500000);
  g.expert_ids = fake<const int32_t>(0x600000);
  g.num_padded = fake<const int32_t>(0x700000);
  g.y = fake<void>(0x800000);
  g.t = t, g.top_k = 2, g.experts = 8;
  g.n = 256, g.k = gemm == 1 ? 256 : 128;
  return g;
}

}  // namespace

TEST_SUITE("runtime mxfp4") {

TEST_CASE("MXFP4 MoE: each GEMM's winner by T range, from schema 1 and schema 2 packs alike") {
  for (int schema : {1, 2}) {
    CAPTURE(schema);
    Mxfp4Pack p(schema);
    DbPtr db = open_for_arch(p.path);
    CHECK(pick_mxfp4(db.get(), 1, 1) == p.g1_small);
    CHECK(pick_mxfp4(db.get(), 1, 8) == p.g1_small);
    CHECK(pick_mxfp4(db.get(), 1, 9) == p.g1_large);
    CHECK(pick_mxfp4(db.get(), 1, 100000) == p.g1_large);  // above the last range
    CHECK(pick_mxfp4(db.get(), 2, 16) == p.g2_small);
    CHECK(pick_mxfp4(db.get(), 2, 17) == p.g2_large);
    // By key too, through the same ranges and to the same handles.
    const kf_kernel* k = nullptr;
    const kf_kernel* same = nullptr;
    kf_mxfp4_moe_shape s = layer_shape();
    REQUIRE(kf_select(db.get(), "mxfp4_moe_gemm2", kGemm2, 3, &k) == KF_OK);
    REQUIRE(kf_select_mxfp4_moe(db.get(), 2, &s, 3, &same) == KF_OK);
    CHECK(k == same);
    CHECK(kf_kernel_name(k) == p.g2_small);
    CHECK(kf_kernel_is_fallback(k) == 0);
    CHECK(kf_kernel_fuses_silu(k) == 0);
    int bm = 0;
    REQUIRE(kf_kernel_block_m(k, &bm) == KF_OK);
    CHECK(bm == 16);
    REQUIRE(kf_select(db.get(), "mxfp4_moe_gemm1", kGemm1, 9, &k) == KF_OK);
    CHECK(kf_kernel_name(k) == p.g1_large);
    REQUIRE(kf_kernel_block_m(k, &bm) == KF_OK);
    CHECK(bm == 64);
    // No split-K: nothing to size.
    int64_t floats = -1, counters = -1;
    REQUIRE(kf_kernel_workspace(k, 1000, &floats, &counters) == KF_OK);
    CHECK((floats == 0 && counters == 0));
    // The w4a16 sides of the same pack are untouched.
    CHECK(pick(db.get(), 2048, 4096, 3) == "w4a16_linear_generic_any_bf16_sym_bm4_bn128_bk32_w4_sk1_s1");
    kf_moe_shape w4{8, 2, 256, 128, 128, 1, 0};
    CHECK(kf_select_moe(db.get(), 1, &w4, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  }
}

TEST_CASE("MXFP4 MoE: a schema 2 pack serves the routing-robust winners only") {
  Mxfp4Pack p(2);
  DbPtr db = open_for_arch(p.path);
  for (int64_t t : {1, 8, 30, 500}) CHECK(pick_mxfp4(db.get(), 1, t) != p.g1_zipf);
  TempDir dir("rt-mxfp4");
  TestPackBuilder b;
  const std::string z = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1");
  b.add_mxfp4_winner(1, kGemm1, z, 1, 4096, "uniform");
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  DbPtr only = open_for_arch(dir.file("kforge.sqlite"));
  kf_mxfp4_moe_shape s = layer_shape();
  const kf_kernel* k = nullptr;
  CHECK(kf_select_mxfp4_moe(only.get(), 1, &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
}

TEST_CASE("MXFP4 MoE: swiglu = 0 names the unfused gemm1; a layer needs the fused one") {
  TempDir dir("rt-mxfp4");
  TestPackBuilder b;
  const std::string fused = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1");
  const std::string plain = b.add_mxfp4_kernel(1, kGemm1Plain, "bm16_bn128_bk64_w4_s2_ep1");
  b.add_mxfp4_winner(1, kGemm1, fused, 1, 4096);
  b.add_mxfp4_winner(1, kGemm1Plain, plain, 1, 4096);
  b.add_mxfp4_winner(2, kGemm2, b.add_mxfp4_kernel(2, kGemm2, "bm16_bn64_bk64_w4_s2_ep1"), 1, 4096);
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  DbPtr db = open_for_arch(dir.file("kforge.sqlite"));
  kf_mxfp4_moe_shape s = layer_shape();
  CHECK(pick_mxfp4(db.get(), 1, 5, s) == fused);
  s.swiglu = 0;
  CHECK(pick_mxfp4(db.get(), 1, 5, s) == plain);
  CHECK(pick_mxfp4(db.get(), 2, 5, s) == pick_mxfp4(db.get(), 2, 5, layer_shape()));  // gemm2 has no SwiGLU
  s.swiglu = 7;  // any nonzero value is "fused"
  CHECK(pick_mxfp4(db.get(), 1, 5, s) == fused);
  s.swiglu = 0;
  size_t bytes = 0;
  CHECK(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 16, &bytes) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "shape->swiglu = 0"));
  kf_mxfp4_moe_layer_args a{};
  CHECK(kf_run_mxfp4_moe(db.get(), &s, &a, nullptr) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "no separate activation kernel"));

  // A pack with only the fused gemm1: the unfused one is untuned, and says the layer's way.
  Mxfp4Pack p;
  DbPtr only_fused = open_for_arch(p.path);
  const kf_kernel* k = nullptr;
  CHECK(kf_select_mxfp4_moe(only_fused.get(), 1, &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "mxfp4_moe_gemm1 e8_topk2_n256_k256 "));
  CHECK(contains(kf_last_error(), "swiglu = 1"));
}

TEST_CASE("MXFP4 MoE: an untuned shape is unsupported, naming its op and key; impossible ones are invalid") {
  Mxfp4Pack p;
  DbPtr db = open_for_arch(p.path);
  const kf_kernel* k = nullptr;
  kf_mxfp4_moe_shape s = layer_shape();
  s.experts = 16;
  CHECK(kf_select_mxfp4_moe(db.get(), 1, &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "mxfp4_moe_gemm1 e16_topk2_n256_k256_swiglu"));
  CHECK(contains(kf_last_error(), "no generic fallback"));
  CHECK(kf_select(db.get(), "mxfp4_moe_gemm2", "e16_topk2_n256_k128", 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(kf_select(db.get(), "mxfp4_moe_gemm2", "e8_topk2_n256", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "e8_topk2_n256"));
  CHECK(kf_select(db.get(), "mxfp4_moe_gemm2", "e8_topk2_n256_k128_swiglu", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "gemm1's"));
  CHECK(kf_select(db.get(), "mxfp4_moe_gemm1", "e8_topk2_n256_k100_swiglu", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "multiple of 32"));
  CHECK(kf_select(db.get(), "mxfp4_moe_gemm1", kGemm1, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select(db.get(), "mxfp4_moe_gemm3", kGemm1, 1, &k) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "mxfp4_moe_gemm2"));  // the ops it serves

  struct Case {
    const char* what;
    int gemm;
    void (*change)(kf_mxfp4_moe_shape&);
    const char* message;
  };
  const Case cases[] = {
      {"top_k > E", 1, [](kf_mxfp4_moe_shape& m) { m.top_k = 9; }, "top_k = 9"},
      {"top_k 0", 2, [](kf_mxfp4_moe_shape& m) { m.top_k = 0; }, "top_k = 0"},
      {"E > 1024", 1, [](kf_mxfp4_moe_shape& m) { m.experts = 1025; }, "experts = 1025"},
      {"E 0", 2, [](kf_mxfp4_moe_shape& m) { m.experts = 0; }, "experts = 0"},
      {"hidden not a multiple of 32 (gemm1's K)", 1, [](kf_mxfp4_moe_shape& m) { m.hidden = 240; }, "hidden = 240"},
      {"hidden not a multiple of 32 (gemm2's N)", 2, [](kf_mxfp4_moe_shape& m) { m.hidden = 240; }, "hidden = 240"},
      {"intermediate not a multiple of 32 (gemm2's K)", 2, [](kf_mxfp4_moe_shape& m) { m.intermediate = 112; },
       "K must be a multiple of 32"},
      {"intermediate 0", 1, [](kf_mxfp4_moe_shape& m) { m.intermediate = 0; }, "intermediate = 0"},
      {"2 I past an int", 1, [](kf_mxfp4_moe_shape& m) { m.intermediate = 1 << 30; }, "intermediate = 1073741824"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    kf_mxfp4_moe_shape bad = layer_shape();
    c.change(bad);
    k = nullptr;
    CHECK(kf_select_mxfp4_moe(db.get(), c.gemm, &bad, 1, &k) == KF_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE(contains(kf_last_error(), c.message), kf_last_error());
    CHECK(k == nullptr);
    size_t bytes = 0;
    CHECK(kf_mxfp4_moe_scratch_bytes(db.get(), &bad, 8, &bytes) == KF_ERR_INVALID_ARGUMENT);
  }
  s = layer_shape();
  CHECK(kf_select_mxfp4_moe(db.get(), 1, &s, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "t = 0"));
  CHECK(kf_select_mxfp4_moe(db.get(), 3, &s, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "gemm = 3"));
  CHECK(kf_select_mxfp4_moe(db.get(), 1, nullptr, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_mxfp4_moe(db.get(), 1, &s, 1, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_mxfp4_moe(nullptr, 1, &s, 1, &k) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("MXFP4 MoE: kernel rows the runtime cannot launch are skipped at open, each named once") {
  TempDir dir("rt-mxfp4");
  TestPackBuilder b;
  const std::string good = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1");
  b.add_mxfp4_winner(1, kGemm1, good, 1, 8);
  // block_k 48 is not a whole MXFP4 block; block_n 96 does not divide N = 256; 100
  // threads are no whole warps; a SwiGLU gemm2 is no kernel of the family.
  const std::string bad_bk = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk48_w4_s2_ep1");
  const std::string bad_bn = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn96_bk64_w4_s2_ep1");
  const std::string bad_threads = b.add_mxfp4_kernel(1, kGemm1, "bm32_bn64_bk64_w4_s2_ep1", "sm_90a", 100);
  const std::string bad_shape = b.add_mxfp4_kernel(2, "e8_topk2_n256_k128_swiglu", "bm16_bn64_bk64_w4_s2_ep1");
  // A persistent launch is the wgmma kind's; a wgmma row must follow its own tiling rules.
  const std::string bad_persistent = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1_p1");
  const std::string bad_wgmma = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s4_ep1", "sm_90a", 0, "wgmma");
  // Split-K is the decode kind's, in whole chunks: K 256 has 8, so 3 does not divide them.
  const std::string bad_split = b.add_mxfp4_kernel(1, kGemm1, "bm1_bn16_bk32_w8_s1_ep1_sk3", "sm_90a", 0, "decode");
  const std::string bad_split_kind = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1_sk2");
  b.add_mxfp4_winner(1, kGemm1, bad_bk, 9, 16);
  b.add_mxfp4_winner(1, kGemm1, bad_bn, 17, 32);
  b.add_mxfp4_winner(1, kGemm1, bad_threads, 33, 4096);
  b.add_mxfp4_winner(2, "e8_topk2_n256_k128_swiglu", bad_shape, 1, 4096);
  b.add_mxfp4_winner(1, kGemm1, bad_persistent, 4097, 8192);
  b.add_mxfp4_winner(1, kGemm1, bad_wgmma, 8193, 16384);
  b.add_mxfp4_winner(1, kGemm1, bad_split, 16385, 20000);
  b.add_mxfp4_winner(1, kGemm1, bad_split_kind, 20001, 30000);
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  auto [db, warnings] = open_capturing_stderr(dir, dir.file("kforge.sqlite"));
  for (const std::string& name :
       {bad_bk, bad_bn, bad_threads, bad_shape, bad_persistent, bad_wgmma, bad_split, bad_split_kind}) {
    CAPTURE(name);
    CHECK(count_of(warnings, "kernel '" + name + "'") == 1);
  }
  CHECK(contains(warnings, "tiling rules"));
  CHECK(contains(warnings, "warps x 32 or 64"));
  CHECK(contains(warnings, "gemm1's"));
  CHECK(contains(warnings, "only the wgmma kind has a persistent launch"));
  CHECK(contains(warnings, "wgmma rules"));
  CHECK(contains(warnings, "split_k breaks the decode rules"));
  CHECK(contains(warnings, "only the decode kind splits K"));
  // The good one serves every T (the skipped winners leave its range open-ended).
  for (int64_t t : {1, 9, 100}) CHECK(pick_mxfp4(db.get(), 1, t) == good);
}

TEST_CASE("MXFP4 MoE: scratch bytes cover the aligns, h and h2 at every T up to max_t") {
  Mxfp4Pack p;
  DbPtr db = open_for_arch(p.path);
  kf_mxfp4_moe_shape s = layer_shape();
  auto round = [](int64_t bytes) { return (bytes + 255) / 256 * 256; };
  auto capacity = [](int64_t t, int64_t bm) {
    const int64_t slots = 2 * t, hit = slots < 8 ? slots : 8;
    return (slots + hit * (bm - 1) + bm - 1) / bm * bm;
  };
  auto align_bytes = [&](int64_t t, int64_t bm) {
    const int64_t cap = capacity(t, bm);
    return round(cap * 4) + round(cap / bm * 4) + round(4);
  };
  // h [2t, I = 128] and h2 [2t, H = 256], bf16.
  auto hs = [&](int64_t t) { return round(2 * t * 128 * 2) + round(2 * t * 256 * 2); };
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 1, &bytes) == KF_OK);
  CHECK(bytes == size_t(align_bytes(1, 16) + hs(1)));
  REQUIRE(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 8, &bytes) == KF_OK);
  CHECK(bytes == size_t(align_bytes(8, 16) + hs(8)));  // both GEMMs block_m 16: one align
  REQUIRE(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 16, &bytes) == KF_OK);
  CHECK(bytes == size_t(align_bytes(16, 64) + align_bytes(16, 16) + hs(16)));  // bm 64 and 16: two
  REQUIRE(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 1000, &bytes) == KF_OK);
  CHECK(bytes == size_t(align_bytes(1000, 64) + align_bytes(1000, 32) + hs(1000)));
  CHECK(bytes % 256 == 0);
  CHECK(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 0, &bytes) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "max_t = 0"));
  CHECK(kf_mxfp4_moe_scratch_bytes(db.get(), &s, int64_t{1} << 40, &bytes) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 8, nullptr) == KF_ERR_INVALID_ARGUMENT);
  s.experts = 16;
  CHECK(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 8, &bytes) == KF_ERR_UNSUPPORTED_SHAPE);
}

TEST_CASE("MXFP4 MoE: kf_launch_mxfp4_moe_gemm refuses bad inputs before it needs a device") {
  Mxfp4Pack p;
  DbPtr db = open_for_arch(p.path);  // no device here (or an H100: still refused first)
  kf_mxfp4_moe_shape s = layer_shape();
  const kf_kernel* g1 = nullptr;
  const kf_kernel* g2 = nullptr;
  REQUIRE(kf_select_mxfp4_moe(db.get(), 1, &s, 3, &g1) == KF_OK);
  REQUIRE(kf_select_mxfp4_moe(db.get(), 2, &s, 3, &g2) == KF_OK);
  struct Case {
    const char* what;
    int gemm;
    void (*change)(kf_mxfp4_moe_gemm_args&);
    const char* message;
  };
  const Case cases[] = {
      {"x NULL", 1, [](kf_mxfp4_moe_gemm_args& g) { g.x = nullptr; }, "args->x is NULL"},
      {"weight NULL", 1, [](kf_mxfp4_moe_gemm_args& g) { g.weight = nullptr; }, "args->weight is NULL"},
      {"scales NULL", 2, [](kf_mxfp4_moe_gemm_args& g) { g.scales = nullptr; }, "args->scales is NULL"},
      {"sorted_ids NULL", 1, [](kf_mxfp4_moe_gemm_args& g) { g.sorted_ids = nullptr; }, "sorted_ids is NULL"},
      {"expert_ids NULL", 2, [](kf_mxfp4_moe_gemm_args& g) { g.expert_ids = nullptr; }, "expert_ids is NULL"},
      {"num_padded NULL", 1, [](kf_mxfp4_moe_gemm_args& g) { g.num_padded = nullptr; }, "num_padded is NULL"},
      {"y NULL", 2, [](kf_mxfp4_moe_gemm_args& g) { g.y = nullptr; }, "args->y is NULL"},
      {"gemm2 without topk_weights", 2, [](kf_mxfp4_moe_gemm_args& g) { g.topk_weights = nullptr; },
       "args->topk_weights is NULL"},
      {"t 0", 1, [](kf_mxfp4_moe_gemm_args& g) { g.t = 0; }, "args->t = 0"},
      {"t negative", 2, [](kf_mxfp4_moe_gemm_args& g) { g.t = -1; }, "args->t = -1"},
      {"top_k > E", 1, [](kf_mxfp4_moe_gemm_args& g) { g.top_k = 9; }, "top_k = 9"},
      {"E > 1024", 2, [](kf_mxfp4_moe_gemm_args& g) { g.experts = 2000; }, "experts = 2000"},
      {"E not the kernel's", 1, [](kf_mxfp4_moe_gemm_args& g) { g.experts = 16; }, "experts = 16"},
      {"top_k not the kernel's", 2, [](kf_mxfp4_moe_gemm_args& g) { g.top_k = 4; }, "top_k = 4"},
      {"k not a multiple of 32", 1, [](kf_mxfp4_moe_gemm_args& g) { g.k = 100; }, "args->k = 100"},
      {"k not the kernel's", 2, [](kf_mxfp4_moe_gemm_args& g) { g.k = 256; }, "k = 256"},
      {"n = I for a SwiGLU gemm1", 1, [](kf_mxfp4_moe_gemm_args& g) { g.n = 128; }, "y gets n / 2 columns"},
      {"n not the kernel's", 2, [](kf_mxfp4_moe_gemm_args& g) { g.n = 512; }, "n = 512"},
      {"alpha NaN", 1, [](kf_mxfp4_moe_gemm_args& g) { g.swiglu_alpha = std::nanf(""); }, "swiglu_alpha = nan"},
      {"alpha negative", 1, [](kf_mxfp4_moe_gemm_args& g) { g.swiglu_alpha = -1.f; }, "swiglu_alpha = -1"},
      {"limit infinite", 1,
       [](kf_mxfp4_moe_gemm_args& g) { g.swiglu_limit = std::numeric_limits<float>::infinity(); },
       "swiglu_limit = inf"},
      {"limit negative", 1, [](kf_mxfp4_moe_gemm_args& g) { g.swiglu_limit = -7.f; }, "swiglu_limit = -7"},
      {"x misaligned", 1, [](kf_mxfp4_moe_gemm_args& g) { g.x = fake<const void>(0x100008); },
       "args->x is not 16-byte aligned"},
      {"weight misaligned", 2, [](kf_mxfp4_moe_gemm_args& g) { g.weight = fake<const uint8_t>(0x200004); },
       "args->weight is not 16-byte aligned"},
      {"scales misaligned", 1, [](kf_mxfp4_moe_gemm_args& g) { g.scales = fake<const uint8_t>(0x300001); },
       "args->scales is not 16-byte aligned"},
      {"y misaligned", 2, [](kf_mxfp4_moe_gemm_args& g) { g.y = fake<void>(0x800004); },
       "args->y is not 16-byte aligned"},
      {"bias misaligned", 1, [](kf_mxfp4_moe_gemm_args& g) { g.bias = fake<const float>(0x380002); },
       "args->bias is not 4-byte aligned"},
      {"topk_weights misaligned", 2, [](kf_mxfp4_moe_gemm_args& g) { g.topk_weights = fake<const float>(0x400001); },
       "args->topk_weights is not 4-byte aligned"},
      {"sorted_ids misaligned", 1, [](kf_mxfp4_moe_gemm_args& g) { g.sorted_ids = fake<const int32_t>(0x500002); },
       "args->sorted_ids is not 4-byte aligned"},
      {"grid past 65535 blocks in y", 1, [](kf_mxfp4_moe_gemm_args& g) { g.t = 600000; }, "y is limited to 65535"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    kf_mxfp4_moe_gemm_args g = gemm_args(c.gemm, 3);
    c.change(g);
    const kf_status want = std::string(c.what).rfind("grid", 0) == 0 ? KF_ERR_UNSUPPORTED_SHAPE
                                                                       : KF_ERR_INVALID_ARGUMENT;
    CHECK(kf_launch_mxfp4_moe_gemm(c.gemm == 1 ? g1 : g2, &g, nullptr) == want);
    CHECK_MESSAGE(contains(kf_last_error(), c.message), kf_last_error());
    CHECK(contains(kf_last_error(), c.gemm == 1 ? p.g1_small : p.g2_small));
  }
  // What a good call needs past the checks is a device: never an argument error. bias
  // may be NULL; gemm1 reads no routing weights; gemm2 ignores the SwiGLU constants.
  kf_mxfp4_moe_gemm_args g = gemm_args(1, 3);
  g.bias = nullptr;
  g.topk_weights = nullptr;
  const kf_status first = kf_launch_mxfp4_moe_gemm(g1, &g, nullptr);
  CHECK((first == KF_OK || first == KF_ERR_NO_DEVICE));
  g = gemm_args(2, 3);
  g.swiglu_alpha = std::nanf("");
  const kf_status second = kf_launch_mxfp4_moe_gemm(g2, &g, nullptr);
  CHECK((second == KF_OK || second == KF_ERR_NO_DEVICE));

  // Kernels of other ops are not MXFP4 GEMMs, and an MXFP4 GEMM launches only as one.
  const kf_kernel* linear = nullptr;
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, &linear) == KF_OK);
  g = gemm_args(1, 3);
  CHECK(kf_launch_mxfp4_moe_gemm(linear, &g, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "not an mxfp4_moe GEMM"));
  kf_linear_args la{};
  CHECK(kf_launch(g1, &la, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "kf_launch_mxfp4_moe_gemm"));
  kf_moe_gemm_args mg{};
  CHECK(kf_launch_moe_gemm(g1, &mg, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "not a w4a16_moe GEMM"));
  int bm = -1;
  CHECK(kf_kernel_block_m(linear, &bm) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "not a MoE GEMM"));
  CHECK(bm == -1);
  CHECK(kf_launch_mxfp4_moe_gemm(g1, nullptr, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_launch_mxfp4_moe_gemm(nullptr, &g, nullptr) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("MXFP4 MoE: the C++ wrapper's calls") {
  Mxfp4Pack p;
  const kforge::Db db = kforge::Db::open_for_arch(p.path, "sm_90a", kTestDevice);
  kf_mxfp4_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(db.get(), &s, 64, &bytes) == KF_OK);
  CHECK(db.mxfp4_moe_scratch_bytes(s, 64) == bytes);
  s.experts = 16;
  try {
    db.mxfp4_moe_scratch_bytes(s, 64);
    FAIL("no exception for an untuned shape");
  } catch (const kforge::Error& e) {
    CHECK(e.status() == KF_ERR_UNSUPPORTED_SHAPE);
    CHECK(contains(e.what(), "e16_topk2"));
  }
  const kf_kernel* k = nullptr;
  REQUIRE(db.select_mxfp4_moe(1, layer_shape(), 9, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == p.g1_large);
  kf_mxfp4_moe_layer_args a{};
  CHECK(db.run_mxfp4_moe(layer_shape(), a, nullptr) == KF_ERR_INVALID_ARGUMENT);  // hot path: a status
}

TEST_CASE("kf_repack_mxfp4_scales: [E, N, K/32] to [E, K/32, N] and back, and its errors") {
  for (const auto& size : std::vector<std::array<int64_t, 3>>{{1, 1, 32}, {3, 5, 96}, {2, 200, 32 * 70}}) {
    const int64_t e = size[0], n = size[1], k = size[2], blocks = k / 32;
    CAPTURE(e);
    CAPTURE(n);
    CAPTURE(k);
    std::vector<uint8_t> checkpoint(e * n * blocks), kforge(checkpoint.size(), 0xEE);
    for (size_t i = 0; i < checkpoint.size(); ++i) checkpoint[i] = static_cast<uint8_t>(i * 131 + i / 7);
    REQUIRE(kf_repack_mxfp4_scales(e, n, k, checkpoint.data(), kforge.data()) == KF_OK);
    bool placed = true;
    for (int64_t x = 0; x < e; ++x)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t b = 0; b < blocks; ++b)
          placed = placed && kforge[(x * blocks + b) * n + r] == checkpoint[(x * n + r) * blocks + b];
    CHECK(placed);
    // The kernels' layout is the checkpoint's with N and K/32 swapped: repacking it as an
    // [E, K/32, 32 N] tensor gives the checkpoint back.
    std::vector<uint8_t> back(checkpoint.size(), 0xEE);
    REQUIRE(kf_repack_mxfp4_scales(e, blocks, 32 * n, kforge.data(), back.data()) == KF_OK);
    CHECK(back == checkpoint);
  }
  std::vector<uint8_t> a(4096), b(4096);
  CHECK(kf_repack_mxfp4_scales(2, 8, 100, a.data(), b.data()) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "k = 100"));
  CHECK(kf_repack_mxfp4_scales(2, 8, 0, a.data(), b.data()) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "k = 0"));
  CHECK(kf_repack_mxfp4_scales(0, 8, 64, a.data(), b.data()) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "experts = 0"));
  CHECK(kf_repack_mxfp4_scales(2, -1, 64, a.data(), b.data()) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "n = -1"));
  CHECK(kf_repack_mxfp4_scales(2, 8, 64, nullptr, b.data()) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "src is NULL"));
  CHECK(kf_repack_mxfp4_scales(2, 8, 64, a.data(), nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "dst is NULL"));
  CHECK(kf_repack_mxfp4_scales(INT64_MAX / 2, 8, 64, a.data(), b.data()) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "overflows"));
  CHECK(kf_repack_mxfp4_scales(2, 8, 64, a.data(), a.data()) == KF_ERR_INVALID_ARGUMENT);  // 32 bytes each
  CHECK(kf_repack_mxfp4_scales(2, 8, 64, a.data(), a.data() + 16) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "overlap"));
  CHECK(kf_repack_mxfp4_scales(2, 8, 64, a.data(), a.data() + 32) == KF_OK);  // adjacent is fine
}

}  // TEST_SUITE
