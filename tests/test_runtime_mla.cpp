// Runtime sparse MLA decode selection and checks that need no GPU: winners by Q range,
// kf_select by key, the nearest-extras-bucket fallback (flag, one stderr line per
// shape), untuned H and impossible shapes, scratch sizes, a pack whose split winners
// lack the combine kernel, and kf_check_mla_indices. Launch order, grids and the bad
// launch inputs (nothing launched): tests/runtime_fake_cuda/test_mla_run.cpp.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kforge/kforge.hpp"
#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;

const char* kShape = "h128_topk2048_x0_bf16";
const char* kShapeX128 = "h128_topk2048_x128_bf16";
const char* kShapeFp16 = "h64_topk512_x0_fp16";

kf_mla_shape mla_shape(int heads = 128, int topk = 2048, int extras = 0, int bf16 = 1) {
  kf_mla_shape s{};
  s.heads = heads;
  s.topk = topk;
  s.extras = extras;
  s.bf16 = bf16;
  return s;
}

struct MlaPack {
  TempDir dir{"rt-mla"};
  std::string path = dir.file("kforge.sqlite");
  std::string split8, split2, plain, x128, fp16;

  MlaPack() {
    TestPackBuilder b;
    split8 = b.add_mla_kernel(kShape, "bh16_bk16_w4_sp8_s2");
    split2 = b.add_mla_kernel(kShape, "bh32_bk32_w8_sp2_s2");
    plain = b.add_mla_kernel(kShape, "bh64_bk32_w16_sp1_s2");
    b.add_mla_winner(kShape, split8, 1, 4);
    b.add_mla_winner(kShape, split2, 5, 32);
    b.add_mla_winner(kShape, plain, 33, 1024);
    x128 = b.add_mla_kernel(kShapeX128, "bh16_bk16_w4_sp4_s1");
    b.add_mla_winner(kShapeX128, x128, 1, 1024);
    fp16 = b.add_mla_kernel(kShapeFp16, "bh16_bk32_w4_sp1_s1");
    b.add_mla_winner(kShapeFp16, fp16, 1, 1024);
    b.add_mla_combine(true);
    b.add_mla_combine(false);
    b.add_generic(true, false);
    b.write(path);
  }
};

std::string pick_mla(const kf_db* db, int64_t queries, kf_mla_shape s = mla_shape()) {
  const kf_kernel* k = nullptr;
  if (kf_select_mla(db, &s, queries, &k) != KF_OK) return "";
  return kf_kernel_name(k);
}

int64_t part_bytes(int64_t splits, int64_t queries, int64_t heads) {
  return splits * queries * heads * 512 * 4 + splits * queries * heads * 4;
}

}  // namespace

TEST_SUITE("runtime mla") {

TEST_CASE("MLA: the winner by Q range, and kf_select by key agrees") {
  MlaPack p;
  DbPtr db = open_for_arch(p.path);
  CHECK(pick_mla(db.get(), 1) == p.split8);
  CHECK(pick_mla(db.get(), 4) == p.split8);
  CHECK(pick_mla(db.get(), 5) == p.split2);
  CHECK(pick_mla(db.get(), 32) == p.split2);
  CHECK(pick_mla(db.get(), 33) == p.plain);
  CHECK(pick_mla(db.get(), 1024) == p.plain);
  CHECK(pick_mla(db.get(), 100000) == p.plain);  // above the largest tuned Q: the last range
  CHECK(pick_mla(db.get(), 7, mla_shape(128, 2048, 128)) == p.x128);
  CHECK(pick_mla(db.get(), 7, mla_shape(64, 512, 0, 0)) == p.fp16);
  for (int64_t q : {1, 5, 40}) {
    CAPTURE(q);
    const kf_mla_shape s = mla_shape();
    const kf_kernel *a = nullptr, *b = nullptr;
    REQUIRE(kf_select_mla(db.get(), &s, q, &a) == KF_OK);
    REQUIRE(kf_select(db.get(), "sparse_mla_decode", kShape, q, &b) == KF_OK);
    CHECK(a == b);
    CHECK(kf_kernel_is_fallback(a) == 0);
  }
  // The linear side of the same pack is untouched (generic fallback).
  CHECK(pick(db.get(), 2048, 4096, 3) == "w4a16_linear_generic_any_bf16_sym_bm4_bn128_bk32_w4_sk1_s1");
}

TEST_CASE("MLA: an untuned extras bucket is served by the nearest tuned one, flagged, reported once") {
  MlaPack p;
  DbPtr db = open_for_arch(p.path);
  CaptureStderr err(p.dir);
  const kf_kernel* k = nullptr;
  struct Case {
    kf_mla_shape shape;
    int64_t queries;
    std::string kernel;
  };
  const std::vector<Case> cases = {
      {mla_shape(128, 2048, 32), 2, p.split8},  // nearer x0
      {mla_shape(128, 2048, 32), 40, p.plain},  // x0's ranges still decide by Q
      {mla_shape(128, 2048, 64), 2, p.x128},    // a tie: the larger bucket
      {mla_shape(128, 2048, 4096), 2, p.x128},  // above every bucket
      {mla_shape(64, 512, 128, 0), 3, p.fp16},  // the only bucket of the fp16 shape
  };
  for (const Case& c : cases) {
    CAPTURE(c.shape.extras);
    CAPTURE(c.queries);
    for (int twice = 0; twice < 2; ++twice) {
      REQUIRE_MESSAGE(kf_select_mla(db.get(), &c.shape, c.queries, &k) == KF_OK, kf_last_error());
      CHECK(kf_kernel_name(k) == c.kernel);
      CHECK(kf_kernel_is_fallback(k) == 1);
    }
  }
  // By key too (the same once-per-shape report).
  REQUIRE(kf_select(db.get(), "sparse_mla_decode", "h128_topk2048_x64_bf16", 9, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == p.x128);
  CHECK(kf_kernel_is_fallback(k) == 1);
  // A tuned bucket is never a fallback.
  const kf_mla_shape tuned = mla_shape(128, 2048, 128);
  REQUIRE(kf_select_mla(db.get(), &tuned, 2, &k) == KF_OK);
  CHECK(kf_kernel_is_fallback(k) == 0);
  const std::string text = err.text();
  CHECK(count_of(text, "kforge: no tuned sparse_mla_decode kernel for") == 4);  // one per requested shape
  CHECK(count_of(text, "h128_topk2048_x32_bf16 on sm_90a; using the tuned extras bucket h128_topk2048_x0_bf16") == 1);
  CHECK(count_of(text, "h128_topk2048_x64_bf16 on sm_90a; using the tuned extras bucket h128_topk2048_x128_bf16") ==
        1);
  CHECK(count_of(text, "h64_topk512_x128_fp16") == 1);
}

TEST_CASE("MLA: an untuned H is unsupported, naming H and the tuned ones; impossible shapes are invalid") {
  MlaPack p;
  DbPtr db = open_for_arch(p.path);
  const kf_kernel* k = nullptr;
  kf_mla_shape s = mla_shape(64);
  CHECK(kf_select_mla(db.get(), &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  const std::string message = kf_last_error();
  CHECK(contains(message, "H = 64, topk = 2048, bf16"));
  CHECK(contains(message, "h64_topk2048_x0_bf16"));
  CHECK(contains(message, "tuned there: H = 64 (topk 512, fp16), H = 128 (topk 2048, bf16)"));
  s = mla_shape(128, 1024);  // H tuned, topk not
  CHECK(kf_select_mla(db.get(), &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "topk = 1024"));
  s = mla_shape(128, 2048, 0, 0);  // dtype not
  CHECK(kf_select_mla(db.get(), &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(kf_select(db.get(), "sparse_mla_decode", "h96_topk2048_x0_bf16", 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);

  struct Bad {
    kf_mla_shape shape;
    const char* message;
  };
  const Bad bad[] = {{mla_shape(100), "H must be a multiple of 16"},
                     {mla_shape(0), "H = 0"},
                     {mla_shape(512), "H = 512"},
                     {mla_shape(128, 0), "topk must be in [1, 65536]"},
                     {mla_shape(128, 2048, -1), "extras = -1"}};
  for (const Bad& b : bad) {
    CAPTURE(b.message);
    CHECK(kf_select_mla(db.get(), &b.shape, 1, &k) == KF_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE(contains(kf_last_error(), b.message), kf_last_error());
  }
  s = mla_shape();
  CHECK(kf_select_mla(db.get(), &s, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "queries = 0"));
  CHECK(kf_select(db.get(), "sparse_mla_decode", kShape, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select(db.get(), "sparse_mla_decode", "h128_topk2048_bf16", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "expected like h128_topk2048_x0_bf16"));
  CHECK(kf_select(db.get(), "sparse_mla_decode", "h128_topk2048_x00_bf16", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_mla(nullptr, &s, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_mla(db.get(), nullptr, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_mla(db.get(), &s, 1, nullptr) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("MLA: a pack without sparse MLA winners serves none") {
  TempDir dir("rt-mla");
  TestPackBuilder b;
  b.add_generic(true, false);
  b.add_mla_kernel(kShape, "bh16_bk16_w4_sp8_s2");  // compiled, never tuned
  b.add_mla_combine(true);
  b.write(dir.file("kforge.sqlite"));
  DbPtr db = open_for_arch(dir.file("kforge.sqlite"));
  const kf_mla_shape s = mla_shape();
  const kf_kernel* k = nullptr;
  CHECK(kf_select_mla(db.get(), &s, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "tuned there: none"));
  size_t bytes = 1;
  CHECK(kf_mla_scratch_bytes(db.get(), &s, 8, &bytes) == KF_ERR_UNSUPPORTED_SHAPE);
}

TEST_CASE("MLA: scratch is the most part_o + part_lse any selectable kernel needs up to max_queries") {
  MlaPack p;
  DbPtr db = open_for_arch(p.path);
  const kf_mla_shape s = mla_shape();
  size_t bytes = 0;
  struct Case {
    int64_t max_queries, expected;
  };
  const Case cases[] = {
      {1, part_bytes(8, 1, 128)},
      {4, part_bytes(8, 4, 128)},
      {10, part_bytes(8, 4, 128)},   // sp8 at Q = 4 needs more than sp2 at Q = 10
      {16, part_bytes(2, 16, 128)},  // equal to sp8 at 4: either
      {32, part_bytes(2, 32, 128)},
      {100000, part_bytes(2, 32, 128)},  // the unsplit kernel above Q = 32 needs none
  };
  for (const Case& c : cases) {
    CAPTURE(c.max_queries);
    REQUIRE(kf_mla_scratch_bytes(db.get(), &s, c.max_queries, &bytes) == KF_OK);
    CHECK(static_cast<int64_t>(bytes) == c.expected);
    CHECK(bytes % 16 == 0);
  }
  const kf_mla_shape x128 = mla_shape(128, 2048, 128), fallback = mla_shape(128, 2048, 100);
  REQUIRE(kf_mla_scratch_bytes(db.get(), &x128, 50, &bytes) == KF_OK);
  CHECK(static_cast<int64_t>(bytes) == part_bytes(4, 50, 128));
  REQUIRE(kf_mla_scratch_bytes(db.get(), &fallback, 50, &bytes) == KF_OK);  // the bucket it selects: x128
  CHECK(static_cast<int64_t>(bytes) == part_bytes(4, 50, 128));
  const kf_mla_shape unsplit = mla_shape(64, 512, 0, 0);
  REQUIRE(kf_mla_scratch_bytes(db.get(), &unsplit, 1000, &bytes) == KF_OK);
  CHECK(bytes == 0);
  CHECK(kf_mla_scratch_bytes(db.get(), &s, 0, &bytes) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "max_queries = 0"));
  const kf_mla_shape bad = mla_shape(24);
  CHECK(kf_mla_scratch_bytes(db.get(), &bad, 4, &bytes) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_mla_scratch_bytes(db.get(), &s, 4, nullptr) == KF_ERR_INVALID_ARGUMENT);
}

TEST_CASE("MLA: split winners without the pack's combine kernel: said at open, refused at first use") {
  TempDir dir("rt-mla");
  TestPackBuilder b;
  const std::string split = b.add_mla_kernel(kShape, "bh16_bk16_w4_sp8_s2");
  const std::string plain = b.add_mla_kernel(kShape, "bh64_bk32_w16_sp1_s2");
  b.add_mla_winner(kShape, split, 1, 4);
  b.add_mla_winner(kShape, plain, 5, 1024);
  b.add_mla_combine(false);  // the other dtype's only
  b.write(dir.file("kforge.sqlite"));
  auto [db, opened] = open_capturing_stderr(dir, dir.file("kforge.sqlite"));
  CHECK(contains(opened, "sparse_mla_decode h128_topk2048_x0_bf16 has split-KV winners but the pack has no "
                         "sparse_mla_combine_any_bf16 kernel"));
  const kf_mla_shape s = mla_shape();
  size_t bytes = 0;
  CHECK(kf_mla_scratch_bytes(db.get(), &s, 4, &bytes) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "no sparse_mla_combine_any_bf16 kernel"));
  // Selection still answers; the unsplit range still launches as far as a device.
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_mla(db.get(), &s, 2, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == split);
  kf_mla_decode_args a{};
  a.q = reinterpret_cast<const void*>(uintptr_t{0x10000});
  a.kv = reinterpret_cast<const void*>(uintptr_t{0x20000});
  a.indices = reinterpret_cast<const int32_t*>(uintptr_t{0x30000});
  a.o = reinterpret_cast<void*>(uintptr_t{0x40000});
  a.queries = 2;
  a.kv_rows = 4096;
  a.heads = 128;
  a.topk = 2048;
  a.softmax_scale = 0.0417f;
  CHECK(kf_launch_mla(k, &a, reinterpret_cast<void*>(uintptr_t{0x100000}), 1 << 30, nullptr) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "sparse_mla_combine_any_bf16"));
  a.queries = 8;
  const kf_status unsplit = kf_run_mla(db.get(), &s, &a, nullptr, 0, nullptr);
  CHECK(unsplit != KF_ERR_INVALID_ARGUMENT);  // past the checks: KF_ERR_NO_DEVICE here (fake code objects)
  CHECK(unsplit != KF_ERR_NOT_FOUND);
}

TEST_CASE("MLA: the C++ wrapper's calls") {
  MlaPack p;
  const kforge::Db db = kforge::Db::open_for_arch(p.path, "sm_90a", kTestDevice);
  CHECK(static_cast<int64_t>(db.mla_scratch_bytes(mla_shape(), 4)) == part_bytes(8, 4, 128));
  try {
    db.mla_scratch_bytes(mla_shape(48), 4);
    FAIL("no exception for an untuned H");
  } catch (const kforge::Error& e) {
    CHECK(e.status() == KF_ERR_UNSUPPORTED_SHAPE);
    CHECK(contains(e.what(), "H = 48"));
  }
  const kf_kernel* k = nullptr;
  REQUIRE(db.select_mla(mla_shape(), 5, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == p.split2);
  kf_mla_decode_args a{};
  CHECK(db.run_mla(mla_shape(), a, nullptr, 0, nullptr) == KF_ERR_INVALID_ARGUMENT);  // hot path: a status
}

TEST_CASE("MLA: kf_check_mla_indices names the first entry that is neither -1 nor in [0, kv_rows)") {
  const std::vector<int32_t> good = {0, 5, -1, 9, -1, -1, 3, 3};  // 2 queries x topk 4, S = 10
  int64_t bad = 7;
  CHECK(kf_check_mla_indices(good.data(), 2, 4, 10, &bad) == KF_OK);
  CHECK(bad == -1);
  CHECK(kf_check_mla_indices(good.data(), 2, 4, 10, nullptr) == KF_OK);
  std::vector<int32_t> v = good;
  v[6] = 10;  // = S
  CHECK(kf_check_mla_indices(v.data(), 2, 4, 10, &bad) == KF_ERR_INVALID_ARGUMENT);
  CHECK(bad == 6);
  CHECK(contains(kf_last_error(), "indices[6] (query 1, slot 2) = 10"));
  CHECK(contains(kf_last_error(), "kv_rows = 10"));
  v[3] = -2;  // earlier, and negative but not -1
  CHECK(kf_check_mla_indices(v.data(), 2, 4, 10, &bad) == KF_ERR_INVALID_ARGUMENT);
  CHECK(bad == 3);
  CHECK(contains(kf_last_error(), "indices[3] (query 0, slot 3) = -2"));
  CHECK(kf_check_mla_indices(v.data(), 2, 4, 10, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_check_mla_indices(v.data(), 1, 3, 10, &bad) == KF_OK);  // only the first 3 entries
  CHECK(kf_check_mla_indices(nullptr, 2, 4, 10, &bad) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "host_indices is NULL"));
  CHECK(kf_check_mla_indices(good.data(), 0, 4, 10, &bad) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "queries = 0"));
  CHECK(kf_check_mla_indices(good.data(), 2, 4, 0, &bad) == KF_ERR_INVALID_ARGUMENT);
  CHECK(bad == -1);
}

}  // TEST_SUITE
