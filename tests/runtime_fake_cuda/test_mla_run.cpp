// kf_launch_mla and kf_run_mla on a recording CUDA stand-in: a split-KV winner launches
// decode then combine on the caller's stream with sparse_mla/launch.h's grids and the
// partials placed in the scratch; an unsplit winner launches decode alone; the scratch
// kf_mla_scratch_bytes gives is enough for every Q up to its max; and nothing is
// launched at all when an input is bad.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fake_cuda.h"
#include "recorded_launches.h"
#include "sparse_mla/wgmma_tiling.h"
#include "kforge/kforge.h"
#include "test_pack.h"
#include "test_util.h"

namespace {

using namespace kf_testing::recorded;

using kf_test::contains;
using kf_testing::TempDir;
using kf_testing::TestPackBuilder;

const char* kShape = "h128_topk2048_x0_bf16";
const char* kShapeX128 = "h128_topk2048_x128_bf16";

kf_mla_shape mla_shape(int extras = 0) {
  kf_mla_shape s{};
  s.heads = 128;
  s.topk = 2048;
  s.extras = extras;
  s.bf16 = 1;
  return s;
}

struct Pack {
  TempDir dir{"rt-fake-cuda-mla"};
  std::string path = dir.file("kforge.sqlite");
  std::string split8, split2, plain, x128;
  kf_db* db = nullptr;

  explicit Pack(bool with_combine = true) {
    TestPackBuilder b;
    split8 = b.add_mla_kernel(kShape, "bh16_bk16_w4_sp8_s2");
    split2 = b.add_mla_kernel(kShape, "bh32_bk32_w8_sp2_s2");
    plain = b.add_mla_kernel(kShape, "bh64_bk32_w16_sp1_s2");
    b.add_mla_winner(kShape, split8, 1, 4);
    b.add_mla_winner(kShape, split2, 5, 32);
    b.add_mla_winner(kShape, plain, 33, 1024);
    x128 = b.add_mla_kernel(kShapeX128, "bh16_bk16_w4_sp4_s1");
    b.add_mla_winner(kShapeX128, x128, 1, 1024);
    if (with_combine) b.add_mla_combine(true);
    b.write(path);
    const kf_status status = kf_open(path.c_str(), &db);  // finds the stand-in's H100
    REQUIRE_MESSAGE(status == KF_OK, kf_last_error());
    kf_fake_cuda_reset();
    kf_fake_cuda_fail_launches_of(nullptr);
  }
  ~Pack() { kf_close(db); }
};

kf_mla_decode_args decode_args(int queries) {
  kf_mla_decode_args a{};
  a.q = fake<const void>(0x100000);
  a.kv = fake<const void>(0x200000);
  a.indices = fake<const int32_t>(0x300000);
  a.o = fake<void>(0x400000);
  a.lse = fake<float>(0x500000);
  a.queries = queries;
  a.kv_rows = 70000;
  a.heads = 128;
  a.topk = 2048;
  a.softmax_scale = 0.0417f;
  return a;
}



}  // namespace

TEST_SUITE("runtime_fake_cuda") {

TEST_CASE("MLA: kf_prepare loads the decode winners and the combine kernel") {
  Pack p;
  const int before = kf_fake_cuda_loads();
  REQUIRE(kf_prepare(p.db) == KF_OK);
  CHECK(kf_fake_cuda_loads() - before == 4 + 1);
}

TEST_CASE("MLA: a split-KV winner launches decode, then combine over its partials in the scratch") {
  Pack p;
  const kf_mla_shape s = mla_shape();
  size_t bytes = 0;
  REQUIRE(kf_mla_scratch_bytes(p.db, &s, 64, &bytes) == KF_OK);
  kf_mla_decode_args a = decode_args(3);
  a.part_o = fake<float>(0x1);  // ignored: the runtime places the partials
  a.extra_start = fake<const int32_t>(0x600000);
  a.extra_count = fake<const int32_t>(0x700000);
  REQUIRE_MESSAGE(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), bytes, kStream) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 2);
  CHECK(l[0].kernel == p.split8);
  CHECK(l[1].kernel == "sparse_mla_combine_any_bf16");
  CHECK(grid_is(l[0], 128 / 16, 3, 8));  // (H / block_h, Q, splits)
  CHECK(l[0].block[0] == 4 * 32);
  CHECK(grid_is(l[1], (3 * 128 + 7) / 8, 1, 1));  // ceil(Q H / kCombineRows)
  CHECK(l[1].block[0] == 256);
  CHECK(l[0].stream == kStream);
  CHECK(l[1].stream == kStream);

  const auto d = l[0].as<kf_mla_decode_args>();
  CHECK((d.q == a.q && d.kv == a.kv && d.indices == a.indices && d.o == a.o && d.lse == a.lse));
  CHECK((d.extra_start == a.extra_start && d.extra_count == a.extra_count));
  CHECK((d.queries == 3 && d.kv_rows == 70000 && d.heads == 128 && d.topk == 2048));
  CHECK(d.softmax_scale == a.softmax_scale);
  const uint64_t part_o_bytes = uint64_t{8} * 3 * 128 * 512 * 4, part_lse_bytes = uint64_t{8} * 3 * 128 * 4;
  CHECK(address(d.part_o) == kScratch);
  CHECK(address(d.part_lse) == kScratch + part_o_bytes);
  CHECK(address(d.part_lse) % 16 == 0);
  CHECK(address(d.part_lse) + part_lse_bytes <= kScratch + bytes);

  const auto c = l[1].as<kf_mla_combine_args>();
  CHECK(c.part_o == d.part_o);
  CHECK(c.part_lse == d.part_lse);
  CHECK(c.o == a.o);
  CHECK(c.lse == a.lse);
  CHECK((c.queries == 3 && c.heads == 128 && c.splits == 8));

  // The same through kf_select_mla + kf_launch_mla, without lse.
  kf_fake_cuda_reset();
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_mla(p.db, &s, 20, &k) == KF_OK);
  REQUIRE(kf_kernel_name(k) == p.split2);
  a = decode_args(20);
  a.lse = nullptr;
  REQUIRE_MESSAGE(kf_launch_mla(k, &a, fake<void>(kScratch), bytes, nullptr) == KF_OK, kf_last_error());
  const std::vector<Launch> m = launches();
  REQUIRE(m.size() == 2);
  CHECK(grid_is(m[0], 128 / 32, 20, 2));
  CHECK(m[0].block[0] == 8 * 32);
  CHECK(grid_is(m[1], 20 * 128 / 8, 1, 1));
  CHECK(address(m[0].as<kf_mla_decode_args>().part_lse) == kScratch + uint64_t{2} * 20 * 128 * 512 * 4);
  CHECK(m[1].as<kf_mla_combine_args>().lse == nullptr);
  CHECK(m[1].as<kf_mla_combine_args>().splits == 2);
}

TEST_CASE("MLA: an unsplit winner launches decode alone, needing no scratch") {
  Pack p;
  const kf_mla_shape s = mla_shape();
  const kf_mla_decode_args a = decode_args(40);
  REQUIRE_MESSAGE(kf_run_mla(p.db, &s, &a, nullptr, 0, kStream) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 1);
  CHECK(l[0].kernel == p.plain);
  CHECK(grid_is(l[0], 128 / 64, 40, 1));
  CHECK(l[0].block[0] == 16 * 32);
  const auto d = l[0].as<kf_mla_decode_args>();
  CHECK(d.part_o == nullptr);
  CHECK(d.part_lse == nullptr);
  CHECK(d.o == a.o);
}

TEST_CASE("MLA: a wgmma winner launches on the decode grid with its dynamic shared memory; a bad wgmma row is skipped") {
  TempDir dir{"rt-fake-cuda-mla-wgmma"};
  const std::string path = dir.file("kforge.sqlite");
  TestPackBuilder b;
  const std::string wg = b.add_mla_kernel(kShape, "bh64_bk64_w8_sp2_s2", "sm_90a", 0, "wgmma");
  const std::string bad = b.add_mla_kernel(kShapeX128, "bh64_bk32_w8_sp1_s2", "sm_90a", 0, "wgmma");
  b.add_mla_winner(kShape, wg, 1, 1024);
  b.add_mla_winner(kShapeX128, bad, 1, 1024);
  b.add_mla_combine(true);
  b.write(path);
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open(path.c_str(), &db) == KF_OK, kf_last_error());
  kf_fake_cuda_reset();
  const kf_mla_shape s = mla_shape();
  size_t bytes = 0;
  REQUIRE(kf_mla_scratch_bytes(db, &s, 64, &bytes) == KF_OK);
  const kf_mla_decode_args a = decode_args(64);
  REQUIRE_MESSAGE(kf_run_mla(db, &s, &a, fake<void>(kScratch), bytes, kStream) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 2);
  CHECK(l[0].kernel == wg);
  CHECK(grid_is(l[0], 128 / 64, 64, 2));
  CHECK(l[0].block[0] == 256);
  CHECK(l[0].shared == static_cast<unsigned>(kf::mla::wgmma::smem_bytes()));
  CHECK(l[1].kernel == "sparse_mla_combine_any_bf16");
  CHECK(l[1].shared == 0);
  // The block_k 32 row breaks the wgmma kind's fixed tile: not served, so the x128
  // bucket falls back to the nearest tuned one (x0), the wgmma kernel above.
  const kf_mla_shape x = mla_shape(128);
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_mla(db, &x, 8, &k) == KF_OK);
  CHECK(std::string(kf_kernel_name(k)) == wg);
  kf_close(db);
}

TEST_CASE("MLA: an untuned extras bucket runs the nearest tuned bucket's kernel") {
  Pack p;
  const kf_mla_shape s = mla_shape(100);  // nearer x128 than x0
  size_t bytes = 0;
  REQUIRE(kf_mla_scratch_bytes(p.db, &s, 8, &bytes) == KF_OK);
  const kf_mla_decode_args a = decode_args(8);
  REQUIRE_MESSAGE(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), bytes, nullptr) == KF_OK, kf_last_error());
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 2);
  CHECK(l[0].kernel == p.x128);
  CHECK(grid_is(l[0], 8, 8, 4));
}

TEST_CASE("MLA: kf_mla_scratch_bytes(max) is enough for every Q <= max; the error says what a call needs") {
  Pack p;
  const kf_mla_shape s = mla_shape();
  for (int max_q : {1, 4, 5, 20, 33, 100}) {
    CAPTURE(max_q);
    size_t bytes = 0;
    REQUIRE(kf_mla_scratch_bytes(p.db, &s, max_q, &bytes) == KF_OK);
    for (int q = 1; q <= max_q; ++q) {
      CAPTURE(q);
      const kf_mla_decode_args a = decode_args(q);
      CHECK_MESSAGE(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), bytes, nullptr) == KF_OK, kf_last_error());
    }
  }
  kf_fake_cuda_reset();
  const kf_mla_decode_args a = decode_args(4);
  REQUIRE(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), 1, nullptr) == KF_ERR_INVALID_ARGUMENT);
  const std::string message = kf_last_error();
  CHECK(contains(message, "scratch_bytes = 1 is too small"));
  const size_t at = message.find("needs ");
  REQUIRE(at != std::string::npos);
  const size_t needed = std::stoull(message.substr(at + 6));
  CHECK(needed == uint64_t{8} * 4 * 128 * 513 * 4);
  CHECK(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), needed - 1, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_fake_cuda_launch_count() == 0);
  CHECK(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), needed, nullptr) == KF_OK);
  CHECK(kf_fake_cuda_launch_count() == 2);
}

TEST_CASE("MLA: every bad input is refused by name, and nothing is launched") {
  Pack p;
  size_t bytes = 0;
  const kf_mla_shape good = mla_shape();
  REQUIRE(kf_mla_scratch_bytes(p.db, &good, 64, &bytes) == KF_OK);
  struct Case {
    const char* what;
    kf_status status;
    const char* message;
    void (*change)(kf_mla_decode_args&, kf_mla_shape&, void*& scratch, size_t& bytes);
  };
  using A = kf_mla_decode_args;
  using S = kf_mla_shape;
  const Case cases[] = {
      {"q NULL", KF_ERR_INVALID_ARGUMENT, "args->q is NULL", [](A& a, S&, void*&, size_t&) { a.q = nullptr; }},
      {"kv NULL", KF_ERR_INVALID_ARGUMENT, "args->kv is NULL", [](A& a, S&, void*&, size_t&) { a.kv = nullptr; }},
      {"indices NULL", KF_ERR_INVALID_ARGUMENT, "args->indices is NULL",
       [](A& a, S&, void*&, size_t&) { a.indices = nullptr; }},
      {"o NULL", KF_ERR_INVALID_ARGUMENT, "args->o is NULL", [](A& a, S&, void*&, size_t&) { a.o = nullptr; }},
      {"queries 0", KF_ERR_INVALID_ARGUMENT, "args->queries = 0, must be at least 1",
       [](A& a, S&, void*&, size_t&) { a.queries = 0; }},
      {"queries -3", KF_ERR_INVALID_ARGUMENT, "args->queries = -3", [](A& a, S&, void*&, size_t&) { a.queries = -3; }},
      {"queries over the grid", KF_ERR_UNSUPPORTED_SHAPE, "args->queries = 70000",
       [](A& a, S&, void*&, size_t&) { a.queries = 70000; }},
      {"args heads not the shape's", KF_ERR_INVALID_ARGUMENT, "args has heads = 64, topk = 2048; shape has heads = 128",
       [](A& a, S&, void*&, size_t&) { a.heads = 64; }},
      {"args topk not the shape's", KF_ERR_INVALID_ARGUMENT, "topk = 1024; shape has heads = 128, topk = 2048",
       [](A& a, S&, void*&, size_t&) { a.topk = 1024; }},
      {"H unsupported", KF_ERR_INVALID_ARGUMENT, "H = 100",
       [](A& a, S& s, void*&, size_t&) { a.heads = s.heads = 100; }},
      {"args H unsupported", KF_ERR_INVALID_ARGUMENT, "args->heads = 40 not supported",
       [](A& a, S&, void*&, size_t&) { a.heads = 40; }},
      {"topk 0", KF_ERR_INVALID_ARGUMENT, "args->topk = 0", [](A& a, S&, void*&, size_t&) { a.topk = 0; }},
      {"H untuned", KF_ERR_UNSUPPORTED_SHAPE, "H = 64, topk = 2048",
       [](A& a, S& s, void*&, size_t&) { a.heads = s.heads = 64; }},
      {"kv_rows 0", KF_ERR_INVALID_ARGUMENT, "args->kv_rows = 0", [](A& a, S&, void*&, size_t&) { a.kv_rows = 0; }},
      {"kv_rows negative", KF_ERR_INVALID_ARGUMENT, "args->kv_rows = -1",
       [](A& a, S&, void*&, size_t&) { a.kv_rows = -1; }},
      {"extra_start without extra_count", KF_ERR_INVALID_ARGUMENT,
       "args->extra_count is NULL but args->extra_start is not",
       [](A& a, S&, void*&, size_t&) { a.extra_start = fake<const int32_t>(0x600000); }},
      {"extra_count without extra_start", KF_ERR_INVALID_ARGUMENT,
       "args->extra_start is NULL but args->extra_count is not",
       [](A& a, S&, void*&, size_t&) { a.extra_count = fake<const int32_t>(0x600000); }},
      {"softmax_scale 0", KF_ERR_INVALID_ARGUMENT, "args->softmax_scale = 0",
       [](A& a, S&, void*&, size_t&) { a.softmax_scale = 0.f; }},
      {"softmax_scale negative", KF_ERR_INVALID_ARGUMENT, "args->softmax_scale = -0.5",
       [](A& a, S&, void*&, size_t&) { a.softmax_scale = -0.5f; }},
      {"softmax_scale NaN", KF_ERR_INVALID_ARGUMENT, "args->softmax_scale = nan",
       [](A& a, S&, void*&, size_t&) { a.softmax_scale = std::numeric_limits<float>::quiet_NaN(); }},
      {"softmax_scale inf", KF_ERR_INVALID_ARGUMENT, "args->softmax_scale = inf",
       [](A& a, S&, void*&, size_t&) { a.softmax_scale = std::numeric_limits<float>::infinity(); }},
      {"q misaligned", KF_ERR_INVALID_ARGUMENT, "args->q is not 16-byte aligned",
       [](A& a, S&, void*&, size_t&) { a.q = fake<const void>(0x100008); }},
      {"kv misaligned", KF_ERR_INVALID_ARGUMENT, "args->kv is not 16-byte aligned",
       [](A& a, S&, void*&, size_t&) { a.kv = fake<const void>(0x200004); }},
      {"o misaligned", KF_ERR_INVALID_ARGUMENT, "args->o is not 16-byte aligned",
       [](A& a, S&, void*&, size_t&) { a.o = fake<void>(0x400002); }},
      {"lse misaligned", KF_ERR_INVALID_ARGUMENT, "args->lse is not 4-byte aligned",
       [](A& a, S&, void*&, size_t&) { a.lse = fake<float>(0x500002); }},
      {"indices misaligned", KF_ERR_INVALID_ARGUMENT, "args->indices is not 4-byte aligned",
       [](A& a, S&, void*&, size_t&) { a.indices = fake<const int32_t>(0x300001); }},
      {"scratch NULL for a split kernel", KF_ERR_INVALID_ARGUMENT, "scratch is NULL",
       [](A&, S&, void*& scratch, size_t&) { scratch = nullptr; }},
      {"scratch misaligned", KF_ERR_INVALID_ARGUMENT, "scratch is not 16-byte aligned",
       [](A&, S&, void*& scratch, size_t&) { scratch = fake<void>(kScratch + 8); }},
      {"scratch too small", KF_ERR_INVALID_ARGUMENT, "is too small",
       [](A&, S&, void*&, size_t& bytes) { bytes = 4096; }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    for (int via_launch = 0; via_launch < 2; ++via_launch) {
      CAPTURE(via_launch);
      kf_fake_cuda_reset();
      kf_mla_decode_args a = decode_args(3);  // the split sp8 winner
      kf_mla_shape s = good;
      void* scratch = fake<void>(kScratch);
      size_t size = bytes;
      c.change(a, s, scratch, size);
      kf_status status;
      if (via_launch) {
        if (s.heads != good.heads) continue;  // a shape change means nothing to kf_launch_mla
        const kf_kernel* k = nullptr;
        REQUIRE(kf_select_mla(p.db, &s, 3, &k) == KF_OK);
        status = kf_launch_mla(k, &a, scratch, size, nullptr);
        if (contains(c.message, "shape has")) {  // kf_launch_mla compares with the kernel
          CHECK(status == KF_ERR_INVALID_ARGUMENT);
          CHECK_MESSAGE(contains(kf_last_error(), "the kernel is built for heads = 128, topk = 2048"),
                        kf_last_error());
          CHECK(kf_fake_cuda_launch_count() == 0);
          continue;
        }
      } else {
        status = kf_run_mla(p.db, &s, &a, scratch, size, nullptr);
      }
      CHECK(status == c.status);
      CHECK_MESSAGE(contains(kf_last_error(), c.message), kf_last_error());
      CHECK(kf_fake_cuda_launch_count() == 0);
    }
  }
  // kf_launch_mla refuses a kernel of another op, and NULLs.
  kf_fake_cuda_reset();
  const kf_mla_decode_args a = decode_args(3);
  CHECK(kf_launch_mla(nullptr, &a, fake<void>(kScratch), bytes, nullptr) == KF_ERR_INVALID_ARGUMENT);
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_mla(p.db, &good, 3, &k) == KF_OK);
  CHECK(kf_launch_mla(k, nullptr, fake<void>(kScratch), bytes, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_mla(nullptr, &good, &a, fake<void>(kScratch), bytes, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_mla(p.db, nullptr, &a, fake<void>(kScratch), bytes, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_run_mla(p.db, &good, nullptr, fake<void>(kScratch), bytes, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_fake_cuda_launch_count() == 0);
  // A w4a16_linear launch of an MLA kernel is refused too.
  kf_linear_args linear{};
  CHECK(kf_launch(k, &linear, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "kf_launch_mla"));
}

TEST_CASE("MLA: split winners without the combine kernel launch nothing; unsplit ones still run") {
  Pack p(/*with_combine=*/false);
  const kf_mla_shape s = mla_shape();
  kf_mla_decode_args a = decode_args(3);
  CHECK(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), size_t{1} << 30, nullptr) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "no sparse_mla_combine_any_bf16 kernel"));
  CHECK(kf_fake_cuda_launch_count() == 0);
  a = decode_args(40);
  CHECK(kf_run_mla(p.db, &s, &a, nullptr, 0, nullptr) == KF_OK);
  CHECK(kf_fake_cuda_launch_count() == 1);
}

TEST_CASE("MLA: a driver failure of the combine launch is a backend error after the decode launch") {
  Pack p;
  const kf_mla_shape s = mla_shape();
  size_t bytes = 0;
  REQUIRE(kf_mla_scratch_bytes(p.db, &s, 4, &bytes) == KF_OK);
  const kf_mla_decode_args a = decode_args(2);
  kf_fake_cuda_fail_launches_of("sparse_mla_combine");
  CHECK(kf_run_mla(p.db, &s, &a, fake<void>(kScratch), bytes, nullptr) == KF_ERR_BACKEND);
  CHECK(contains(kf_last_error(), "cuLaunchKernel"));
  kf_fake_cuda_fail_launches_of(nullptr);
  const std::vector<Launch> l = launches();
  REQUIRE(l.size() == 1);
  CHECK(l[0].kernel == p.split8);
}

}  // TEST_SUITE
