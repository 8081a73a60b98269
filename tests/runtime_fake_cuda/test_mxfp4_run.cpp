// kf_run_mxfp4_moe and kf_launch_mxfp4_moe_gemm on a recording CUDA stand-in: the layer
// launches align (once per distinct block_m) -> mxfp4_moe_gemm1 -> mxfp4_moe_gemm2 ->
// moe_sum in that order, with the grids of templates/mxfp4_moe/tiling.h and
// w4a16_moe/launch.h and the pack rows' block sizes, arguments wired through the carved
// scratch (gpt-oss's SwiGLU constants where the caller passes 0); the scratch
// kf_mxfp4_moe_scratch_bytes gives is enough for every T up to its max; and nothing is
// launched at all when an input is bad or the scratch too small.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fake_cuda.h"
#include "recorded_launches.h"
#include "kforge/kforge.h"
#include "mxfp4_moe/wgmma_tiling.h"
#include "test_pack.h"
#include "test_util.h"

namespace {

using namespace kf_testing::recorded;

using kf_test::contains;
using kf_testing::TempDir;
using kf_testing::TestPackBuilder;

const char* kGemm1 = "e8_topk2_n256_k256_swiglu";  // gate_up: N = 2 I = 256, K = H = 256
const char* kGemm2 = "e8_topk2_n256_k128";         // down: N = H = 256, K = I = 128

// gemm1: bm16 up to T = 8, bm64 (256 threads) above; gemm2: bm16 up to T = 16, bm32 above.
struct Pack {
  TempDir dir{"rt-fake-cuda-mxfp4"};
  std::string path = dir.file("kforge.sqlite");
  std::string g1_small, g1_large, g2_small, g2_large;
  kf_db* db = nullptr;

  Pack() {
    TestPackBuilder b;
    g1_small = b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1");
    g1_large = b.add_mxfp4_kernel(1, kGemm1, "bm64_bn128_bk64_w8_s3_ep1");
    b.add_mxfp4_winner(1, kGemm1, g1_small, 1, 8);
    b.add_mxfp4_winner(1, kGemm1, g1_large, 9, 4096);
    g2_small = b.add_mxfp4_kernel(2, kGemm2, "bm16_bn64_bk64_w4_s2_ep1");
    g2_large = b.add_mxfp4_kernel(2, kGemm2, "bm32_bn128_bk32_w4_s2_ep2");
    b.add_mxfp4_winner(2, kGemm2, g2_small, 1, 16);
    b.add_mxfp4_winner(2, kGemm2, g2_large, 17, 4096);
    b.add_moe_helpers();
    b.write(path);
    const kf_status status = kf_open(path.c_str(), &db);  // finds the stand-in's H100
    REQUIRE_MESSAGE(status == KF_OK, kf_last_error());
    kf_fake_cuda_reset();
    kf_fake_cuda_fail_launches_of(nullptr);
  }
  ~Pack() { kf_close(db); }
};

kf_mxfp4_moe_shape layer_shape() { return kf_testing::small_mxfp4_shape(); }

kf_mxfp4_moe_layer_args layer_args(int t, int max_t, size_t scratch_bytes) {
  kf_mxfp4_moe_layer_args a{};
  a.x = fake<const void>(0x100000);
  a.topk_ids = fake<const int32_t>(0x200000);
  a.topk_weights = fake<const float>(0x300000);
  a.w1_weight = fake<const uint8_t>(0x400000);
  a.w1_scales = fake<const uint8_t>(0x500000);
  a.w1_bias = fake<const float>(0x580000);
  a.w2_weight = fake<const uint8_t>(0x600000);
  a.w2_scales = fake<const uint8_t>(0x700000);
  a.w2_bias = fake<const float>(0x780000);
  a.y = fake<void>(0x800000);
  a.scratch = fake<void>(kScratch);
  a.scratch_bytes = scratch_bytes;
  a.t = t;
  a.max_t = max_t;
  return a;
}



}  // namespace

TEST_SUITE("runtime_fake_cuda") {

// gemm1 of the small layer at T tokens over the given routing buffers (no bias).
kf_mxfp4_moe_gemm_args gemm1_args(int t, const int32_t* sorted_ids, const int32_t* expert_ids,
                                  const int32_t* num_padded) {
  kf_mxfp4_moe_gemm_args g{};
  g.x = fake<const void>(0x10000);
  g.weight = fake<const uint8_t>(0x20000);
  g.scales = fake<const uint8_t>(0x30000);
  g.sorted_ids = sorted_ids;
  g.expert_ids = expert_ids;
  g.num_padded = num_padded;
  g.y = fake<void>(0x80000);
  g.t = t, g.top_k = 2, g.experts = 8, g.n = 256, g.k = 256;
  return g;
}

TEST_CASE("kf_run_mxfp4_moe, small T: one align (both GEMMs block_m 16), then gemm1, gemm2, sum") {
  Pack p;
  const kf_mxfp4_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(p.db, &s, 8, &bytes) == KF_OK);
  const kf_mxfp4_moe_layer_args a = layer_args(3, 8, bytes);
  REQUIRE_MESSAGE(kf_run_mxfp4_moe(p.db, &s, &a, kStream) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 4);
  CHECK(l[0].kernel == "moe_align_any");
  CHECK(l[1].kernel == p.g1_small);
  CHECK(l[2].kernel == p.g2_small);
  CHECK(l[3].kernel == "moe_sum_any_bf16");
  for (const Launch& x : l) CHECK(x.stream == kStream);

  // T = 3, top_k 2: 6 slots, at most 6 experts hit, runs padded to 16: 6 + 6 * 15 = 96.
  CHECK(grid_is(l[0], 1, 1, 1));
  CHECK(l[0].block[0] == 1024);
  CHECK(grid_is(l[1], 256 / 64, 96 / 16, 1));  // (N / block_n, capacity / block_m, 1)
  CHECK(l[1].block[0] == 128);                 // the pack row's threads (4 warps)
  CHECK(grid_is(l[2], 256 / 64, 96 / 16, 1));
  CHECK(l[2].block[0] == 128);
  CHECK(grid_is(l[3], 1, 1, 1));  // 3 x 256 outputs / 8 per thread / 256
  CHECK(l[3].block[0] == 256);

  const auto align = l[0].as<kf_moe_align_args>();
  const auto g1 = l[1].as<kf_mxfp4_moe_gemm_args>();
  const auto g2 = l[2].as<kf_mxfp4_moe_gemm_args>();
  const auto sum = l[3].as<kf_moe_sum_args>();
  CHECK(align.topk_ids == a.topk_ids);
  CHECK((align.t == 3 && align.top_k == 2 && align.experts == 8 && align.block_m == 16));
  CHECK(in_scratch(align.sorted_ids, 96 * 4, bytes));
  CHECK(in_scratch(align.expert_ids, 96 / 16 * 4, bytes));
  CHECK(in_scratch(align.num_padded, 4, bytes));
  for (const kf_mxfp4_moe_gemm_args* g : {&g1, &g2}) {
    CHECK(g->sorted_ids == align.sorted_ids);
    CHECK(g->expert_ids == align.expert_ids);
    CHECK(g->num_padded == align.num_padded);
    CHECK(g->topk_weights == a.topk_weights);
    CHECK((g->t == 3 && g->top_k == 2 && g->experts == 8));
    // gpt-oss's constants for the zeros of the layer args.
    CHECK(g->swiglu_alpha == 1.702f);
    CHECK(g->swiglu_limit == 7.0f);
  }
  CHECK((g1.x == a.x && g1.weight == a.w1_weight && g1.scales == a.w1_scales && g1.bias == a.w1_bias));
  CHECK((g1.n == 256 && g1.k == 256));  // the GEMM's N = 2 I; y gets I columns
  CHECK((g2.weight == a.w2_weight && g2.scales == a.w2_scales && g2.bias == a.w2_bias));
  CHECK((g2.n == 256 && g2.k == 128));
  CHECK(in_scratch(g1.y, 6 * 128 * 2, bytes));  // h [slots, I]
  CHECK(g2.x == g1.y);
  CHECK(in_scratch(g2.y, 6 * 256 * 2, bytes));  // h2 [slots, H]
  CHECK(sum.x == g2.y);
  CHECK((sum.topk_ids == a.topk_ids && sum.y == a.y && sum.t == 3 && sum.top_k == 2 && sum.experts == 8 &&
         sum.n == 256));
  // No region overlaps another.
  const std::vector<std::pair<const void*, uint64_t>> regions = {
      {align.sorted_ids, 96 * 4}, {align.expert_ids, 6 * 4}, {align.num_padded, 4}, {g1.y, 6 * 128 * 2},
      {g2.y, 6 * 256 * 2}};
  for (size_t i = 0; i < regions.size(); ++i)
    for (size_t j = i + 1; j < regions.size(); ++j)
      CHECK(apart(regions[i].first, regions[i].second, regions[j].first, regions[j].second));
}

TEST_CASE("kf_run_mxfp4_moe: the caller's SwiGLU constants reach gemm1; biases may be NULL") {
  Pack p;
  const kf_mxfp4_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(p.db, &s, 8, &bytes) == KF_OK);
  kf_mxfp4_moe_layer_args a = layer_args(2, 8, bytes);
  a.swiglu_alpha = 1.5f;
  a.swiglu_limit = 10.f;
  a.w1_bias = nullptr;
  a.w2_bias = nullptr;
  REQUIRE_MESSAGE(kf_run_mxfp4_moe(p.db, &s, &a, nullptr) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 4);
  const auto g1 = l[1].as<kf_mxfp4_moe_gemm_args>();
  const auto g2 = l[2].as<kf_mxfp4_moe_gemm_args>();
  CHECK((g1.swiglu_alpha == 1.5f && g1.swiglu_limit == 10.f));
  CHECK((g1.bias == nullptr && g2.bias == nullptr));
}

TEST_CASE("kf_run_mxfp4_moe, larger T: a second align when the two winners' block_m differ") {
  Pack p;
  const kf_mxfp4_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(p.db, &s, 4096, &bytes) == KF_OK);
  for (int t : {12, 100}) {
    CAPTURE(t);
    kf_fake_cuda_reset();
    const kf_mxfp4_moe_layer_args a = layer_args(t, 4096, bytes);
    REQUIRE_MESSAGE(kf_run_mxfp4_moe(p.db, &s, &a, nullptr) == KF_OK, kf_last_error());
    const std::vector<Launch> l = launches();
    REQUIRE(l.size() == 5);
    CHECK(l[0].kernel == "moe_align_any");
    CHECK(l[1].kernel == "moe_align_any");
    CHECK(l[2].kernel == p.g1_large);
    CHECK(l[3].kernel == (t <= 16 ? p.g2_small : p.g2_large));
    CHECK(l[4].kernel == "moe_sum_any_bf16");
    const auto first = l[0].as<kf_moe_align_args>(), second = l[1].as<kf_moe_align_args>();
    const int bm2 = t <= 16 ? 16 : 32;
    CHECK(first.block_m == 64);
    CHECK(second.block_m == bm2);
    CHECK(first.sorted_ids != second.sorted_ids);
    const int slots = 2 * t;
    auto capacity = [&](int bm) { return (slots + 8 * (bm - 1) + bm - 1) / bm * bm; };  // all 8 experts may be hit
    CHECK(grid_is(l[2], 256 / 128, static_cast<unsigned>(capacity(64) / 64), 1));
    CHECK(l[2].block[0] == 256);  // 8 warps
    CHECK(grid_is(l[3], 256 / (t <= 16 ? 64 : 128), static_cast<unsigned>(capacity(bm2) / bm2), 1));
    CHECK(l[3].block[0] == 128);
    CHECK(grid_is(l[4], static_cast<unsigned>((t * 256 / 8 + 255) / 256), 1, 1));
    const auto g1 = l[2].as<kf_mxfp4_moe_gemm_args>(), g2 = l[3].as<kf_mxfp4_moe_gemm_args>();
    CHECK(g1.sorted_ids == first.sorted_ids);
    CHECK(g1.expert_ids == first.expert_ids);
    CHECK(g1.num_padded == first.num_padded);
    CHECK(g2.sorted_ids == second.sorted_ids);
    CHECK(g2.expert_ids == second.expert_ids);
    CHECK(g2.num_padded == second.num_padded);
    CHECK(in_scratch(first.sorted_ids, uint64_t(capacity(64)) * 4, bytes));
    CHECK(in_scratch(second.sorted_ids, uint64_t(capacity(bm2)) * 4, bytes));
    CHECK(apart(first.sorted_ids, uint64_t(capacity(64)) * 4, second.sorted_ids, uint64_t(capacity(bm2)) * 4));
    CHECK(apart(g1.y, uint64_t(slots) * 128 * 2, g2.y, uint64_t(slots) * 256 * 2));
    CHECK(apart(second.sorted_ids, uint64_t(capacity(bm2)) * 4, g1.y, uint64_t(slots) * 128 * 2));
  }
}

TEST_CASE("kf_mxfp4_moe_scratch_bytes(max_t) is enough for every t <= max_t, across kernel changes") {
  Pack p;
  const kf_mxfp4_moe_shape s = layer_shape();
  for (int max_t : {1, 8, 9, 16, 17, 130}) {
    CAPTURE(max_t);
    size_t bytes = 0;
    REQUIRE(kf_mxfp4_moe_scratch_bytes(p.db, &s, max_t, &bytes) == KF_OK);
    size_t most = 0;
    for (int t = 1; t <= max_t; ++t) {
      CAPTURE(t);
      const kf_mxfp4_moe_layer_args a = layer_args(t, max_t, bytes);
      CHECK_MESSAGE(kf_run_mxfp4_moe(p.db, &s, &a, nullptr) == KF_OK, kf_last_error());
      // What this t needs, from the message of a call with too little.
      const kf_mxfp4_moe_layer_args small = layer_args(t, max_t, 0);
      REQUIRE(kf_run_mxfp4_moe(p.db, &s, &small, nullptr) == KF_ERR_INVALID_ARGUMENT);
      const std::string message = kf_last_error();
      const size_t at = message.find("needs ");
      REQUIRE(at != std::string::npos);
      most = std::max<size_t>(most, std::stoull(message.substr(at + 6)));
    }
    CHECK(most == bytes);  // the most any t needs: no more
  }
}

TEST_CASE("kf_run_mxfp4_moe launches nothing when an input is bad or the scratch too small") {
  Pack p;
  const kf_mxfp4_moe_shape good = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(p.db, &good, 100, &bytes) == KF_OK);
  using A = kf_mxfp4_moe_layer_args;
  using S = kf_mxfp4_moe_shape;
  struct Case {
    const char* what;
    kf_status status;
    const char* message;
    void (*change)(A&, S&);
  };
  const Case cases[] = {
      {"scratch too small", KF_ERR_INVALID_ARGUMENT, "scratch_bytes = 1 is too small",
       [](A& a, S&) { a.scratch_bytes = 1; }},
      {"t 0", KF_ERR_INVALID_ARGUMENT, "args->t = 0", [](A& a, S&) { a.t = 0; }},
      {"t above max_t", KF_ERR_INVALID_ARGUMENT, "max_t = 100", [](A& a, S&) { a.t = 101; }},
      {"x NULL", KF_ERR_INVALID_ARGUMENT, "args->x is NULL", [](A& a, S&) { a.x = nullptr; }},
      {"topk_ids NULL", KF_ERR_INVALID_ARGUMENT, "args->topk_ids is NULL", [](A& a, S&) { a.topk_ids = nullptr; }},
      {"topk_weights NULL", KF_ERR_INVALID_ARGUMENT, "args->topk_weights is NULL",
       [](A& a, S&) { a.topk_weights = nullptr; }},
      {"w1_weight NULL", KF_ERR_INVALID_ARGUMENT, "args->w1_weight is NULL", [](A& a, S&) { a.w1_weight = nullptr; }},
      {"w1_scales NULL", KF_ERR_INVALID_ARGUMENT, "args->w1_scales is NULL", [](A& a, S&) { a.w1_scales = nullptr; }},
      {"w2_weight NULL", KF_ERR_INVALID_ARGUMENT, "args->w2_weight is NULL", [](A& a, S&) { a.w2_weight = nullptr; }},
      {"w2_scales NULL", KF_ERR_INVALID_ARGUMENT, "args->w2_scales is NULL", [](A& a, S&) { a.w2_scales = nullptr; }},
      {"y NULL", KF_ERR_INVALID_ARGUMENT, "args->y is NULL", [](A& a, S&) { a.y = nullptr; }},
      {"scratch NULL", KF_ERR_INVALID_ARGUMENT, "args->scratch is NULL", [](A& a, S&) { a.scratch = nullptr; }},
      {"x misaligned", KF_ERR_INVALID_ARGUMENT, "args->x is not 16-byte aligned",
       [](A& a, S&) { a.x = fake<const void>(0x100008); }},
      {"w1_weight misaligned", KF_ERR_INVALID_ARGUMENT, "args->w1_weight is not 16-byte aligned",
       [](A& a, S&) { a.w1_weight = fake<const uint8_t>(0x400008); }},
      {"w2_scales misaligned", KF_ERR_INVALID_ARGUMENT, "args->w2_scales is not 16-byte aligned",
       [](A& a, S&) { a.w2_scales = fake<const uint8_t>(0x700001); }},
      {"w1_bias misaligned", KF_ERR_INVALID_ARGUMENT, "args->w1_bias is not 4-byte aligned",
       [](A& a, S&) { a.w1_bias = fake<const float>(0x580002); }},
      {"topk_ids misaligned", KF_ERR_INVALID_ARGUMENT, "args->topk_ids is not 4-byte aligned",
       [](A& a, S&) { a.topk_ids = fake<const int32_t>(0x200002); }},
      {"y misaligned", KF_ERR_INVALID_ARGUMENT, "args->y is not 16-byte aligned",
       [](A& a, S&) { a.y = fake<void>(0x800004); }},
      {"scratch misaligned", KF_ERR_INVALID_ARGUMENT, "args->scratch is not 256-byte aligned",
       [](A& a, S&) { a.scratch = fake<void>(kScratch + 128); }},
      {"alpha NaN", KF_ERR_INVALID_ARGUMENT, "args->swiglu_alpha = nan",
       [](A& a, S&) { a.swiglu_alpha = std::nanf(""); }},
      {"limit infinite", KF_ERR_INVALID_ARGUMENT, "args->swiglu_limit = inf",
       [](A& a, S&) { a.swiglu_limit = std::numeric_limits<float>::infinity(); }},
      {"limit negative", KF_ERR_INVALID_ARGUMENT, "args->swiglu_limit = -7",
       [](A& a, S&) { a.swiglu_limit = -7.f; }},
      {"top_k > E", KF_ERR_INVALID_ARGUMENT, "top_k = 9", [](A&, S& s) { s.top_k = 9; }},
      {"E > 1024", KF_ERR_INVALID_ARGUMENT, "experts = 2048", [](A&, S& s) { s.experts = 2048; }},
      {"hidden not a multiple of 32", KF_ERR_INVALID_ARGUMENT, "hidden = 200", [](A&, S& s) { s.hidden = 200; }},
      {"intermediate not a multiple of 32", KF_ERR_INVALID_ARGUMENT, "intermediate = 100",
       [](A&, S& s) { s.intermediate = 100; }},
      {"swiglu 0", KF_ERR_UNSUPPORTED_SHAPE, "shape->swiglu = 0", [](A&, S& s) { s.swiglu = 0; }},
      {"untuned shape", KF_ERR_UNSUPPORTED_SHAPE, "e16_topk2", [](A&, S& s) { s.experts = 16; }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    kf_fake_cuda_reset();
    A a = layer_args(3, 100, bytes);
    S s = good;
    c.change(a, s);
    CHECK(kf_run_mxfp4_moe(p.db, &s, &a, nullptr) == c.status);
    CHECK_MESSAGE(contains(kf_last_error(), c.message), kf_last_error());
    CHECK(kf_fake_cuda_launch_count() == 0);
  }
  // Exactly the bytes the message names are enough, one fewer is not.
  A a = layer_args(100, 100, 1);
  REQUIRE(kf_run_mxfp4_moe(p.db, &good, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  const std::string message = kf_last_error();
  const size_t at = message.find("needs ");
  REQUIRE(at != std::string::npos);
  const size_t needed = std::stoull(message.substr(at + 6));
  CHECK(needed <= bytes);
  a.scratch_bytes = needed - 1;
  CHECK(kf_run_mxfp4_moe(p.db, &good, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_fake_cuda_launch_count() == 0);
  a.scratch_bytes = needed;
  CHECK(kf_run_mxfp4_moe(p.db, &good, &a, nullptr) == KF_OK);
  CHECK(kf_fake_cuda_launch_count() == 5);
  kf_fake_cuda_reset();
  CHECK(kf_run_mxfp4_moe(p.db, &good, nullptr, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_mxfp4_moe(p.db, nullptr, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_mxfp4_moe(nullptr, &good, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_fake_cuda_launch_count() == 0);
}

TEST_CASE("kf_run_mxfp4_moe: a pack without the MoE helpers says so and launches nothing") {
  TempDir dir{"rt-fake-cuda-mxfp4"};
  TestPackBuilder b;
  b.add_mxfp4_winner(1, kGemm1, b.add_mxfp4_kernel(1, kGemm1, "bm16_bn64_bk64_w4_s2_ep1"), 1, 4096);
  b.add_mxfp4_winner(2, kGemm2, b.add_mxfp4_kernel(2, kGemm2, "bm16_bn64_bk64_w4_s2_ep1"), 1, 4096);
  b.write(dir.file("kforge.sqlite"));
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open(dir.file("kforge.sqlite").c_str(), &db) == KF_OK, kf_last_error());
  const kf_mxfp4_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(db, &s, 8, &bytes) == KF_OK);
  kf_fake_cuda_reset();
  const kf_mxfp4_moe_layer_args a = layer_args(3, 8, bytes);
  CHECK(kf_run_mxfp4_moe(db, &s, &a, nullptr) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "no moe_align kernel"));
  CHECK(kf_fake_cuda_launch_count() == 0);
  kf_close(db);
}

TEST_CASE("an MXFP4 layer's driver failure mid-layer is a backend error; what ran before it is all that ran") {
  Pack p;
  const kf_mxfp4_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_mxfp4_moe_scratch_bytes(p.db, &s, 8, &bytes) == KF_OK);
  const kf_mxfp4_moe_layer_args a = layer_args(3, 8, bytes);
  kf_fake_cuda_fail_launches_of("mxfp4_moe_gemm2");
  CHECK(kf_run_mxfp4_moe(p.db, &s, &a, nullptr) == KF_ERR_BACKEND);
  CHECK(contains(kf_last_error(), "cuLaunchKernel"));
  kf_fake_cuda_fail_launches_of(nullptr);
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 2);
  CHECK(l[1].kernel == p.g1_small);
}

TEST_CASE("kf_launch_mxfp4_moe_gemm launches one GEMM with tiling.h's grid, or nothing on a bad input") {
  Pack p;
  const kf_mxfp4_moe_shape s = layer_shape();
  const kf_kernel* g1 = nullptr;
  REQUIRE(kf_select_mxfp4_moe(p.db, 1, &s, 1000, &g1) == KF_OK);
  int bm = 0;
  REQUIRE(kf_kernel_block_m(g1, &bm) == KF_OK);
  CHECK(bm == 64);
  kf_moe_align_args al{fake<const int32_t>(0x1000), fake<int32_t>(0x2000), fake<int32_t>(0x3000),
                       fake<int32_t>(0x4000), 1000, 2, 8, bm, nullptr, 0};
  REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
  kf_mxfp4_moe_gemm_args g = gemm1_args(1000, al.sorted_ids, al.expert_ids, al.num_padded);
  g.swiglu_limit = 9.f;  // alpha 0: gpt-oss's
  REQUIRE_MESSAGE(kf_launch_mxfp4_moe_gemm(g1, &g, kStream) == KF_OK, kf_last_error());
  kf_mxfp4_moe_gemm_args bad = g;
  bad.k = 224;
  CHECK(kf_launch_mxfp4_moe_gemm(g1, &bad, kStream) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "k = 224"));
  bad = g;
  bad.scales = fake<const uint8_t>(0x30008);
  CHECK(kf_launch_mxfp4_moe_gemm(g1, &bad, kStream) == KF_ERR_INVALID_ARGUMENT);
  bad = g;
  bad.swiglu_alpha = -0.5f;
  CHECK(kf_launch_mxfp4_moe_gemm(g1, &bad, kStream) == KF_ERR_INVALID_ARGUMENT);
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 2);  // the align and the good GEMM only
  // 2000 slots over 8 experts, bm 64: 2000 + 8 * 63 = 2504 -> 2560 rows.
  CHECK(l[1].kernel == p.g1_large);
  CHECK(grid_is(l[1], 256 / 128, 2560 / 64, 1));
  CHECK(l[1].block[0] == 256);
  CHECK(l[1].stream == kStream);
  const auto sent = l[1].as<kf_mxfp4_moe_gemm_args>();
  CHECK(sent.swiglu_alpha == 1.702f);
  CHECK(sent.swiglu_limit == 9.f);
  CHECK((sent.x == g.x && sent.weight == g.weight && sent.scales == g.scales && sent.y == g.y));
  CHECK(sent.bias == nullptr);
}

// A pack whose only gemm1 kernel (sm_90a, this config and kind) wins every T, opened in
// `dir`; returns that kernel as kf_select_mxfp4_moe picks it at T = t.
const kf_kernel* open_sole_gemm1(TempDir& dir, const std::string& config, const char* kind, int64_t t, kf_db** db) {
  TestPackBuilder b;
  const std::string name = b.add_mxfp4_kernel(1, kGemm1, config, "sm_90a", 0, kind);
  b.add_mxfp4_winner(1, kGemm1, name, 1, 4096);
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  REQUIRE(kf_open(dir.file("kforge.sqlite").c_str(), db) == KF_OK);
  const kf_mxfp4_moe_shape s = layer_shape();
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_mxfp4_moe(*db, 1, &s, t, &k) == KF_OK);
  CHECK(std::string(kf_kernel_name(k)) == name);
  return k;
}

TEST_CASE("a persistent wgmma GEMM launches a few blocks per SM, never more than its tiles") {
  // 132 SMs (the fake device), persistent 2: at most 264 walkers; gemm1 N 256 / block_n 64.
  TempDir dir("rt-mxfp4-persistent");
  kf_db* db = nullptr;
  const kf_kernel* g1 = open_sole_gemm1(dir, "bm64_bn64_bk64_w4_s4_ep1_p2", "wgmma", 4096, &db);
  kf_fake_cuda_reset();
  for (int t : {4096, 10}) {
    const kf_mxfp4_moe_gemm_args g = gemm1_args(t, fake<const int32_t>(0x40000), fake<const int32_t>(0x50000),
                                                fake<const int32_t>(0x60000));
    REQUIRE_MESSAGE(kf_launch_mxfp4_moe_gemm(g1, &g, kStream) == KF_OK, kf_last_error());
  }
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 2);
  CHECK(grid_is(l[0], 2 * 132, 1, 1));  // 8192 slots: (8192 + 8 * 63) / 64 x 4 tiles, far more than 264
  // 20 slots: capacity 20 + 8 * 63 = 524 -> 576 rows, 9 slot blocks x 4 column tiles = 36.
  CHECK(grid_is(l[1], 36, 1, 1));
  CHECK(l[0].block[0] == 128);
  CHECK(l[0].shared == static_cast<unsigned>(kf::mxfp4::wgmma::smem_bytes(64, 64, 64, 4)));
  kf_close(db);
}

TEST_CASE("a split-K decode GEMM launches its cluster's blocks along z") {
  // gemm1 N 256 / block_n 16 column tiles, one slot per block, split_k 2 (K 256: 8 chunks).
  TempDir dir("rt-mxfp4-split");
  kf_db* db = nullptr;
  const kf_kernel* g1 = open_sole_gemm1(dir, "bm1_bn16_bk32_w8_s1_ep1_sk2", "decode", 1, &db);
  kf_fake_cuda_reset();
  const kf_mxfp4_moe_gemm_args g = gemm1_args(1, fake<const int32_t>(0x40000), fake<const int32_t>(0x50000),
                                              fake<const int32_t>(0x60000));
  REQUIRE_MESSAGE(kf_launch_mxfp4_moe_gemm(g1, &g, kStream) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 1);
  CHECK(grid_is(l[0], 256 / 16, 2, 2));  // two slots (top-2), block_m 1; z = split_k
  kf_close(db);
}

}  // TEST_SUITE
