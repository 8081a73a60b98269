// The tuner's pure parts: winners per M range (crossover interpolation, merging, first
// and last bounds), candidate planning, device buffer sizing and timing statistics,
// and the fake measurer's cost model.
#include <doctest/doctest.h>

#include <regex>

#include "device_plan.h"
#include "measure_common.h"
#include "measurer.h"
#include "plan.h"
#include "test_tuner_util.h"
#include "winners.h"

namespace {

using kf::kMaxWinnerM;
using kf::Timing;
using kf::WinnerRange;

Timing t(int64_t m, const std::string& k, double us) { return {m, k, us, us * 0.9}; }

std::string show(const std::vector<WinnerRange>& w) {
  std::string s;
  for (const auto& r : w)
    s += r.kernel + "[" + std::to_string(r.m_lo) + "," + (r.m_hi == kMaxWinnerM ? "max" : std::to_string(r.m_hi)) +
         "]@" + std::to_string(r.m_tuned) + " ";
  return s;
}

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("winners: nothing passed, nothing won") { CHECK(kf::compute_winners({}).empty()); }

TEST_CASE("winners: one tuned M serves every M, from 1 up") {
  const auto w = kf::compute_winners({t(16, "a", 5), t(16, "b", 4)});
  CHECK(show(w) == "b[1,max]@16 ");
  CHECK(w[0].median_us == 4);
}

TEST_CASE("winners: boundary at the linear crossover when both were timed at both Ms") {
  // a: 10 -> 30 over M 16..32, b: 20 -> 20: equal at M = 24.
  const auto w = kf::compute_winners({t(16, "a", 10), t(16, "b", 20), t(32, "a", 30), t(32, "b", 20)});
  CHECK(show(w) == "a[1,24]@16 b[25,max]@32 ");
  // Crossover between integers: floor. a: 10 -> 20 over 1..4, b: 15 -> 15: 1 + 3 * 5/10 = 2.5.
  CHECK(show(kf::compute_winners({t(1, "a", 10), t(1, "b", 15), t(4, "a", 20), t(4, "b", 15)})) ==
        "a[1,2]@1 b[3,max]@4 ");
}

TEST_CASE("winners: without timings of both at both Ms, the next winner takes everything above") {
  // b not timed at 16 (e.g. incorrect there), a not timed at 32 (decode above 64 etc.).
  CHECK(show(kf::compute_winners({t(16, "a", 10), t(32, "a", 30), t(32, "b", 20)})) == "a[1,16]@16 b[17,max]@32 ");
  CHECK(show(kf::compute_winners({t(16, "a", 10), t(16, "b", 20), t(32, "b", 20)})) == "a[1,16]@16 b[17,max]@32 ");
}

TEST_CASE("winners: the crossover never takes a tuned M from its winner") {
  // b equals a at M 8 and wins the tie on min: crossover = 8, clamped to 7.
  std::vector<Timing> v = {t(1, "a", 10), t(1, "b", 17), {8, "a", 17, 16}, {8, "b", 17, 15}};
  CHECK(show(kf::compute_winners(v)) == "a[1,7]@1 b[8,max]@8 ");
  // Equal all along (a wins ties by name at 1, b by min at 2): b from m_1 + 1.
  v = {{1, "a", 10, 9}, {1, "b", 10, 9}, {2, "a", 10, 9}, {2, "b", 10, 8}};
  CHECK(show(kf::compute_winners(v)) == "a[1,1]@1 b[2,max]@2 ");
}

TEST_CASE("winners: adjacent ranges of one kernel merge, keeping the first m_tuned and median") {
  const auto w = kf::compute_winners({t(1, "a", 5), t(2, "a", 6), t(4, "a", 7), t(4, "b", 8), t(8, "b", 9),
                                      t(8, "a", 10), t(64, "b", 20)});
  // a -> b between 4 and 8: a 7 -> 10, b 8 -> 9 cross at 6.
  CHECK(show(w) == "a[1,6]@1 b[7,max]@8 ");
  CHECK(w[0].median_us == 5);
  CHECK(w[1].median_us == 9);
}

TEST_CASE("winners: a kernel can win again after another one; ranges tile [1, max]") {
  const auto w = kf::compute_winners({t(2, "a", 1), t(4, "b", 1), t(8, "a", 1), t(8, "b", 2), t(4, "a", 3)});
  // a->b between 2 and 4: a not timed... a timed at 4 (3), b not at 2: boundary 2.
  // b->a between 4 and 8: both timed at both: d0 = 1 - 3 = -2, d1 = 2 - 1 = 1 -> 4 + 4 * 2/3 = 6.67.
  CHECK(show(w) == "a[1,2]@2 b[3,6]@4 a[7,max]@8 ");
  for (size_t i = 1; i < w.size(); ++i) CHECK(w[i].m_lo == w[i - 1].m_hi + 1);
  for (const auto& r : w) CHECK((r.m_lo <= r.m_tuned && r.m_tuned <= r.m_hi));
}

TEST_CASE("winners: ties go to the lower min, then the name; input order does not matter") {
  const std::vector<Timing> v = {{4, "b", 10, 8}, {4, "a", 10, 9}, {4, "c", 10, 8}};
  CHECK(kf::compute_winners(v)[0].kernel == "b");
  const std::vector<Timing> r(v.rbegin(), v.rend());
  CHECK(kf::compute_winners(r)[0].kernel == "b");
}

TEST_CASE("device plan: buffers sized for the largest M and split-K over the candidates") {
  const kf::LinearShape s{4096, 2048, 128, true, true};
  kf::PackKernel dec, pre;
  dec.kind = "decode";
  dec.config = "bm2_bn64_bk32_w4_sk4_s1";
  pre.kind = "prefill";
  pre.config = "bm64_bn128_bk32_w4_sk1_s2";
  const auto b = kf::plan_shape_buffers(s, {{&dec, 64}, {&pre, 1024}});
  CHECK(b.max_m == 1024);
  CHECK(b.x_elems == 1024 * 2048);
  CHECK(b.qweight_words == 2048 / 8 * 4096);
  CHECK(b.scales_elems == 16 * 4096);
  CHECK(b.qzeros_words == 16 * 4096 / 8);
  CHECK(b.y_elems == (1024 + kf::kGuardRows) * 4096);
  CHECK(b.workspace_floats == 4 * 64 * 4096);         // split_k * M * N at the decode's largest M
  CHECK(b.counter_ints == (4096 / 64) * (64 / 2));    // (N / block_n) * ceil(M / block_m)
  const kf::LinearShape sym{4096, 2048, 0, true, false};
  CHECK(kf::plan_shape_buffers(sym, {{&pre, 8}}).qzeros_words == 0);
  CHECK(kf::plan_shape_buffers(sym, {{&pre, 8}}).workspace_floats == 0);
}

TEST_CASE("device plan: flush buffer, timing statistics, CUDA arch names") {
  CHECK(kf::flush_bytes(50 << 20) == 200 << 20);      // H100: 4 x 50 MiB
  CHECK(kf::flush_bytes(1 << 20) == 64 << 20);        // floor
  CHECK(kf::flush_bytes((50 << 20) + 3) % (1 << 20) == 0);
  CHECK(kf::flush_bytes((50 << 20) + 3) >= 4 * ((50 << 20) + 3));
  CHECK(kf::timing_stats({5, 1, 3}).median == 3);
  CHECK(kf::timing_stats({4, 1, 3, 2}).median == 2.5);
  CHECK(kf::timing_stats({4, 1, 3, 2}).min == 1);
  CHECK(kf::cuda_arch_name(9, 0) == "sm_90a");
  CHECK(kf::cuda_arch_name(8, 0) == "sm_80");
  CHECK(kf::cuda_arch_name(10, 0) == "sm_100");
}

TEST_CASE("plan: what is measured, pruned or failed without running") {
  using kf_tuner_test::kShape;
  using kf_tuner_test::row;
  const auto dec = row(kShape, "decode", "bm1_bn64_bk32_w4_sk1_s1");
  CHECK(kf::static_verdict(dec, 64).disposition.empty());
  const auto v = kf::static_verdict(dec, 65);
  CHECK(v.disposition == "pruned");
  CHECK(kf_test::contains(v.message, "M <= 64"));
  CHECK(kf::static_verdict(row(kShape, "prefill", "bm16_bn64_bk32_w4_sk1_s2"), 4096).disposition.empty());
  const auto spilled = kf::static_verdict(row(kShape, "prefill", "bm16_bn64_bk32_w4_sk1_s2", "pruned:spills"), 16);
  CHECK(spilled.disposition == "pruned");
  CHECK(kf_test::contains(spilled.message, "spills"));
  CHECK(kf::static_verdict(row(kShape, "decode", "bm1_bn64_bk32_w4_sk1_s1", "compile_error"), 1).disposition ==
        "failed");
}

TEST_CASE("plan: skinny kernels are pruned above M = 64 like decode ones") {
  using kf_tuner_test::kShape;
  using kf_tuner_test::row;
  const auto sk = row(kShape, "skinny", "bm16_bn64_bk32_w4_sk2_s2");
  CHECK(kf::static_verdict(sk, 1).disposition.empty());
  CHECK(kf::static_verdict(sk, kf::kDecodeMaxM).disposition.empty());
  const auto v = kf::static_verdict(sk, kf::kDecodeMaxM + 1);
  CHECK(v.disposition == "pruned");
  CHECK(kf_test::contains(v.message, "skinny kernels"));
  CHECK(kf_test::contains(v.message, "M <= 64"));
  CHECK(kf::static_verdict(row(kShape, "skinny", "bm16_bn64_bk32_w4_sk1_s1", "pruned:no_mma"), 1).disposition ==
        "pruned");
  // The fake measurer times it like decode with the math on the tensor cores: never
  // slower than the decode config of the same tile.
  const kf::LinearShape s{12288, 2048, 128, true, false};
  const auto skinny = kf_tuner_test::row(s, "skinny", "bm16_bn128_bk32_w8_sk1_s1");
  const auto dec = kf_tuner_test::row(s, "decode", "bm16_bn128_bk32_w8_sk1_s1");
  for (int64_t m : {1, 16, 64}) CHECK(kf::fake_time_us(skinny, s, m, true) <= kf::fake_time_us(dec, s, m, true));
}

TEST_CASE("plan: --max-candidates keeps a spread of the shape's kernels plus generic and non-ok rows") {
  using kf_tuner_test::kShape;
  using kf_tuner_test::row;
  std::vector<kf::PackKernel> rows;
  for (int bm : {1, 2, 4, 8, 16}) rows.push_back(row(kShape, "decode", "bm" + std::to_string(bm) + "_bn64_bk32_w4_sk1_s1"));
  for (int bm : {16, 32, 64}) rows.push_back(row(kShape, "prefill", "bm" + std::to_string(bm) + "_bn64_bk32_w4_sk1_s1"));
  rows.push_back(row(kShape, "prefill", "bm128_bn64_bk32_w4_sk1_s1", "pruned:spills"));
  rows.push_back(kf_tuner_test::generic_row());
  const std::regex all(".*");
  CHECK(kf::select_candidates(rows, all, 0).size() == rows.size());
  const auto few = kf::select_candidates(rows, all, 2);
  REQUIRE(few.size() == 4);  // 2 + the pruned row + generic
  int decode = 0, prefill = 0;
  for (const auto* k : few) {
    decode += k->kind == "decode" && k->status == "ok";
    prefill += k->kind == "prefill" && k->status == "ok";
  }
  CHECK(decode == 1);
  CHECK(prefill == 1);
  CHECK(kf::select_candidates(rows, std::regex("generic"), 0).size() == 1);
}

TEST_CASE("plan: shapes and the kernels a pack must hold for them") {
  kf::ShapeSelection sel;
  sel.config_path = kf_tuner_test::kTinyConfig;
  sel.dtypes = {"bf16", "fp16"};
  const auto shapes = kf::tune_shapes(kf::resolve_model(sel), sel);
  CHECK(shapes.size() == 8);  // 4 layers x 2 dtypes
  const auto names = kf::expected_kernels(shapes, sel, "sm_90a", std::regex("generic|util"));
  CHECK(names == std::vector<std::string>{"kf_util_stream_read",
                                          "w4a16_linear_generic_any_bf16_sym_bm4_bn128_bk32_w4_sk1_s1",
                                          "w4a16_linear_generic_any_fp16_sym_bm4_bn128_bk32_w4_sk1_s1"});
  sel.dtypes = {"fp32"};
  CHECK(kf_test::contains(kf_test::error_of([&] { kf::tune_shapes(kf::resolve_model(sel), sel); }), "fp32"));
}

TEST_CASE("fake measurer: deterministic, decode wins small M, prefill large M, generic is the fallback") {
  const kf::LinearShape s{12288, 2048, 128, true, false};
  const auto dec = kf_tuner_test::row(s, "decode", "bm1_bn128_bk64_w8_sk1_s1");
  const auto pre = kf_tuner_test::row(s, "prefill", "bm128_bn128_bk64_w8_sk1_s2");
  const auto gen = kf_tuner_test::generic_row();
  CHECK(kf::fake_time_us(dec, s, 1, true) < kf::fake_time_us(pre, s, 1, true));
  CHECK(kf::fake_time_us(dec, s, 1, true) < kf::fake_time_us(gen, s, 1, true));
  CHECK(kf::fake_time_us(pre, s, 1024, true) < kf::fake_time_us(dec, s, 1024, true));
  CHECK(kf::fake_time_us(pre, s, 1024, true) < kf::fake_time_us(gen, s, 1024, true));
  CHECK(kf::fake_time_us(dec, s, 16, false) <= kf::fake_time_us(dec, s, 16, true));
  kf::FakeOptions o;
  o.incorrect = "bm1_";
  kf::FakeMeasurer fm(o);
  CHECK(fm.measure(dec, s, 1, true, 9).disposition == "incorrect");
  const auto p = fm.measure(pre, s, 1, true, 9);
  CHECK(p.disposition == "passed");
  CHECK(p.median_us == kf::fake_time_us(pre, s, 1, true));
  CHECK(p.reps == 9);
  CHECK(fm.measurements() == 2);
}


TEST_CASE("device measurers: a device kforge cannot serve, or one it cannot set up, is an error naming it") {
  kf::DeviceInfo info;
  info.name = "Some GPU";
  info.arch = "sm_90a";
  info.l2_bytes = 50 << 20;
  CHECK_NOTHROW(kf::measure::check_device(info));
  info.arch = "sm_80";
  CHECK_THROWS_WITH_AS(kf::measure::check_device(info),
                       doctest::Contains("Some GPU is sm_80, which kforge does not generate kernels for (gfx1151"),
                       kf::Error);
  info.arch = "gfx942";
  info.l2_bytes = 0;
  CHECK_THROWS_WITH_AS(kf::measure::check_device(info), "cannot read the L2 size of Some GPU", kf::Error);

  int dropped = 0;
  auto drop = [&] { ++dropped; };
  CHECK_NOTHROW(kf::measure::set_up_device("Some GPU", [] {}, drop));
  CHECK(dropped == 0);
  CHECK_THROWS_WITH_AS(kf::measure::set_up_device(
                           "Some GPU", [] { throw kf::measure::CallFailed{"cuStreamCreate: out of memory"}; }, drop),
                       "cannot set up Some GPU: cuStreamCreate: out of memory", kf::Error);
  CHECK(dropped == 1);  // what the setup did is undone: no destructor runs after a throwing constructor
  CHECK_THROWS_WITH_AS(kf::measure::set_up_device("Some GPU", [] { throw kf::Error("no flush buffer"); }, drop),
                       "no flush buffer", kf::Error);
  CHECK(dropped == 2);
}

}  // TEST_SUITE
