// kf_run_moe and the kf_launch_moe_* calls on a recording CUDA stand-in: the launches
// align (once per distinct block_m) -> gemm1 -> silu_mul -> gemm2 -> sum in that order
// (no silu_mul after a gemm1 with the fused SiLU epilogue, no sum after a gemm2 that
// sums over top_k itself, whose y the first align zeroes), with the grids of
// templates/w4a16_moe/launch.h, arguments wired through the carved scratch (split-K
// counters at its start for every T), skinny GEMMs launched to overlap the kernel before
// them, and nothing launched at all when an input is bad or the scratch too small.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fake_cuda.h"
#include "recorded_launches.h"
#include "kforge/kforge.h"
#include "test_pack.h"
#include "test_util.h"
#include "w4a16_moe/align_cluster_tiling.h"

namespace {

using namespace kf_testing::recorded;

using kf_test::contains;
using kf_testing::TempDir;
using kf_testing::TestPackBuilder;

const char* kGemm1 = "e8_topk2_n256_k256_g128_bf16_sym";  // gate_up: N = 2 I = 256, K = H = 256
const char* kGemm2 = "e8_topk2_n256_k128_g128_bf16_sym";  // down: N = H = 256, K = I = 128

struct Pack {
  TempDir dir{"rt-fake-cuda"};
  std::string path = dir.file("kforge.sqlite");
  std::string g1_small, g1_split, g1_prefill, g2_small, g2_prefill;
  kf_db* db = nullptr;

  explicit Pack(bool cluster_align = false) {
    TestPackBuilder b;
    if (cluster_align) b.add_moe_align_cluster();
    g1_small = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1", "sm_90a", 128);
    g1_split = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn128_bk64_w4_sk2_s1", "sm_90a", 128);
    g1_prefill = b.add_moe_kernel(1, "prefill", kGemm1, "bm64_bn128_bk64_w4_sk1_s2", "sm_90a", 128);
    b.add_moe_winner(1, kGemm1, g1_small, 1, 4);
    b.add_moe_winner(1, kGemm1, g1_split, 5, 64);
    b.add_moe_winner(1, kGemm1, g1_prefill, 65, 4096);
    g2_small = b.add_moe_kernel(2, "decode", kGemm2, "bm16_bn64_bk32_w4_sk1_s1", "sm_90a", 64);
    g2_prefill = b.add_moe_kernel(2, "prefill", kGemm2, "bm32_bn64_bk32_w4_sk1_s1", "sm_90a", 128);
    b.add_moe_winner(2, kGemm2, g2_small, 1, 16);
    b.add_moe_winner(2, kGemm2, g2_prefill, 17, 4096);
    b.add_moe_helpers();
    b.write(path);
    const kf_status status = kf_open(path.c_str(), &db);  // finds the stand-in's H100
    REQUIRE_MESSAGE(status == KF_OK, kf_last_error());
    kf_fake_cuda_reset();
    kf_fake_cuda_fail_launches_of(nullptr);
  }
  ~Pack() { kf_close(db); }
};

kf_moe_shape layer_shape() { return kf_testing::small_moe_shape(); }

kf_moe_layer_args layer_args(int t, int max_t, size_t scratch_bytes) {
  kf_moe_layer_args a{};
  a.x = fake<const void>(0x100000);
  a.topk_ids = fake<const int32_t>(0x200000);
  a.topk_weights = fake<const float>(0x300000);
  a.w1_qweight = fake<const void>(0x400000);
  a.w1_scales = fake<const void>(0x500000);
  a.w2_qweight = fake<const void>(0x600000);
  a.w2_scales = fake<const void>(0x700000);
  a.y = fake<void>(0x800000);
  a.scratch = fake<void>(kScratch);
  a.scratch_bytes = scratch_bytes;
  a.t = t;
  a.max_t = max_t;
  return a;
}



}  // namespace

TEST_SUITE("runtime_fake_cuda") {

TEST_CASE("kf_open finds the stand-in device; kf_prepare loads every served kernel once") {
  Pack p;
  CHECK(std::string(kf_db_arch(p.db)) == "sm_90a");
  CHECK(std::string(kf_db_device_name(p.db)) == kf_testing::kTestDevice);
  const int before = kf_fake_cuda_loads();
  REQUIRE(kf_prepare(p.db) == KF_OK);
  CHECK(kf_fake_cuda_loads() - before == 5 + 5);  // 5 GEMMs, align, silu_mul x2, sum x2
  REQUIRE(kf_prepare(p.db) == KF_OK);
  CHECK(kf_fake_cuda_loads() - before == 10);
}

TEST_CASE("kf_run_moe, small T: one align (both GEMMs block_m 16), then gemm1, silu_mul, gemm2, sum") {
  Pack p;
  const kf_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(p.db, &s, 100, &bytes) == KF_OK);
  const kf_moe_layer_args a = layer_args(3, 100, bytes);
  REQUIRE_MESSAGE(kf_run_moe(p.db, &s, &a, kStream) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 5);
  CHECK(l[0].kernel == "moe_align_any");
  CHECK(l[1].kernel == p.g1_small);
  CHECK(l[2].kernel == "moe_silu_mul_any_bf16");
  CHECK(l[3].kernel == p.g2_small);
  CHECK(l[4].kernel == "moe_sum_any_bf16");
  for (const Launch& x : l) CHECK(x.stream == kStream);

  // T = 3, top_k 2: 6 slots, at most 6 experts hit, runs padded to 16: 6 + 6 * 15 = 96.
  CHECK(grid_is(l[0], 1, 1, 1));
  CHECK(l[0].block[0] == 1024);
  CHECK(grid_is(l[1], 256 / 64, 1, 96 / 16));  // decode: (N / bn, split_k, capacity / bm)
  CHECK(l[1].block[0] == 128);
  CHECK(grid_is(l[2], 1, 1, 1));               // 6 x 128 outputs / 8 per thread / 256
  CHECK(l[2].block[0] == 256);
  CHECK(grid_is(l[3], 256 / 64, 1, 96 / 16));
  CHECK(l[3].block[0] == 64);                  // the kernel's own thread count
  CHECK(grid_is(l[4], 1, 1, 1));
  CHECK(l[4].block[0] == 256);

  const auto align = l[0].as<kf_moe_align_args>();
  const auto g1 = l[1].as<kf_moe_gemm_args>();
  const auto silu = l[2].as<kf_moe_silu_mul_args>();
  const auto g2 = l[3].as<kf_moe_gemm_args>();
  const auto sum = l[4].as<kf_moe_sum_args>();
  CHECK(align.topk_ids == a.topk_ids);
  CHECK((align.t == 3 && align.top_k == 2 && align.experts == 8 && align.block_m == 16));
  CHECK(in_scratch(align.sorted_ids, 96 * 4, bytes));
  CHECK(in_scratch(align.expert_ids, 96 / 16 * 4, bytes));
  CHECK(in_scratch(align.num_padded, 4, bytes));
  for (const kf_moe_gemm_args* g : {&g1, &g2}) {
    CHECK(g->sorted_ids == align.sorted_ids);
    CHECK(g->expert_ids == align.expert_ids);
    CHECK(g->num_padded == align.num_padded);
    CHECK(g->topk_weights == a.topk_weights);
    CHECK((g->t == 3 && g->top_k == 2 && g->experts == 8 && g->group == 128));
    CHECK(address(g->counters) == kScratch);  // counters first, the same bytes every call
  }
  CHECK((g1.x == a.x && g1.qweight == a.w1_qweight && g1.scales == a.w1_scales && g1.n == 256 && g1.k == 256));
  CHECK((g2.qweight == a.w2_qweight && g2.scales == a.w2_scales && g2.n == 256 && g2.k == 128));
  CHECK(in_scratch(g1.y, 6 * 256 * 2, bytes));
  CHECK(silu.x == g1.y);
  CHECK((silu.rows == 6 && silu.n == 128));
  CHECK(in_scratch(silu.y, 6 * 128 * 2, bytes));
  CHECK(g2.x == silu.y);
  CHECK(g2.y == g1.y);  // h2 reuses h1's bytes: h1 is dead after silu_mul
  CHECK(sum.x == g2.y);
  CHECK((sum.topk_ids == a.topk_ids && sum.y == a.y && sum.t == 3 && sum.top_k == 2 && sum.experts == 8 &&
         sum.n == 256));
  // The regions do not overlap one another.
  CHECK(address(silu.y) >= address(g1.y) + 6 * 256 * 2);
  CHECK(address(align.sorted_ids) >= kScratch);
}

TEST_CASE("kf_run_moe skips silu_mul after a fused SiLU gemm1 winner, not after an unfused one") {
  // gemm1: fused decode up to T = 4, unfused prefill up to 64, fused split-K prefill above.
  TempDir dir{"rt-fake-cuda"};
  TestPackBuilder b;
  const std::string fused = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1_silu", "sm_90a", 128);
  const std::string plain = b.add_moe_kernel(1, "prefill", kGemm1, "bm16_bn128_bk64_w4_sk1_s2", "sm_90a", 128);
  const std::string fused_split =
      b.add_moe_kernel(1, "prefill", kGemm1, "bm16_bn128_bk64_w4_sk2_s2_silu", "sm_90a", 128);
  b.add_moe_winner(1, kGemm1, fused, 1, 4);
  b.add_moe_winner(1, kGemm1, plain, 5, 64);
  b.add_moe_winner(1, kGemm1, fused_split, 65, 4096);
  const std::string down = b.add_moe_kernel(2, "decode", kGemm2, "bm16_bn64_bk32_w4_sk1_s1", "sm_90a", 64);
  b.add_moe_winner(2, kGemm2, down, 1, 4096);
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open(dir.file("kforge.sqlite").c_str(), &db) == KF_OK, kf_last_error());
  const kf_moe_shape s = layer_shape();
  const int max_t = 200;
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(db, &s, max_t, &bytes) == KF_OK);
  for (int t : {3, 10, 100}) {
    CAPTURE(t);
    const bool is_fused = t <= 4 || t > 64;
    const kf_kernel* k1 = nullptr;
    REQUIRE(kf_select_moe(db, 1, &s, t, &k1) == KF_OK);
    CHECK(kf_kernel_fuses_silu(k1) == (is_fused ? 1 : 0));
    kf_fake_cuda_reset();
    const kf_moe_layer_args a = layer_args(t, max_t, bytes);
    REQUIRE_MESSAGE(kf_run_moe(db, &s, &a, kStream) == KF_OK, kf_last_error());
    const std::vector<Launch> l = launches();
    // One align (every kernel has block_m 16), gemm1, [silu_mul,] gemm2, sum.
    REQUIRE(l.size() == (is_fused ? 4u : 5u));
    CHECK(l[0].kernel == "moe_align_any");
    CHECK(l[1].kernel == kf_kernel_name(k1));
    const size_t g2_at = is_fused ? 2 : 3;
    CHECK(l[g2_at].kernel == down);
    CHECK(l[g2_at + 1].kernel == "moe_sum_any_bf16");
    for (const Launch& x : l) CHECK(x.kernel != (is_fused ? "moe_silu_mul_any_bf16" : ""));
    const auto g1 = l[1].as<kf_moe_gemm_args>();
    const auto g2 = l[g2_at].as<kf_moe_gemm_args>();
    const auto sum = l[g2_at + 1].as<kf_moe_sum_args>();
    const int slots = t * 2;
    CHECK((g1.n == 256 && g1.k == 256));  // the GEMM's N = 2 I, fused or not
    if (is_fused) {
      // gemm1 writes h [slots, I] straight into gemm2's input.
      CHECK(g1.y == g2.x);
      CHECK(in_scratch(g1.y, uint64_t(slots) * 128 * 2, bytes));
    } else {
      const auto silu = l[2].as<kf_moe_silu_mul_args>();
      CHECK(l[2].kernel == "moe_silu_mul_any_bf16");
      CHECK(silu.x == g1.y);
      CHECK(silu.y == g2.x);
      CHECK((silu.rows == slots && silu.n == 128));
    }
    CHECK(g2.y != g2.x);
    CHECK(in_scratch(g2.y, uint64_t(slots) * 256 * 2, bytes));
    CHECK(sum.x == g2.y);
    // The fused kernels' grids are the unfused ones: N / block_n column blocks.
    const int64_t cap = (slots + std::min(slots, 8) * 15 + 15) / 16 * 16;
    if (t == 3) CHECK(grid_is(l[1], 256 / 64, 1, static_cast<unsigned>(cap / 16)));
    if (t == 100) {
      CHECK(grid_is(l[1], 256 / 128, static_cast<unsigned>(cap / 16), 2));  // prefill: (N / bn, capacity / bm, split_k)
      CHECK(address(g1.counters) == kScratch);
      CHECK(in_scratch(g1.workspace, uint64_t(2) * cap * 256 * 4, bytes));
    }
  }
  kf_close(db);
}

TEST_CASE("kf_run_moe skips sum after a gemm2 winner that sums over top_k; its first align zeroes y") {
  // gemm2: reducing decode up to T = 4, plain prefill up to 64, reducing split-K prefill
  // above (block_m 32: a second align, which zeroes nothing).
  TempDir dir{"rt-fake-cuda"};
  TestPackBuilder b;
  const std::string red = b.add_moe_kernel(2, "decode", kGemm2, "bm16_bn64_bk32_w4_sk1_s1_red", "sm_90a", 128);
  const std::string plain = b.add_moe_kernel(2, "prefill", kGemm2, "bm16_bn128_bk64_w4_sk1_s2", "sm_90a", 128);
  const std::string red_split = b.add_moe_kernel(2, "prefill", kGemm2, "bm32_bn128_bk64_w4_sk2_s2_red", "sm_90a", 128);
  b.add_moe_winner(2, kGemm2, red, 1, 4);
  b.add_moe_winner(2, kGemm2, plain, 5, 64);
  b.add_moe_winner(2, kGemm2, red_split, 65, 4096);
  const std::string up = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1", "sm_90a", 64);
  b.add_moe_winner(1, kGemm1, up, 1, 4096);
  b.add_moe_helpers();
  b.write(dir.file("kforge.sqlite"));
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open(dir.file("kforge.sqlite").c_str(), &db) == KF_OK, kf_last_error());
  const kf_moe_shape s = layer_shape();
  const int max_t = 200, hidden = 256;
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(db, &s, max_t, &bytes) == KF_OK);
  for (int t : {3, 10, 100}) {
    CAPTURE(t);
    const bool reduces = t <= 4 || t > 64;
    const kf_kernel* k2 = nullptr;
    REQUIRE(kf_select_moe(db, 2, &s, t, &k2) == KF_OK);
    CHECK(kf_kernel_reduces_topk(k2) == (reduces ? 1 : 0));
    CHECK(kf_kernel_fuses_silu(k2) == 0);
    kf_fake_cuda_reset();
    const kf_moe_layer_args a = layer_args(t, max_t, bytes);
    REQUIRE_MESSAGE(kf_run_moe(db, &s, &a, kStream) == KF_OK, kf_last_error());
    const std::vector<Launch> l = launches();
    // align [, align], gemm1, silu_mul, gemm2 [, sum].
    const size_t aligns = t > 64 ? 2 : 1;
    REQUIRE(l.size() == aligns + (reduces ? 3u : 4u));
    for (size_t i = 0; i < aligns; ++i) CHECK(l[i].kernel == "moe_align_any");
    CHECK(l[aligns].kernel == up);
    CHECK(l[aligns + 1].kernel == "moe_silu_mul_any_bf16");
    CHECK(l[aligns + 2].kernel == kf_kernel_name(k2));
    for (const Launch& x : l) CHECK(x.kernel != (reduces ? "moe_sum_any_bf16" : ""));
    const auto align = l[0].as<kf_moe_align_args>();
    const auto g2 = l[aligns + 2].as<kf_moe_gemm_args>();
    if (reduces) {
      // The first align zeroes y [t, H] with blocks past its first; gemm2 adds into y.
      CHECK(align.zero == a.y);
      CHECK(align.zero_count == int64_t{t} * hidden);
      CHECK(grid_is(l[0], 1 + static_cast<unsigned>((int64_t{t} * hidden + 32767) / 32768), 1, 1));
      CHECK(g2.y == a.y);
      if (aligns == 2) CHECK((l[1].as<kf_moe_align_args>().zero == nullptr && grid_is(l[1], 1, 1, 1)));
    } else {
      CHECK(align.zero == nullptr);
      CHECK(grid_is(l[0], 1, 1, 1));
      const auto sum = l.back().as<kf_moe_sum_args>();
      CHECK(l.back().kernel == "moe_sum_any_bf16");
      CHECK(sum.x == g2.y);
      CHECK(sum.y == a.y);
      CHECK(in_scratch(g2.y, uint64_t(t) * 2 * hidden * 2, bytes));
    }
  }
  // y overlapping x is refused when y is zeroed before gemm1 reads x; nothing launched.
  kf_fake_cuda_reset();
  kf_moe_layer_args a = layer_args(3, max_t, bytes);
  a.y = const_cast<void*>(a.x);
  CHECK(kf_run_moe(db, &s, &a, kStream) == KF_ERR_INVALID_ARGUMENT);
  CHECK(std::string(kf_last_error()).find("overlaps args->x") != std::string::npos);
  CHECK(kf_fake_cuda_launch_count() == 0);
  a = layer_args(10, max_t, bytes);  // the plain gemm2 winner: y may be x
  a.y = const_cast<void*>(a.x);
  CHECK(kf_run_moe(db, &s, &a, kStream) == KF_OK);
  kf_close(db);
}

// Skinny GEMMs wait for the kernel before them before they touch memory
// (templates/kf_grid_dependency.h), so they are launched to overlap it; no other kind
// waits, so none other overlaps, and KFORGE_OVERLAP_LAUNCHES=0 at open turns it off.
TEST_CASE("kf_run_moe overlaps skinny GEMMs with the kernel before them, and only those") {
  TempDir dir("rt-fake-cuda-overlap");
  const std::string path = dir.file("kforge.sqlite");
  TestPackBuilder b;
  const std::string g1_skinny = b.add_moe_kernel(1, "skinny", kGemm1, "bm8_bn64_bk32_w4_sk1_s4_silu", "sm_90a", 128);
  const std::string g1_decode = b.add_moe_kernel(1, "decode", kGemm1, "bm16_bn64_bk32_w4_sk1_s1", "sm_90a", 128);
  const std::string g2_skinny = b.add_moe_kernel(2, "skinny", kGemm2, "bm8_bn32_bk32_w2_sk1_s8_red", "sm_90a", 64);
  b.add_moe_winner(1, kGemm1, g1_skinny, 1, 8);
  b.add_moe_winner(1, kGemm1, g1_decode, 9, 4096);
  b.add_moe_winner(2, kGemm2, g2_skinny, 1, 4096);
  b.add_moe_helpers();
  b.write(path);
  const kf_moe_shape s = layer_shape();

  for (const bool switched_off : {false, true}) {
    CAPTURE(switched_off);
    if (switched_off) setenv("KFORGE_OVERLAP_LAUNCHES", "0", 1);
    kf_db* db = nullptr;
    const kf_status opened = kf_open(path.c_str(), &db);
    unsetenv("KFORGE_OVERLAP_LAUNCHES");
    REQUIRE_MESSAGE(opened == KF_OK, kf_last_error());
    size_t bytes = 0;
    REQUIRE(kf_moe_scratch_bytes(db, &s, 64, &bytes) == KF_OK);

    // T = 2: align, skinny gemm1 (fused SiLU), skinny gemm2 (sums into y).
    kf_fake_cuda_reset();
    kf_moe_layer_args a = layer_args(2, 64, bytes);
    REQUIRE_MESSAGE(kf_run_moe(db, &s, &a, kStream) == KF_OK, kf_last_error());
    std::vector<Launch> l = launches();
    REQUIRE(l.size() == 3);
    CHECK(l[0].kernel == "moe_align_any");
    CHECK(l[1].kernel == g1_skinny);
    CHECK(l[2].kernel == g2_skinny);
    CHECK_FALSE(l[0].overlap_previous);
    CHECK(l[1].overlap_previous == !switched_off);
    CHECK(l[2].overlap_previous == !switched_off);

    // T = 16: two aligns (block_m 16 and 8), decode gemm1, silu_mul, skinny gemm2.
    kf_fake_cuda_reset();
    a = layer_args(16, 64, bytes);
    REQUIRE_MESSAGE(kf_run_moe(db, &s, &a, kStream) == KF_OK, kf_last_error());
    l = launches();
    REQUIRE(l.size() == 5);
    CHECK(l[2].kernel == g1_decode);
    CHECK(l[3].kernel == "moe_silu_mul_any_bf16");
    CHECK(l[4].kernel == g2_skinny);
    for (int i = 0; i < 4; ++i) CHECK_FALSE(l[i].overlap_previous);
    CHECK(l[4].overlap_previous == !switched_off);

    // Launched on its own, the same: it reads nothing before the kernel before it is done.
    kf_fake_cuda_reset();
    const kf_kernel* k = nullptr;
    REQUIRE(kf_select_moe(db, 2, &s, 2, &k) == KF_OK);
    kf_moe_gemm_args g = l[4].as<kf_moe_gemm_args>();
    REQUIRE_MESSAGE(kf_launch_moe_gemm(k, &g, kStream) == KF_OK, kf_last_error());
    REQUIRE(kf_select_moe(db, 1, &s, 16, &k) == KF_OK);  // the decode kind
    g = l[2].as<kf_moe_gemm_args>();
    REQUIRE_MESSAGE(kf_launch_moe_gemm(k, &g, kStream) == KF_OK, kf_last_error());
    l = launches();
    REQUIRE(l.size() == 2);
    CHECK(l[0].overlap_previous == !switched_off);
    CHECK_FALSE(l[1].overlap_previous);
    kf_close(db);
  }
}

TEST_CASE("kf_run_moe, large T: two aligns for two block_m, prefill grids over the sorted capacity") {
  Pack p;
  const kf_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(p.db, &s, 4096, &bytes) == KF_OK);
  const kf_moe_layer_args a = layer_args(100, 4096, bytes);
  REQUIRE_MESSAGE(kf_run_moe(p.db, &s, &a, nullptr) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 6);
  CHECK(l[0].kernel == "moe_align_any");
  CHECK(l[1].kernel == "moe_align_any");
  CHECK(l[2].kernel == p.g1_prefill);
  CHECK(l[3].kernel == "moe_silu_mul_any_bf16");
  CHECK(l[4].kernel == p.g2_prefill);
  CHECK(l[5].kernel == "moe_sum_any_bf16");
  const auto a64 = l[0].as<kf_moe_align_args>(), a32 = l[1].as<kf_moe_align_args>();
  CHECK(a64.block_m == 64);
  CHECK(a32.block_m == 32);
  CHECK(a64.sorted_ids != a32.sorted_ids);
  // 200 slots over 8 experts: 200 + 8 * 63 = 704 rows for bm 64; 200 + 8 * 31 = 448 for bm 32.
  CHECK(grid_is(l[2], 256 / 128, 704 / 64, 1));  // prefill: (N / bn, capacity / bm, split_k)
  CHECK(grid_is(l[4], 256 / 64, 448 / 32, 1));
  CHECK(grid_is(l[3], (200 * 128 / 8 + 255) / 256, 1, 1));
  CHECK(grid_is(l[5], (100 * 256 / 8 + 255) / 256, 1, 1));
  CHECK(l[2].as<kf_moe_gemm_args>().sorted_ids == a64.sorted_ids);
  CHECK(l[4].as<kf_moe_gemm_args>().sorted_ids == a32.sorted_ids);
  CHECK(in_scratch(a64.sorted_ids, 704 * 4, bytes));
  CHECK(in_scratch(a32.sorted_ids, 448 * 4, bytes));
}

TEST_CASE("kf_run_moe, split-K T: workspace in the scratch, counters at its start for every T") {
  Pack p;
  const kf_moe_shape s = layer_shape();
  const int max_t = 64;
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(p.db, &s, max_t, &bytes) == KF_OK);
  const kf_kernel* split = nullptr;
  REQUIRE(kf_select_moe(p.db, 1, &s, max_t, &split) == KF_OK);
  REQUIRE(kf_kernel_name(split) == p.g1_split);
  int64_t floats = 0, most_counters = 0;
  REQUIRE(kf_kernel_workspace(split, max_t, &floats, &most_counters) == KF_OK);
  REQUIRE(most_counters > 0);
  for (int t : {5, 10, 16}) {  // gemm2's bm 16 kernel too: one align
    CAPTURE(t);
    kf_fake_cuda_reset();
    const kf_moe_layer_args a = layer_args(t, max_t, bytes);
    REQUIRE_MESSAGE(kf_run_moe(p.db, &s, &a, nullptr) == KF_OK, kf_last_error());
    const std::vector<Launch> l = launches();
    REQUIRE(l.size() == 5);
    const auto align = l[0].as<kf_moe_align_args>();
    const auto g1 = l[1].as<kf_moe_gemm_args>();
    REQUIRE(l[1].kernel == p.g1_split);
    int64_t f = 0, c = 0;
    REQUIRE(kf_kernel_workspace(split, t, &f, &c) == KF_OK);
    CHECK(grid_is(l[1], 256 / 128, 2, static_cast<unsigned>(f / 2 / 256 / 16)));  // (N / bn, split_k, capacity / bm)
    CHECK(address(g1.counters) == kScratch);
    CHECK(in_scratch(g1.workspace, f * 4, bytes));
    // Nothing else ever lies where the largest T's counters go.
    CHECK(address(align.sorted_ids) >= kScratch + most_counters * 4);
  }
}

TEST_CASE("kf_moe_scratch_bytes(max_t) is enough for every t <= max_t, across kernel changes") {
  Pack p;
  const kf_moe_shape s = layer_shape();
  for (int max_t : {1, 4, 5, 17, 64, 65, 130}) {
    CAPTURE(max_t);
    size_t bytes = 0;
    REQUIRE(kf_moe_scratch_bytes(p.db, &s, max_t, &bytes) == KF_OK);
    for (int t = 1; t <= max_t; ++t) {
      CAPTURE(t);
      const kf_moe_layer_args a = layer_args(t, max_t, bytes);
      CHECK_MESSAGE(kf_run_moe(p.db, &s, &a, nullptr) == KF_OK, kf_last_error());
    }
  }
}

TEST_CASE("kf_run_moe launches nothing when an input is bad or the scratch too small") {
  Pack p;
  const kf_moe_shape good = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(p.db, &good, 100, &bytes) == KF_OK);
  struct Case {
    const char* what;
    kf_status status;
    const char* message;
    void (*change)(kf_moe_layer_args&, kf_moe_shape&);
  };
  const Case cases[] = {
      {"scratch one byte short", KF_ERR_INVALID_ARGUMENT, "needs",
       [](kf_moe_layer_args& a, kf_moe_shape&) { a.scratch_bytes = 1; }},
      {"t 0", KF_ERR_INVALID_ARGUMENT, "args->t = 0", [](kf_moe_layer_args& a, kf_moe_shape&) { a.t = 0; }},
      {"t above max_t", KF_ERR_INVALID_ARGUMENT, "max_t = 100",
       [](kf_moe_layer_args& a, kf_moe_shape&) { a.t = 101; }},
      {"topk_ids NULL", KF_ERR_INVALID_ARGUMENT, "args->topk_ids is NULL",
       [](kf_moe_layer_args& a, kf_moe_shape&) { a.topk_ids = nullptr; }},
      {"w2_scales NULL", KF_ERR_INVALID_ARGUMENT, "args->w2_scales is NULL",
       [](kf_moe_layer_args& a, kf_moe_shape&) { a.w2_scales = nullptr; }},
      {"asym without qzeros", KF_ERR_INVALID_ARGUMENT, "args->w1_qzeros is NULL",
       [](kf_moe_layer_args&, kf_moe_shape& s) { s.asym = 1; }},
      {"misaligned scratch", KF_ERR_INVALID_ARGUMENT, "args->scratch is not 256-byte aligned",
       [](kf_moe_layer_args& a, kf_moe_shape&) { a.scratch = fake<void>(kScratch + 128); }},
      {"misaligned x", KF_ERR_INVALID_ARGUMENT, "args->x is not 16-byte aligned",
       [](kf_moe_layer_args& a, kf_moe_shape&) { a.x = fake<const void>(0x100008); }},
      {"top_k > E", KF_ERR_INVALID_ARGUMENT, "top_k = 9", [](kf_moe_layer_args&, kf_moe_shape& s) { s.top_k = 9; }},
      {"E > 1024", KF_ERR_INVALID_ARGUMENT, "experts = 2048",
       [](kf_moe_layer_args&, kf_moe_shape& s) { s.experts = 2048; }},
      {"untuned shape", KF_ERR_UNSUPPORTED_SHAPE, "e16_topk2",
       [](kf_moe_layer_args&, kf_moe_shape& s) { s.experts = 16; }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    kf_fake_cuda_reset();
    kf_moe_layer_args a = layer_args(3, 100, bytes);
    kf_moe_shape s = good;
    c.change(a, s);
    CHECK(kf_run_moe(p.db, &s, &a, nullptr) == c.status);
    CHECK_MESSAGE(contains(kf_last_error(), c.message), kf_last_error());
    CHECK(kf_fake_cuda_launch_count() == 0);
  }
  // The message says how many bytes the call needs (at most what kf_moe_scratch_bytes
  // said for its max_t); exactly that many is enough, one fewer is not.
  kf_moe_layer_args a = layer_args(100, 100, 1);
  REQUIRE(kf_run_moe(p.db, &good, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  const std::string message = kf_last_error();
  CHECK(contains(message, "scratch_bytes = 1 is too small"));
  const size_t at = message.find("needs ");
  REQUIRE(at != std::string::npos);
  const size_t needed = std::stoull(message.substr(at + 6));
  CHECK(needed <= bytes);
  a.scratch_bytes = needed - 1;
  CHECK(kf_run_moe(p.db, &good, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_fake_cuda_launch_count() == 0);
  a.scratch_bytes = needed;
  CHECK(kf_run_moe(p.db, &good, &a, nullptr) == KF_OK);
  CHECK(kf_fake_cuda_launch_count() == 6);
  CHECK(kf_run_moe(p.db, &good, nullptr, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_moe(p.db, nullptr, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_moe(nullptr, &good, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("a driver failure mid-layer is a backend error; what ran before it is all that ran") {
  Pack p;
  const kf_moe_shape s = layer_shape();
  size_t bytes = 0;
  REQUIRE(kf_moe_scratch_bytes(p.db, &s, 8, &bytes) == KF_OK);
  const kf_moe_layer_args a = layer_args(3, 8, bytes);
  kf_fake_cuda_fail_launches_of("w4a16_moe_gemm2");
  CHECK(kf_run_moe(p.db, &s, &a, nullptr) == KF_ERR_BACKEND);
  CHECK(contains(kf_last_error(), "cuLaunchKernel"));
  kf_fake_cuda_fail_launches_of(nullptr);
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 3);
  CHECK(l[2].kernel == "moe_silu_mul_any_bf16");
}

TEST_CASE("the single-piece calls launch with launch.h's geometry") {
  Pack p;
  const kf_moe_shape s = layer_shape();
  kf_moe_align_args al{fake<const int32_t>(0x1000), fake<int32_t>(0x2000), fake<int32_t>(0x3000),
                       fake<int32_t>(0x4000), 1000, 2, 8, 64, nullptr, 0};
  REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
  const kf_kernel* g2 = nullptr;
  REQUIRE(kf_select_moe(p.db, 2, &s, 1000, &g2) == KF_OK);
  int bm = 0;
  REQUIRE(kf_kernel_block_m(g2, &bm) == KF_OK);
  kf_moe_gemm_args g{};
  g.x = fake<const void>(0x10000);
  g.qweight = fake<const void>(0x20000);
  g.scales = fake<const void>(0x30000);
  g.topk_weights = fake<const float>(0x40000);
  g.sorted_ids = fake<const int32_t>(0x50000);
  g.expert_ids = fake<const int32_t>(0x60000);
  g.num_padded = fake<const int32_t>(0x70000);
  g.y = fake<void>(0x80000);
  g.t = 1000, g.top_k = 2, g.experts = 8, g.n = 256, g.k = 128, g.group = 0;
  CHECK(kf_launch_moe_gemm(g2, &g, nullptr) == KF_ERR_INVALID_ARGUMENT);  // group 0 is not this g128 kernel
  CHECK(contains(kf_last_error(), "group = 0"));
  g.group = 128;
  REQUIRE(kf_launch_moe_gemm(g2, &g, nullptr) == KF_OK);
  kf_moe_silu_mul_args sm{fake<const void>(0x10000), fake<void>(0x20000), 2000, 128};
  REQUIRE(kf_launch_moe_silu_mul(p.db, 1, &sm, nullptr) == KF_OK);
  kf_moe_sum_args su{fake<const void>(0x10000), fake<const int32_t>(0x20000), fake<void>(0x30000), 1000, 2, 8, 256};
  REQUIRE(kf_launch_moe_sum(p.db, 0, &su, nullptr) == KF_OK);
  // align zeroing 100000 16-bit values: blocks 1 .. 4 of the grid zero 32768 each.
  al.zero = fake<void>(0x90000);
  al.zero_count = 100000;
  REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 5);
  CHECK(grid_is(l[4], 5, 1, 1));
  CHECK(grid_is(l[0], 1, 1, 1));
  // 2000 slots over 8 experts, bm 32: 2000 + 8 * 31 = 2248 -> 2272 rows.
  CHECK(bm == 32);
  CHECK(grid_is(l[1], 256 / 64, 2272 / 32, 1));
  CHECK(grid_is(l[2], 2000 * 128 / 8 / 256, 1, 1));
  CHECK(l[3].kernel == "moe_sum_any_fp16");
  CHECK(grid_is(l[3], 1000 * 256 / 8 / 256, 1, 1));
}

TEST_CASE("moe_align: the cluster form from kAlignClusterMinSlots slots, in whole clusters") {
  constexpr int kMin = static_cast<int>(kf::moe::kAlignClusterMinSlots), kC = kf::moe::kAlignCluster;
  kf_moe_align_args al{fake<const int32_t>(0x1000), fake<int32_t>(0x2000), fake<int32_t>(0x3000),
                       fake<int32_t>(0x4000), kMin / 2 - 1, 2, 8, 64, nullptr, 0};
  {
    Pack p(true);
    REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);  // one slot short of the cluster form
    al.t = kMin / 2;
    REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
    // Zeroing 100000 values takes 4 blocks after the sorting cluster: one more cluster.
    al.zero = fake<void>(0x90000);
    al.zero_count = 100000;
    REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
    al.zero = nullptr;
    al.zero_count = 0;
    const kf_moe_shape s = layer_shape();
    size_t bytes = 0;
    REQUIRE(kf_moe_scratch_bytes(p.db, &s, 4096, &bytes) == KF_OK);
    kf_moe_layer_args a = layer_args(4096, 4096, bytes);
    REQUIRE_MESSAGE(kf_run_moe(p.db, &s, &a, kStream) == KF_OK, kf_last_error());
    const std::vector<Launch> l = launches();
    REQUIRE(l.size() >= 4);
    CHECK(l[0].kernel == "moe_align_any");
    CHECK(grid_is(l[0], 1, 1, 1));
    CHECK(l[1].kernel == "moe_align_cluster_any");
    CHECK(grid_is(l[1], kC, 1, 1));
    CHECK(l[2].kernel == "moe_align_cluster_any");
    CHECK(grid_is(l[2], 2 * kC, 1, 1));
    CHECK(l[2].as<kf_moe_align_args>().zero_count == 100000);
    CHECK(l[3].kernel == "moe_align_cluster_any");  // the layer's, at 8192 slots
  }
  {
    Pack p;  // a pack without the cluster form (HIP archs, older packs) sorts in one block
    REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
    const std::vector<Launch> l = launches();
    REQUIRE(l.size() == 1);
    CHECK(l[0].kernel == "moe_align_any");
    CHECK(grid_is(l[0], 1, 1, 1));
  }
  {
    setenv("KFORGE_CLUSTER_ALIGN", "0", 1);
    Pack p(true);
    unsetenv("KFORGE_CLUSTER_ALIGN");
    REQUIRE(kf_launch_moe_align(p.db, &al, nullptr) == KF_OK);
    const std::vector<Launch> l = launches();
    REQUIRE(l.size() == 1);
    CHECK(l[0].kernel == "moe_align_any");
  }
}

}  // TEST_SUITE
