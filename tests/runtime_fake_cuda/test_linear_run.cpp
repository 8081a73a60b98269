// kf_run_linear on the recording CUDA stand-in for the w4a16_linear kinds whose grid
// differs: a skinny winner launches on the decode kind's grid (N / block_n, split_k,
// ceil(M / block_m)) with its own thread count, a prefill winner on (N / block_n,
// ceil(M / block_m), split_k).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "fake_cuda.h"
#include "recorded_launches.h"
#include "kforge/kforge.h"
#include "test_pack.h"
#include "w4a16_linear/wgmma_tiling.h"

namespace {

using namespace kf_testing::recorded;

using kf_testing::TempDir;
using kf_testing::TestPackBuilder;

const char* kShape = "n2048_k4096_g128_bf16_sym";

kf_linear_args linear_args(int m) {
  kf_linear_args a{};
  a.x = fake<const void>(0x100000);
  a.qweight = fake<const void>(0x200000);
  a.scales = fake<const void>(0x300000);
  a.y = fake<void>(0x400000);
  a.workspace = fake<float>(0x500000);
  a.counters = fake<int>(0x600000);
  a.m = m;
  a.n = 2048;
  a.k = 4096;
  a.group = 128;
  return a;
}

// Writes b's kernels with `low` serving M 1 .. split and `high` above, opens the pack and
// clears the launch record.
kf_db* open_split_pack(const TempDir& dir, TestPackBuilder& b, const std::string& low, int split,
                       const std::string& high) {
  b.add_winner(kShape, low, 1, split);
  b.add_winner(kShape, high, split + 1, 4096);
  b.write(dir.file("kforge.sqlite"));
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open(dir.file("kforge.sqlite").c_str(), &db) == KF_OK, kf_last_error());
  kf_fake_cuda_reset();
  kf_fake_cuda_fail_launches_of(nullptr);
  return db;
}

// kf_run_linear at each M of `ms` (bf16, symmetric), on `stream`.
void run_linear_at(const kf_db* db, std::initializer_list<int> ms, void* stream = nullptr) {
  for (int m : ms) {
    kf_linear_args a = linear_args(m);
    REQUIRE_MESSAGE(kf_run_linear(db, &a, 1, 0, stream) == KF_OK, kf_last_error());
  }
}

}  // namespace

TEST_SUITE("runtime_fake_cuda") {

TEST_CASE("linear: a skinny ring above 48 KiB launches with its dynamic shared memory, allowed at load") {
  TempDir dir{"rt-fake-cuda-dynamic"};
  TestPackBuilder b;
  // 8 warps x 8 slots x 3 rows of 32 16-byte units (block_n 64, swapped form): 96 KiB.
  const std::string deep = b.add_kernel("skinny", kShape, "bm8_bn64_bk32_w8_sk1_s8", "sm_90a", 256);
  // 4 warps x 4 slots x 3 x 512 bytes: 24 KiB, static.
  const std::string shallow = b.add_kernel("skinny", kShape, "bm8_bn64_bk32_w4_sk1_s4", "sm_90a", 128);
  kf_db* db = open_split_pack(dir, b, deep, 4, shallow);
  run_linear_at(db, {1, 8});
  REQUIRE(kf_fake_cuda_launch_count() == 2);
  CHECK(std::string(kf_fake_cuda_launch_at(0)->kernel) == deep);
  CHECK(kf_fake_cuda_launch_at(0)->shared_bytes == 8 * 8 * 3 * 32 * 16);
  CHECK(std::string(kf_fake_cuda_launch_at(1)->kernel) == shallow);
  CHECK(kf_fake_cuda_launch_at(1)->shared_bytes == 0);
  kf_close(db);
}

TEST_CASE("linear: a skinny winner launches on the decode grid, a prefill one on its own") {
  TempDir dir{"rt-fake-cuda-linear"};
  TestPackBuilder b;
  const std::string skinny = b.add_kernel("skinny", kShape, "bm16_bn128_bk32_w8_sk2_s2", "sm_90a", 256);
  const std::string prefill = b.add_kernel("prefill", kShape, "bm64_bn128_bk64_w4_sk2_s2", "sm_90a", 128);
  kf_db* db = open_split_pack(dir, b, skinny, 16, prefill);
  void* const stream = fake<void>(0x5000);

  run_linear_at(db, {1, 9, 16, 100}, stream);
  REQUIRE(kf_fake_cuda_launch_count() == 4);
  for (int i = 0; i < 3; ++i) {
    const kf_fake_cuda_launch* l = kf_fake_cuda_launch_at(i);
    CHECK(std::string(l->kernel) == skinny);
    CHECK(l->grid[0] == 2048 / 128);
    CHECK(l->grid[1] == 2);  // split_k
    CHECK(l->grid[2] == 1);  // one 16-row block for M <= 16
    CHECK(l->block[0] == 256);
    CHECK(l->stream == stream);
    CHECK(l->overlap_previous);  // it waits for the kernel before it (kf_grid_dependency.h)
  }
  const kf_fake_cuda_launch* p = kf_fake_cuda_launch_at(3);
  CHECK(std::string(p->kernel) == prefill);
  CHECK_FALSE(p->overlap_previous);
  CHECK(p->grid[0] == 2048 / 128);
  CHECK(p->grid[1] == (100 + 63) / 64);
  CHECK(p->grid[2] == 2);
  kf_close(db);
}

TEST_CASE("linear: a stream-K wgmma winner launches one block per SM, at most the B it was built for") {
  // The stand-in has 132 SMs: _stk264 launches 132 blocks, _stk100 100, whatever M.
  TempDir dir{"rt-fake-cuda-stream-k"};
  TestPackBuilder b;
  const std::string wide = b.add_kernel("wgmma", kShape, "bm128_bn128_bk64_w8_sk1_s4_stk264", "sm_90a", 256);
  const std::string narrow = b.add_kernel("wgmma", kShape, "bm64_bn128_bk64_w8_sk1_s4_stk100", "sm_90a", 256);
  kf_db* db = open_split_pack(dir, b, narrow, 256, wide);
  run_linear_at(db, {1, 256, 257, 4096});
  REQUIRE(kf_fake_cuda_launch_count() == 4);
  for (int i = 0; i < 4; ++i) {
    const kf_fake_cuda_launch* l = kf_fake_cuda_launch_at(i);
    CHECK(std::string(l->kernel) == (i < 2 ? narrow : wide));
    CHECK(l->grid[0] == (i < 2 ? 100u : 132u));
    CHECK(l->grid[1] == 1);
    CHECK(l->grid[2] == 1);
    CHECK(l->block[0] == 256);
    CHECK(l->shared_bytes == static_cast<unsigned>(kf::w4a16::wgmma::smem_bytes(i < 2 ? 64 : 128, 128, 64, 4, false)));
  }
  kf_close(db);
}

// The runtime overlaps launches only on drivers that keep them under stream capture
// (12.3 on). The driver is probed once per process, so this case runs in its own
// process with the stand-in reporting 12.2 (ctest runtime_fake_cuda_old_driver) and is
// skipped in the main run.
TEST_CASE("linear: on a driver before 12.3 a skinny kernel launches as usual" * doctest::skip(true)) {
  const char* version = std::getenv("KF_FAKE_CUDA_DRIVER_VERSION");
  REQUIRE_MESSAGE((version && std::string(version) == "12020"), "run with KF_FAKE_CUDA_DRIVER_VERSION=12020");
  TempDir dir{"rt-fake-cuda-old-driver"};
  TestPackBuilder b;
  const std::string skinny = b.add_kernel("skinny", kShape, "bm8_bn64_bk32_w4_sk1_s4", "sm_90a", 128);
  const std::string prefill = b.add_kernel("prefill", kShape, "bm64_bn128_bk64_w4_sk2_s2", "sm_90a", 128);
  kf_db* db = open_split_pack(dir, b, skinny, 16, prefill);
  kf_linear_args a = linear_args(1);
  REQUIRE_MESSAGE(kf_run_linear(db, &a, 1, 0, nullptr) == KF_OK, kf_last_error());
  REQUIRE(kf_fake_cuda_launch_count() == 1);
  CHECK(std::string(kf_fake_cuda_launch_at(0)->kernel) == skinny);
  CHECK_FALSE(kf_fake_cuda_launch_at(0)->overlap_previous);
  kf_close(db);
}

}  // TEST_SUITE
