// Runtime MoE selection and checks that need no GPU: winners by T range for each GEMM,
// the routing-robust rows only (schema 2) and schema 1 packs alike, kf_select by key,
// untuned and impossible shapes, kf_kernel_block_m, split-K sizes with m = T, scratch
// sizes, and every bad input of the launch calls refused (KF_ERR_INVALID_ARGUMENT naming
// the value) before a device is needed. Launch order and grids: tests/runtime_fake_cuda.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;

const char* kGemm1 = "e8_topk2_n256_k256_g128_bf16_sym";  // gate_up: N = 2 I, K = H
const char* kGemm2 = "e8_topk2_n256_k128_g128_bf16_sym";  // down: N = H, K = I

kf_moe_shape layer_shape() { return kf_testing::small_moe_shape(); }

struct MoePack {
  TempDir dir{"rt-moe"};
  std::string path = dir.file("kforge.sqlite");
  std::string g1_small, g1_split, g1_prefill, g1_zipf, g2_small, g2_prefill;

  explicit MoePack(int schema) {
    TestPackBuilder b;
    b.set_schema(schema);
    g1_small = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1");
    g1_split = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn128_bk64_w4_sk2_s1");
    g1_prefill = b.add_moe_kernel(1, "prefill", kGemm1, "bm64_bn128_bk64_w4_sk1_s2");
    b.add_moe_winner(1, kGemm1, g1_small, 1, 4);
    b.add_moe_winner(1, kGemm1, g1_split, 5, 64);
    b.add_moe_winner(1, kGemm1, g1_prefill, 65, 4096);
    g2_small = b.add_moe_kernel(2, "decode", kGemm2, "bm16_bn64_bk32_w4_sk1_s1");
    g2_prefill = b.add_moe_kernel(2, "prefill", kGemm2, "bm32_bn64_bk32_w4_sk1_s1");
    b.add_moe_winner(2, kGemm2, g2_small, 1, 16);
    b.add_moe_winner(2, kGemm2, g2_prefill, 17, 4096);
    if (schema >= 2) {  // a per-archetype winner: evidence, never served
      g1_zipf = b.add_moe_kernel(1, "decode", kGemm1, "bm32_bn64_bk32_w4_sk1_s1");
      b.add_moe_winner(1, kGemm1, g1_zipf, 1, 4096, "zipf1");
    }
    b.add_moe_helpers();
    b.add_generic(true, false);
    b.write(path);
  }
};

std::string pick_moe(const kf_db* db, int gemm, int64_t t, kf_moe_shape s = layer_shape()) {
  const kf_kernel* k = nullptr;
  if (kf_select_moe(db, gemm, &s, t, &k) != KF_OK) return "";
  return kf_kernel_name(k);
}

const void* fake(uintptr_t address) { return reinterpret_cast<const void*>(address); }

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("MoE: each GEMM's winner by T range, from schema 1 and schema 2 packs alike") {
  for (int schema : {1, 2}) {
    CAPTURE(schema);
    MoePack p(schema);
    DbPtr db = open_for_arch(p.path);
    CHECK(pick_moe(db.get(), 1, 1) == p.g1_small);
    CHECK(pick_moe(db.get(), 1, 4) == p.g1_small);
    CHECK(pick_moe(db.get(), 1, 5) == p.g1_split);
    CHECK(pick_moe(db.get(), 1, 64) == p.g1_split);
    CHECK(pick_moe(db.get(), 1, 65) == p.g1_prefill);
    CHECK(pick_moe(db.get(), 1, 100000) == p.g1_prefill);  // above the last range
    CHECK(pick_moe(db.get(), 2, 16) == p.g2_small);
    CHECK(pick_moe(db.get(), 2, 17) == p.g2_prefill);
    // By key too, through the same ranges.
    const kf_kernel* k = nullptr;
    REQUIRE(kf_select(db.get(), "w4a16_moe_gemm2", kGemm2, 3, &k) == KF_OK);
    CHECK(kf_kernel_name(k) == p.g2_small);
    CHECK(kf_kernel_is_fallback(k) == 0);
    int bm = 0;
    REQUIRE(kf_kernel_block_m(k, &bm) == KF_OK);
    CHECK(bm == 16);
    // The linear side still works in the same pack (generic fallback).
    CHECK(pick(db.get(), 2048, 4096, 3) == "w4a16_linear_generic_any_bf16_sym_bm4_bn128_bk32_w4_sk1_s1");
  }
}

TEST_CASE("MoE: a schema 2 pack serves the routing-robust winners only") {
  MoePack p(2);
  DbPtr db = open_for_arch(p.path);
  for (int64_t t : {1, 4, 30, 500}) CHECK(pick_moe(db.get(), 1, t) != p.g1_zipf);
  // A pack whose only MoE winners are per-archetype has no served MoE shape.
  TempDir dir("rt-moe");
  TestPackBuilder b;
  b.set_schema(2);
  const std::string z = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1");
  b.add_moe_winner(1, kGemm1, z, 1, 4096, "uniform");
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  DbPtr only = open_for_arch(dir.file("kforge.sqlite"));
  kf_moe_shape s = layer_shape();
  const kf_kernel* k = nullptr;
  CHECK(kf_select_moe(only.get(), 1, &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
}

TEST_CASE("MoE: a version 2 pack without the routing column is a schema error") {
  MoePack p(1);
  kf_test::sql(p.path, "PRAGMA user_version = 2");
  kf_db* db = nullptr;
  CHECK(kf_open_for_arch(p.path.c_str(), "sm_90a", nullptr, &db) == KF_ERR_SCHEMA);
  CHECK(contains(kf_last_error(), "routing"));
  kf_test::sql(p.path, "PRAGMA user_version = 3");
  CHECK(kf_open_for_arch(p.path.c_str(), "sm_90a", nullptr, &db) == KF_ERR_SCHEMA);
  CHECK(contains(kf_last_error(), "schema version 3"));
}

TEST_CASE("MoE: an untuned shape is unsupported, naming its op and key; impossible ones are invalid") {
  MoePack p(2);
  DbPtr db = open_for_arch(p.path);
  const kf_kernel* k = nullptr;
  kf_moe_shape s = layer_shape();
  s.experts = 16;
  CHECK(kf_select_moe(db.get(), 1, &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "w4a16_moe_gemm1 e16_topk2_n256_k256_g128_bf16_sym"));
  CHECK(kf_select(db.get(), "w4a16_moe_gemm2", "e16_topk2_n256_k128_g128_bf16_sym", 1, &k) ==
        KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(kf_select(db.get(), "w4a16_moe_gemm2", "e16_topk2_bad", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "e16_topk2_bad"));
  CHECK(kf_select(db.get(), "w4a16_moe_gemm2", "e8_topk9_n256_k128_g128_bf16_sym", 1, &k) == KF_ERR_INVALID_ARGUMENT);

  struct Case {
    const char* what;
    void (*change)(kf_moe_shape&);
    const char* message;
  };
  const Case cases[] = {
      {"top_k > E", [](kf_moe_shape& m) { m.top_k = 9; }, "top_k = 9"},
      {"top_k 0", [](kf_moe_shape& m) { m.top_k = 0; }, "top_k = 0"},
      {"E > 1024", [](kf_moe_shape& m) { m.experts = 1025, m.top_k = 2; }, "experts = 1025"},
      {"E 0", [](kf_moe_shape& m) { m.experts = 0; }, "experts = 0"},
      {"group 96", [](kf_moe_shape& m) { m.group = 96; }, "group = 96"},
      {"hidden not a multiple of 64", [](kf_moe_shape& m) { m.hidden = 288; }, "hidden = 288"},
      {"intermediate not a multiple of 32", [](kf_moe_shape& m) { m.intermediate = 100; }, "intermediate = 100"},
      {"hidden 0", [](kf_moe_shape& m) { m.hidden = 0; }, "hidden = 0"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    kf_moe_shape bad = layer_shape();
    c.change(bad);
    k = nullptr;
    CHECK(kf_select_moe(db.get(), 1, &bad, 1, &k) == KF_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE(contains(kf_last_error(), c.message), kf_last_error());
    CHECK(k == nullptr);
  }
  CHECK(kf_select_moe(db.get(), 1, &s, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  s = layer_shape();
  CHECK(kf_select_moe(db.get(), 1, &s, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "t = 0"));
  CHECK(kf_select_moe(db.get(), 3, &s, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "gemm = 3"));
  CHECK(kf_select_moe(db.get(), 1, nullptr, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_moe(nullptr, 1, &s, 1, &k) == KF_ERR_INVALID_ARGUMENT);

  // block_m is a MoE GEMM property.
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, &k) == KF_OK);
  int bm = -1;
  CHECK(kf_kernel_block_m(k, &bm) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "not a MoE GEMM"));
  CHECK(bm == -1);
}

TEST_CASE("MoE: split-K sizes with m = T cover the sorted capacity; linear maxima ignore MoE kernels") {
  MoePack p(2);
  DbPtr db = open_for_arch(p.path);
  kf_moe_shape s = layer_shape();
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_moe(db.get(), 1, &s, 10, &k) == KF_OK);
  REQUIRE(kf_kernel_name(k) == p.g1_split);
  int64_t floats = -1, counters = -1;
  REQUIRE(kf_kernel_workspace(k, 10, &floats, &counters) == KF_OK);
  // T = 10, top_k 2: 20 slots over at most 8 experts, each run padded to 16: 20 + 8 * 15
  // = 140 -> 144 rows.
  CHECK(floats == 2 * 144 * 256);
  CHECK(counters == (256 / 128) * (144 / 16));
  REQUIRE(kf_db_max_workspace(db.get(), 4096, &floats, &counters) == KF_OK);
  CHECK(floats == 0);  // only the generic linear kernel, which never splits
  CHECK(counters == 0);
}

TEST_CASE("MoE: scratch bytes cover every T up to max_t and grow with it") {
  MoePack p(2);
  DbPtr db = open_for_arch(p.path);
  kf_moe_shape s = layer_shape();
  size_t b1 = 0, b64 = 0, b4096 = 0;
  REQUIRE(kf_moe_scratch_bytes(db.get(), &s, 1, &b1) == KF_OK);
  REQUIRE(kf_moe_scratch_bytes(db.get(), &s, 64, &b64) == KF_OK);
  REQUIRE(kf_moe_scratch_bytes(db.get(), &s, 4096, &b4096) == KF_OK);
  CHECK(b1 > 0);
  CHECK(b1 < b64);
  CHECK(b64 < b4096);
  CHECK(b1 % 256 == 0);
  // At least h1 and h for T * top_k rows (16-bit): the intermediates alone.
  CHECK(b4096 >= size_t{4096} * 2 * (256 + 128) * 2);
  CHECK(kf_moe_scratch_bytes(db.get(), &s, 0, &b1) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "max_t = 0"));
  s.experts = 16;
  CHECK(kf_moe_scratch_bytes(db.get(), &s, 8, &b1) == KF_ERR_UNSUPPORTED_SHAPE);
}

TEST_CASE("MoE: the launch calls refuse bad inputs before they need a device") {
  MoePack p(2);
  DbPtr db = open_for_arch(p.path);  // no device here (or an H100: still refused first)
  kf_moe_shape s = layer_shape();
  const kf_kernel* g2 = nullptr;
  REQUIRE(kf_select_moe(db.get(), 2, &s, 3, &g2) == KF_OK);

  kf_moe_align_args al{static_cast<const int32_t*>(fake(0x10000)), (int32_t*)fake(0x20000), (int32_t*)fake(0x30000),
                       (int32_t*)fake(0x40000), 3, 2, 8, 16, nullptr, 0};
  al.t = 0;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "args->t = 0"));
  al.t = 3;
  al.top_k = 9;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "top_k = 9"));
  al.top_k = 2;
  al.experts = 2000;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "experts = 2000"));
  al.experts = 8;
  al.sorted_ids = nullptr;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "args->sorted_ids is NULL"));
  al.sorted_ids = (int32_t*)fake(0x20002);
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "misaligned"));
  al.sorted_ids = (int32_t*)fake(0x20000);
  al.block_m = 0;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "block_m = 0"));

  kf_moe_gemm_args g{};
  g.x = fake(0x100000);
  g.qweight = fake(0x200000);
  g.scales = fake(0x300000);
  g.topk_weights = (const float*)fake(0x400000);
  g.sorted_ids = (const int32_t*)fake(0x500000);
  g.expert_ids = (const int32_t*)fake(0x600000);
  g.num_padded = (const int32_t*)fake(0x700000);
  g.y = (void*)fake(0x800000);
  g.t = 3, g.top_k = 2, g.experts = 8, g.n = 256, g.k = 128, g.group = 128;
  kf_moe_gemm_args bad = g;
  bad.n = 512;
  CHECK(kf_launch_moe_gemm(g2, &bad, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "n = 512"));
  CHECK(contains(kf_last_error(), p.g2_small));
  bad = g;
  bad.experts = 16;
  CHECK(kf_launch_moe_gemm(g2, &bad, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "experts = 16"));
  bad = g;
  bad.topk_weights = nullptr;  // gemm2 scales by them
  CHECK(kf_launch_moe_gemm(g2, &bad, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "args->topk_weights is NULL"));
  bad = g;
  bad.x = fake(0x100008);
  CHECK(kf_launch_moe_gemm(g2, &bad, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "misaligned"));
  bad = g;
  bad.t = -1;
  CHECK(kf_launch_moe_gemm(g2, &bad, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "t = -1"));
  // Split-K without scratch.
  const kf_kernel* g1 = nullptr;
  REQUIRE(kf_select_moe(db.get(), 1, &s, 10, &g1) == KF_OK);
  bad = g;
  bad.n = 256, bad.k = 256, bad.t = 10;
  CHECK(kf_launch_moe_gemm(g1, &bad, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "workspace"));
  // A linear kernel is not a MoE GEMM, and a MoE GEMM is not launched as linear.
  const kf_kernel* linear = nullptr;
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, &linear) == KF_OK);
  CHECK(kf_launch_moe_gemm(linear, &g, nullptr) == KF_ERR_INVALID_ARGUMENT);
  kf_linear_args la{};
  CHECK(kf_launch(g2, &la, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "not w4a16_linear"));

  kf_moe_silu_mul_args sm{fake(0x100000), (void*)fake(0x200000), 6, 100};
  CHECK(kf_launch_moe_silu_mul(db.get(), 1, &sm, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "n = 100"));
  sm.n = 128;
  sm.y = (void*)fake(0x200008);
  CHECK(kf_launch_moe_silu_mul(db.get(), 1, &sm, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "16 bytes"));
  sm.y = (void*)fake(0x200000);
  sm.rows = 0;
  CHECK(kf_launch_moe_silu_mul(db.get(), 1, &sm, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "rows = 0"));

  kf_moe_sum_args su{fake(0x100000), (const int32_t*)fake(0x200000), (void*)fake(0x300000), 3, 2, 8, 256};
  su.top_k = 9;
  CHECK(kf_launch_moe_sum(db.get(), 1, &su, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "top_k = 9"));
  su.top_k = 2;
  su.topk_ids = nullptr;
  CHECK(kf_launch_moe_sum(db.get(), 1, &su, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "topk_ids is NULL"));
  CHECK(kf_launch_moe_sum(db.get(), 1, nullptr, nullptr) == KF_ERR_INVALID_ARGUMENT);
}

// A pack whose `gemm` winner up to T = 16 carries the epilogue `suffix` (a plain config
// above), plus that suffix on the other GEMM and on a linear kernel, which the family
// never makes: those are refused, and named on stderr, when the DB is opened.
struct EpiloguePack {
  DbPtr db;
  std::string fused, plain, bad_other, bad_linear, warnings;
};

EpiloguePack epilogue_pack(const TempDir& dir, const std::string& suffix, int gemm) {
  const char* shape = gemm == 1 ? kGemm1 : kGemm2;
  const char* other_shape = gemm == 1 ? kGemm2 : kGemm1;
  TestPackBuilder b;
  EpiloguePack p;
  p.fused = b.add_moe_kernel(gemm, "decode", shape, "bm16_bn64_bk32_w4_sk1_s1" + suffix);
  p.plain = b.add_moe_kernel(gemm, "prefill", shape, "bm64_bn128_bk64_w4_sk1_s2");
  b.add_moe_winner(gemm, shape, p.fused, 1, 16);
  b.add_moe_winner(gemm, shape, p.plain, 17, 4096);
  p.bad_other = b.add_moe_kernel(3 - gemm, "decode", other_shape, "bm16_bn64_bk32_w4_sk1_s1" + suffix);
  b.add_moe_winner(3 - gemm, other_shape, p.bad_other, 1, 4096);
  p.bad_linear = b.add_kernel("decode", "n2048_k4096_g128_bf16_sym", "bm1_bn64_bk32_w4_sk1_s1" + suffix);
  b.add_winner("n2048_k4096_g128_bf16_sym", p.bad_linear, 1, 4096);
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  CaptureStderr err(dir);
  p.db = open_for_arch(dir.file("kforge.sqlite"));
  p.warnings = err.text();
  return p;
}

TEST_CASE("MoE: a fused SiLU gemm1 winner is served and flagged; _silu anywhere else is refused") {
  TempDir dir("rt-moe");
  const EpiloguePack p = epilogue_pack(dir, "_silu", 1);
  const DbPtr& db = p.db;
  const std::string &fused = p.fused, &plain = p.plain;
  CHECK(contains(p.warnings, p.bad_other));
  CHECK(contains(p.warnings, p.bad_linear));
  CHECK(contains(p.warnings, "w4a16_moe_gemm1 only"));
  kf_moe_shape s = layer_shape();
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_moe(db.get(), 1, &s, 3, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == fused);
  CHECK(kf_kernel_fuses_silu(k) == 1);
  int bm = 0;
  REQUIRE(kf_kernel_block_m(k, &bm) == KF_OK);
  CHECK(bm == 16);
  REQUIRE(kf_select(db.get(), "w4a16_moe_gemm1", kGemm1, 100, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == plain);
  CHECK(kf_kernel_fuses_silu(k) == 0);
  CHECK(kf_kernel_fuses_silu(nullptr) == 0);
  CHECK(kf_select_moe(db.get(), 2, &s, 3, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(pick(db.get(), 2048, 4096, 1) == "");  // no generic in this pack either

  // kf_launch_moe_gemm: n is the GEMM's N = 2 I; the message says what y is.
  REQUIRE(kf_select_moe(db.get(), 1, &s, 3, &k) == KF_OK);
  kf_moe_gemm_args g{};
  g.x = fake(0x100000);
  g.qweight = fake(0x200000);
  g.scales = fake(0x300000);
  g.sorted_ids = (const int32_t*)fake(0x500000);
  g.expert_ids = (const int32_t*)fake(0x600000);
  g.num_padded = (const int32_t*)fake(0x700000);
  g.y = (void*)fake(0x800000);
  g.t = 3, g.top_k = 2, g.experts = 8, g.n = 128, g.k = 256, g.group = 128;  // n = I: wrong
  CHECK(kf_launch_moe_gemm(k, &g, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "n = 128"));
  CHECK(contains(kf_last_error(), "y gets n / 2 columns"));
}

TEST_CASE("MoE: a fused gemm1 needs no h1, so its scratch holds h2 where the unfused one holds h1") {
  // H = 128, I = 128: gemm1 N = 2 I = 256 is wider than gemm2's N = H = 128.
  kf_moe_shape s = layer_shape();
  s.hidden = 128;
  const char* g1 = "e8_topk2_n256_k128_g128_bf16_sym";
  const char* g2 = "e8_topk2_n128_k128_g128_bf16_sym";
  size_t bytes[2] = {};
  for (int fused : {0, 1}) {
    TempDir dir("rt-moe");
    TestPackBuilder b;
    const std::string k1 =
        b.add_moe_kernel(1, "prefill", g1, std::string("bm64_bn128_bk64_w4_sk1_s2") + (fused ? "_silu" : ""));
    b.add_moe_winner(1, g1, k1, 1, 4096);
    b.add_moe_winner(2, g2, b.add_moe_kernel(2, "prefill", g2, "bm64_bn128_bk64_w4_sk1_s2"), 1, 4096);
    b.add_moe_helpers();
    b.write(dir.file("kforge.sqlite"));
    DbPtr db = open_for_arch(dir.file("kforge.sqlite"));
    REQUIRE_MESSAGE(kf_moe_scratch_bytes(db.get(), &s, 1024, &bytes[fused]) == KF_OK, kf_last_error());
  }
  // 2048 slots x (256 - 128) 16-bit columns fewer.
  CHECK(bytes[0] - bytes[1] == size_t{1024} * 2 * 128 * 2);
}

TEST_CASE("MoE: a top_k-reducing gemm2 winner is served and flagged; _red anywhere else is refused") {
  TempDir dir("rt-moe");
  const EpiloguePack p = epilogue_pack(dir, "_red", 2);
  const DbPtr& db = p.db;
  const std::string &red = p.fused, &plain = p.plain;
  CHECK(contains(p.warnings, p.bad_other));
  CHECK(contains(p.warnings, p.bad_linear));
  CHECK(contains(p.warnings, "w4a16_moe_gemm2 only"));
  kf_moe_shape s = layer_shape();
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_moe(db.get(), 2, &s, 3, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == red);
  CHECK(kf_kernel_reduces_topk(k) == 1);
  CHECK(kf_kernel_fuses_silu(k) == 0);
  REQUIRE(kf_select(db.get(), "w4a16_moe_gemm2", kGemm2, 100, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == plain);
  CHECK(kf_kernel_reduces_topk(k) == 0);
  CHECK(kf_kernel_reduces_topk(nullptr) == 0);
  CHECK(kf_select_moe(db.get(), 1, &s, 3, &k) == KF_ERR_UNSUPPORTED_SHAPE);

  // kf_launch_moe_align: the optional zeroing is checked (count, alignment).
  kf_moe_align_args al{static_cast<const int32_t*>(fake(0x10000)), (int32_t*)fake(0x20000), (int32_t*)fake(0x30000),
                       (int32_t*)fake(0x40000), 3, 2, 8, 16, (void*)fake(0x50000), 12};
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "zero_count = 12"));
  al.zero_count = 0;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "zero_count = 0"));
  al.zero = (void*)fake(0x50008);
  al.zero_count = 16;
  CHECK(kf_launch_moe_align(db.get(), &al, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "zero needs 16 bytes"));
}

TEST_CASE("MoE: a reducing gemm2 needs no h2, so its scratch holds only h1") {
  // H = 128, I = 128: gemm1 N = 2 I = 256; gemm2 N = H = 128; the fused gemm1 then
  // leaves nothing of the h1 | h2 region.
  kf_moe_shape s = layer_shape();
  s.hidden = 128;
  const char* g1 = "e8_topk2_n256_k128_g128_bf16_sym";
  const char* g2 = "e8_topk2_n128_k128_g128_bf16_sym";
  size_t bytes[2][2] = {};
  for (int fused : {0, 1})
    for (int red : {0, 1}) {
      TempDir dir("rt-moe");
      TestPackBuilder b;
      const std::string k1 =
          b.add_moe_kernel(1, "prefill", g1, std::string("bm64_bn128_bk64_w4_sk1_s2") + (fused ? "_silu" : ""));
      b.add_moe_winner(1, g1, k1, 1, 4096);
      const std::string k2 =
          b.add_moe_kernel(2, "prefill", g2, std::string("bm64_bn128_bk64_w4_sk1_s2") + (red ? "_red" : ""));
      b.add_moe_winner(2, g2, k2, 1, 4096);
      b.add_moe_helpers();
      b.write(dir.file("kforge.sqlite"));
      DbPtr db = open_for_arch(dir.file("kforge.sqlite"));
      REQUIRE_MESSAGE(kf_moe_scratch_bytes(db.get(), &s, 1024, &bytes[fused][red]) == KF_OK, kf_last_error());
    }
  // Unfused gemm1: h1 (256 columns) is the wider one either way.
  CHECK(bytes[0][0] == bytes[0][1]);
  // Fused gemm1: h2's 2048 slots x 128 16-bit columns are gone too.
  CHECK(bytes[1][0] - bytes[1][1] == size_t{1024} * 2 * 128 * 2);
}

TEST_CASE("MoE: a pack without the helpers says so") {
  TempDir dir("rt-moe");
  TestPackBuilder b;
  const std::string k = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1");
  b.add_moe_winner(1, kGemm1, k, 1, 4096);
  b.write(dir.file("kforge.sqlite"));
  DbPtr db = open_for_arch(dir.file("kforge.sqlite"));
  kf_moe_sum_args su{fake(0x100000), (const int32_t*)fake(0x200000), (void*)fake(0x300000), 3, 2, 8, 256};
  CHECK(kf_launch_moe_sum(db.get(), 1, &su, nullptr) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "no moe_sum bf16 kernel"));
}

TEST_CASE("kf_check_moe_weights checks one GEMM's stacked expert buffers, moving nothing") {
  const kf_moe_shape s{256, 8, 2048, 512, 128, 1, 0};  // qwen3-35b's experts
  const auto* base = reinterpret_cast<const char*>(uintptr_t{0x100000});
  // gemm1: [E, H/8, 2I] int32, [E, H/G, 2I] 16-bit; gemm2: [E, I/8, H], [E, I/G, H].
  const size_t q1 = 256ull * (2048 / 8) * 1024 * 4, s1 = 256ull * (2048 / 128) * 1024 * 2;
  const size_t q2 = 256ull * (512 / 8) * 2048 * 4, s2 = 256ull * (512 / 128) * 2048 * 2;
  CHECK(kf_check_moe_weights(&s, 1, base, q1, base, s1, nullptr, 0) == KF_OK);
  CHECK(kf_check_moe_weights(&s, 2, base, q2, base, s2, nullptr, 0) == KF_OK);
  // The other GEMM's sizes are named as wrong, with the layout and the expected size.
  CHECK(kf_check_moe_weights(&s, 2, base, q1, base, s1, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "gemm2 qweight is"));
  CHECK(contains(kf_last_error(), "int32 [E, K/8, N]"));
  CHECK(contains(kf_last_error(), std::to_string(q2) + " bytes"));
  kf_moe_shape asym = s;
  asym.asym = 1;
  const size_t z1 = 256ull * (2048 / 128) * (1024 / 8) * 4;
  CHECK(kf_check_moe_weights(&asym, 1, base, q1, base, s1, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "gemm1 qzeros is NULL"));
  CHECK(kf_check_moe_weights(&asym, 1, base, q1, base, s1, base, z1) == KF_OK);
  CHECK(kf_check_moe_weights(&s, 1, base + 8, q1, base, s1, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "16-byte aligned"));
  CHECK(kf_check_moe_weights(&s, 3, base, q1, base, s1, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "gemm = 3"));
  kf_moe_shape odd = s;
  odd.group = 96;  // does not divide H = 2048
  CHECK(kf_check_moe_weights(&odd, 1, base, q1, base, s1, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "group = 96"));
  CHECK(kf_check_moe_weights(nullptr, 1, base, q1, base, s1, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
}

}  // TEST_SUITE
