// Launch-side behaviour that needs no GPU: split-K workspace sizes, every argument
// check kf_launch makes before touching a device, the no-device error (not a crash)
// for CUDA and HIP archs, and kf_repack_weights' honest size/alignment check.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;

const char* kShape = "n2048_k4096_g128_bf16_sym";

struct LaunchPack {
  TempDir dir{"rt-launch"};
  std::string path = dir.file("kforge.sqlite");
  std::string split, plain, prefill;

  LaunchPack() {
    TestPackBuilder b;
    plain = b.add_kernel("decode", kShape, "bm1_bn64_bk32_w4_sk1_s1");
    split = b.add_kernel("decode", kShape, "bm4_bn128_bk64_w4_sk4_s1");
    prefill = b.add_kernel("prefill", kShape, "bm64_bn128_bk64_w4_sk1_s2");
    b.add_winner(kShape, plain, 1, 1);
    b.add_winner(kShape, split, 2, 16);
    b.add_winner(kShape, prefill, 17, 4096);
    b.add_generic(true, false);
    b.add_generic(true, false, "gfx1151");
    const std::string gfx = b.add_kernel("decode", kShape, "bm1_bn64_bk32_w4_sk1_s1", "gfx1151", 64);
    b.add_winner(kShape, gfx, 1, 4096, "AMD Radeon 8060S", 1, "gfx1151");
    b.write(path);
  }
};

// Aligned fake device addresses: kf_launch checks them but never dereferences them.
kf_linear_args fake_args(int m, int n = 2048, int k = 4096, int group = 128) {
  kf_linear_args a{};
  a.x = reinterpret_cast<const void*>(uintptr_t{0x10000});
  a.qweight = reinterpret_cast<const void*>(uintptr_t{0x20000});
  a.scales = reinterpret_cast<const void*>(uintptr_t{0x30000});
  a.y = reinterpret_cast<void*>(uintptr_t{0x40000});
  a.m = m;
  a.n = n;
  a.k = k;
  a.group = group;
  return a;
}

const kf_kernel* select(const kf_db* db, int64_t m) {
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_linear(db, 2048, 4096, 128, 1, 0, m, &k) == KF_OK);
  return k;
}

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("split-K workspace: per kernel and M, and the pack's maximum over what can be selected") {
  LaunchPack p;
  DbPtr db = open_for_arch(p.path);
  int64_t floats = -1, counters = -1;
  const kf_kernel* split = select(db.get(), 8);
  REQUIRE(kf_kernel_name(split) == p.split);
  REQUIRE(kf_kernel_workspace(split, 8, &floats, &counters) == KF_OK);
  CHECK(floats == 4 * 8 * 2048);              // split_k * M * N
  CHECK(counters == (2048 / 128) * (8 / 4));  // N / block_n * ceil(M / block_m)
  REQUIRE(kf_kernel_workspace(split, 9, &floats, &counters) == KF_OK);
  CHECK(counters == (2048 / 128) * 3);
  REQUIRE(kf_kernel_workspace(select(db.get(), 1), 1, &floats, &counters) == KF_OK);
  CHECK(floats == 0);
  CHECK(counters == 0);

  // The split-K kernel serves M up to 16 only: the maximum is its size at 16, however
  // large max_m gets, and its size at max_m below that.
  REQUIRE(kf_db_max_workspace(db.get(), 4096, &floats, &counters) == KF_OK);
  CHECK(floats == 4 * 16 * 2048);
  CHECK(counters == 16 * 4);
  REQUIRE(kf_db_max_workspace(db.get(), 5, &floats, &counters) == KF_OK);
  CHECK(floats == 4 * 5 * 2048);
  CHECK(counters == 16 * 2);
  REQUIRE(kf_db_max_workspace(db.get(), 1, &floats, &counters) == KF_OK);
  CHECK(floats == 0);

  CHECK(kf_kernel_workspace(split, 0, &floats, &counters) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_db_max_workspace(db.get(), 0, &floats, &counters) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_kernel_workspace(split, 1, nullptr, &counters) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("a skinny row is served like a decode one, for linear and MoE, in all forms; other block_m / block_k are ignored") {
  TempDir dir{"rt-skinny"};
  TestPackBuilder b;
  const std::string skinny = b.add_kernel("skinny", kShape, "bm16_bn128_bk32_w8_sk2_s2", "sm_90a", 256);
  const std::string prefill = b.add_kernel("prefill", kShape, "bm64_bn128_bk64_w4_sk1_s2");
  b.add_winner(kShape, skinny, 1, 16);
  b.add_winner(kShape, prefill, 17, 4096);
  const char* kOther = "n4096_k2048_g128_bf16_sym";
  const std::string bad_bm = b.add_kernel("skinny", kOther, "bm32_bn128_bk32_w8_sk1_s1", "sm_90a", 256);
  b.add_winner(kOther, bad_bm, 1, 8);
  const std::string bad_bk = b.add_kernel("skinny", kOther, "bm16_bn128_bk64_w8_sk1_s1", "sm_90a", 256);
  b.add_winner(kOther, bad_bk, 9, 4096);
  const char* kSwapped = "n1024_k2048_g128_bf16_sym";
  const std::string swapped = b.add_kernel("skinny", kSwapped, "bm8_bn64_bk32_w4_sk2_s4", "sm_90a", 128);
  b.add_winner(kSwapped, swapped, 1, 8);
  // The swapped form at block_m 16 (_sw): w4a16_linear's skinny kind only.
  const std::string paired = b.add_kernel("skinny", kSwapped, "bm16_bn64_bk32_w4_sk1_s4_sw", "sm_90a", 128);
  b.add_winner(kSwapped, paired, 9, 16);
  b.add_winner(kSwapped, b.add_kernel("prefill", kSwapped, "bm64_bn128_bk64_w4_sk1_s2"), 17, 4096);
  const char* kThird = "n8192_k2048_g128_bf16_sym";
  const std::string bad_sw = b.add_kernel("prefill", kThird, "bm16_bn128_bk64_w4_sk1_s2_sw");
  b.add_winner(kThird, bad_sw, 1, 4);
  const char* kExpert = "e8_topk2_n256_k256_g128_bf16_sym";
  const std::string moe = b.add_moe_kernel(1, "skinny", kExpert, "bm16_bn64_bk32_w4_sk1_s1");
  b.add_moe_winner(1, kExpert, moe, 1, 4096);
  const std::string moe_sw = b.add_moe_kernel(2, "skinny", kExpert, "bm16_bn64_bk32_w4_sk1_s1_sw");
  b.add_moe_winner(2, kExpert, moe_sw, 1, 4096);
  b.write(dir.file("kforge.sqlite"));
  auto [db, warnings] = open_capturing_stderr(dir, dir.file("kforge.sqlite"));
  CHECK_FALSE(contains(warnings, skinny));
  CHECK(contains(warnings, bad_bm));
  CHECK(contains(warnings, bad_bk));
  CHECK(contains(warnings, "block_m 16 (or 8, the swapped form) and block_k 32"));
  CHECK_FALSE(contains(warnings, moe));
  CHECK_FALSE(contains(warnings, swapped));
  CHECK_FALSE(contains(warnings, paired));
  CHECK(contains(warnings, bad_sw));
  CHECK(contains(warnings, moe_sw));
  CHECK(contains(warnings, "_sw) is for w4a16_linear's skinny kind only"));

  const kf_kernel* k = select(db.get(), 9);
  REQUIRE(kf_kernel_name(k) == skinny);
  // Its split tiles sum within a thread-block cluster: no split-K scratch, and a launch
  // without any is fine.
  int64_t floats = -1, counters = -1;
  REQUIRE(kf_kernel_workspace(k, 9, &floats, &counters) == KF_OK);
  CHECK(floats == 0);
  CHECK(counters == 0);
  REQUIRE(kf_db_max_workspace(db.get(), 16, &floats, &counters) == KF_OK);
  CHECK(floats == 0);
  CHECK(counters == 0);
  kf_linear_args a = fake_args(9);
  const kf_status launched = kf_launch(k, &a, nullptr);  // no workspace: fails only for want of a GPU
  CHECK((launched == KF_OK || !contains(kf_last_error(), "workspace")));
  CHECK(pick(db.get(), 4096, 2048, 4) == "");  // both skinny rows of that shape ignored, no generic

  // The swapped form likewise.
  const kf_kernel* sw = nullptr;
  REQUIRE(kf_select_linear(db.get(), 1024, 2048, 128, 1, 0, 8, &sw) == KF_OK);
  REQUIRE(kf_kernel_name(sw) == swapped);
  REQUIRE(kf_kernel_workspace(sw, 12, &floats, &counters) == KF_OK);
  CHECK(floats == 0);
  CHECK(counters == 0);
  REQUIRE(kf_select_linear(db.get(), 1024, 2048, 128, 1, 0, 12, &sw) == KF_OK);
  REQUIRE(kf_kernel_name(sw) == paired);
}

TEST_CASE("a stream-K wgmma row: B tiles of workspace and B counters at every M; w4a16_linear's wgmma kind only") {
  TempDir dir{"rt-stream-k"};
  TestPackBuilder b;
  const std::string stream = b.add_kernel("wgmma", kShape, "bm128_bn128_bk64_w8_sk1_s4_stk132", "sm_90a", 256);
  b.add_winner(kShape, b.add_kernel("skinny", kShape, "bm16_bn64_bk32_w4_sk1_s4", "sm_90a", 128), 1, 16);
  b.add_winner(kShape, stream, 17, 4096);
  // Refused: with split-K, on another kind, for an MoE GEMM, beyond the wgmma rules.
  const char* kOther = "n4096_k2048_g128_bf16_sym";
  const std::string split = b.add_kernel("wgmma", kOther, "bm128_bn128_bk64_w8_sk2_s4_stk132", "sm_90a", 256);
  b.add_winner(kOther, split, 1, 16);
  const std::string skinny = b.add_kernel("skinny", kOther, "bm16_bn64_bk32_w4_sk1_s4_stk132", "sm_90a", 128);
  b.add_winner(kOther, skinny, 17, 64);
  const std::string wide = b.add_kernel("wgmma", kOther, "bm256_bn128_bk128_w8_sk1_s4_stk132", "sm_90a", 256);
  b.add_winner(kOther, wide, 65, 4096);
  const char* kExpert = "e8_topk2_n256_k256_g128_bf16_sym";
  const std::string moe = b.add_moe_kernel(1, "wgmma", kExpert, "bm64_bn128_bk64_w8_sk1_s4_stk132");
  b.add_moe_winner(1, kExpert, moe, 1, 4096);
  const char* kHalf = "n2048_k4096_g128_fp16_sym";
  const std::string half = b.add_kernel("wgmma", kHalf, "bm128_bn128_bk64_w8_sk1_s4_stk132", "sm_90a", 256);
  b.add_winner(kHalf, half, 1, 4096);
  b.write(dir.file("kforge.sqlite"));
  auto [db, warnings] = open_capturing_stderr(dir, dir.file("kforge.sqlite"));
  CHECK_FALSE(contains(warnings, stream));
  for (const std::string& bad : {split, skinny, moe}) CHECK(contains(warnings, bad));
  CHECK(contains(warnings, "_stk) is for w4a16_linear's wgmma kind only, without split-K"));
  CHECK(contains(warnings, wide));  // four 72 KiB stages
  CHECK(contains(warnings, "outside the wgmma kind's rules"));

  const kf_kernel* k = select(db.get(), 300);
  REQUIRE(kf_kernel_name(k) == stream);
  int64_t floats = -1, counters = -1;
  // A bf16 layer's blocks exchange bf16 pairs: half a tile of words each (wgmma.h).
  for (int64_t m : {17, 300, 4096}) {
    REQUIRE(kf_kernel_workspace(k, m, &floats, &counters) == KF_OK);
    CHECK(floats == 132 * 128 * 128 / 2);
    CHECK(counters == 132);
  }
  // An fp16 layer's exchange fp32 partials: a whole tile each.
  const kf_kernel* k16 = nullptr;
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 0, 0, 300, &k16) == KF_OK);
  REQUIRE(kf_kernel_name(k16) == half);
  REQUIRE(kf_kernel_workspace(k16, 300, &floats, &counters) == KF_OK);
  CHECK(floats == 132 * 128 * 128);
  CHECK(counters == 132);
  REQUIRE(kf_db_max_workspace(db.get(), 4096, &floats, &counters) == KF_OK);
  CHECK(floats == 132 * 128 * 128);  // the fp16 layer's
  CHECK(counters == 132);
  kf_linear_args a = fake_args(300);
  CHECK(kf_launch(k, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "stream-K kernel needs args->workspace and args->counters"));
}

TEST_CASE("kf_launch checks its arguments before it needs a device") {
  LaunchPack p;
  DbPtr db = open_for_arch(p.path);
  const kf_kernel* split = select(db.get(), 8);
  const kf_kernel* plain = select(db.get(), 1);
  kf_linear_args a = fake_args(8);

  CHECK(kf_launch(split, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);  // split-K without workspace
  CHECK(contains(kf_last_error(), "workspace"));
  CHECK(contains(kf_last_error(), p.split));

  a = fake_args(1, 4096);
  CHECK(kf_launch(plain, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "n = 4096"));
  CHECK(contains(kf_last_error(), "n = 2048"));
  a = fake_args(1, 2048, 4096, 64);
  CHECK(kf_launch(plain, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  a = fake_args(0);
  CHECK(kf_launch(plain, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "m = 0"));
  a = fake_args(1);
  a.scales = nullptr;
  CHECK(kf_launch(plain, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "args->scales is NULL"));
  a = fake_args(1);
  a.x = reinterpret_cast<const void*>(uintptr_t{0x10008});
  CHECK(kf_launch(plain, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "misaligned"));
  CHECK(kf_launch(plain, nullptr, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_launch(nullptr, &a, nullptr) == KF_ERR_INVALID_ARGUMENT);

  // The generic kernel takes the shape at run time, within what it can do.
  const kf_kernel* generic = nullptr;
  REQUIRE(kf_select_linear(db.get(), 4096, 1024, 128, 1, 0, 3, &generic) == KF_OK);
  a = fake_args(3, 4096, 1000);
  CHECK(kf_launch(generic, &a, nullptr) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "k = 1000"));
  // Too many rows for the grid (z = ceil(M / 4) > 65535).
  a = fake_args(4 * 65535 + 1, 4096, 1024);
  CHECK(kf_launch(generic, &a, nullptr) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "65535"));
}

TEST_CASE("launching without a device is a no-device error, for CUDA and HIP archs alike") {
  LaunchPack p;
  for (const char* arch : {"sm_90a", "gfx1151"}) {
    CAPTURE(arch);
    DbPtr db = open_for_arch(p.path, arch, nullptr);
    const kf_kernel* k = select(db.get(), 1);
    kf_linear_args a = fake_args(1);
    const kf_status status = kf_launch(k, &a, nullptr);
    if (status == KF_OK) continue;  // a machine with that GPU (then the fake code would not even load)
    CHECK(status == KF_ERR_NO_DEVICE);
    const std::string message = kf_last_error();
    CHECK_MESSAGE(contains(message, std::string("no ") + arch + " device"), message);
    CHECK(kf_launch(k, &a, nullptr) == KF_ERR_NO_DEVICE);  // remembered, same answer
    CHECK(kf_run_linear(db.get(), &a, 1, 0, nullptr) == KF_ERR_NO_DEVICE);
    CHECK(kf_prepare(db.get()) == KF_ERR_NO_DEVICE);
    a.m = 0;
    CHECK(kf_run_linear(db.get(), &a, 1, 0, nullptr) == KF_ERR_INVALID_ARGUMENT);
  }
  CHECK(kf_prepare(nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_linear(nullptr, nullptr, 1, 0, nullptr) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("an arch no backend serves opens for selection; launching it says why not") {
  TempDir dir("rt-launch");
  const std::string path = dir.file("kforge.sqlite");
  TestPackBuilder b;
  b.add_generic(true, false, "xpu9");
  b.write(path);
  DbPtr db = open_for_arch(path, "xpu9", nullptr);
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, &k) == KF_OK);
  kf_linear_args a = fake_args(1);
  CHECK(kf_launch(k, &a, nullptr) == KF_ERR_NO_DEVICE);
  CHECK(contains(kf_last_error(), "no GPU backend serves arch xpu9"));
}

TEST_CASE("kf_repack_weights copies nothing and checks sizes and alignment exactly") {
  const int64_t n = 2048, k = 4096;
  const auto* base = reinterpret_cast<const char*>(uintptr_t{0x100000});
  const size_t qweight = k / 8 * n * 4, scales = k / 128 * n * 2, qzeros = k / 128 * (n / 8) * 4;
  CHECK(kf_repack_weights(n, k, 128, 0, base, qweight, base, scales, nullptr, 0) == KF_OK);
  CHECK(kf_repack_weights(n, k, 128, 1, base, qweight, base, scales, base, qzeros) == KF_OK);
  CHECK(kf_repack_weights(n, k, 0, 0, base, qweight, base, k / k * n * 2, nullptr, 0) == KF_OK);

  CHECK(kf_repack_weights(n, k, 128, 0, base, qweight - 4, base, scales, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "qweight is 4194300 bytes"));
  CHECK(contains(kf_last_error(), "4194304 bytes"));
  CHECK(kf_repack_weights(n, k, 128, 0, base, qweight, base, scales * 2, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "scales"));
  CHECK(kf_repack_weights(n, k, 128, 1, base, qweight, base, scales, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "qzeros is NULL"));
  CHECK(kf_repack_weights(n, k, 128, 0, base + 4, qweight, base, scales, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "16-byte aligned"));
  CHECK(kf_repack_weights(n, 4100, 128, 0, base, qweight, base, scales, nullptr, 0) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "k = 4100"));
}

}  // TEST_SUITE
