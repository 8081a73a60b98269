// autotune on the MoE ops with the fake measurer: rows and winners per routing archetype
// plus the routing-robust winner, the robust-pick rule, resuming after kill -9, the vLLM
// config export, fused SiLU gemm1 kernels against unfused ones plus moe_silu_mul, and
// the host side of the device measurers' MoE checks (align verdict, checked slots,
// float64 reference, output verdicts).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "device_plan.h"
#include "moe_reference.h"
#include "results_db.h"
#include "test_tuner_util.h"
#include "vllm_export.h"
#include "w4a16_moe/launch.h"

namespace {

using namespace kf_tuner_test;
namespace fs = std::filesystem;

const std::string kTinyMoe = std::string(KF_TEST_DATA_DIR) + "/data/tiny_qwen3_moe.json";
// tiny_qwen3_moe: 16 experts, top-4, hidden 256, moe_intermediate 128.
const kf::MoeShape kGemm1{1, 16, 4, 256, 256, 128, true, false};
const kf::MoeShape kGemm2{2, 16, 4, 256, 128, 128, true, false};
const std::vector<int64_t> kTs = {1, 4, 64, 128};
const std::vector<std::string> kArchetypes = {"uniform", "zipf1", "zipf2"};

kf::PackKernel moe_row(const kf::MoeShape& s, const std::string& kind, const std::string& config,
                       const std::string& status = "ok") {
  const kf::LinearConfig c = kf::parse_linear_config(kind, config);
  kf::PackKernel k;
  k.name = kf::moe_kernel_name(s, c);
  k.arch = "sm_90a";
  k.op = s.op();
  k.kind = kind;
  k.shape = s.key();
  k.config = config;
  k.code_object = {0x7f, 'E', 'L', 'F'};
  k.threads = c.warps * 32;
  k.status = status;
  k.compiler = "fake nvcc 13.0";
  k.source_hash = "0123";
  return k;
}

struct MoePack {
  std::vector<std::string> gemm1;  // decode bm4, decode bm8, prefill bm16, prefill bm64, pruned prefill bm32
};

// Per gemm: two decode kernels, two prefill kernels and a pruned one; the util and
// moe_align_any helpers.
MoePack write_moe_pack(const std::string& path) {
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  MoePack f;
  for (const auto* s : {&kGemm1, &kGemm2}) {
    const std::vector<kf::PackKernel> rows = {moe_row(*s, "decode", "bm4_bn64_bk32_w4_sk1_s1"),
                                              moe_row(*s, "decode", "bm8_bn128_bk32_w4_sk2_s1"),
                                              moe_row(*s, "prefill", "bm16_bn64_bk32_w4_sk1_s2"),
                                              moe_row(*s, "prefill", "bm64_bn128_bk64_w8_sk1_s2"),
                                              moe_row(*s, "prefill", "bm32_bn64_bk32_w4_sk1_s1", "pruned:spills")};
    for (const auto& k : rows) {
      pack.put_kernel(k);
      if (s->gemm == 1) f.gemm1.push_back(k.name);
    }
  }
  pack.put_kernel(util_row());
  pack.put_kernel(align_row());
  pack.commit();
  return f;
}

// gemm1 times on which the archetypes disagree: decode bm4 wins everything on uniform,
// but is 4x the best under zipf2; prefill bm16 is second everywhere (within 1.5x): the
// robust pick at T <= 64. Above 64 decode is pruned and prefill bm64 is best on every
// archetype. gemm2: whatever.
kf::FakeOptions disagreeing_archetypes(const MoePack& f) {
  kf::FakeOptions fo;
  fo.moe_time_us = [g = f.gemm1](const kf::PackKernel& k, const kf::MoeShape&, const kf::MoeRouting& r, bool) {
    const bool zipf2 = r.archetype == "zipf2";
    if (k.name == g[0]) return zipf2 ? 40.0 : 10.0;
    if (k.name == g[2]) return r.t > 64 ? 30.0 : zipf2 ? 12.0 : 14.0;
    if (k.name == g[3]) return r.t > 64 ? 20.0 : 50.0;
    if (k.name == g[1]) return 100.0;
    return 25.0 + static_cast<double>(k.name.size() % 7);
  };
  return fo;
}

kf::AutotuneOptions moe_options(const std::string& db) {
  kf::AutotuneOptions o;
  o.select.config_path = kTinyMoe;
  o.ops = {"w4a16_moe"};
  o.db = db;
  o.ms = kTs;
  o.reps = 5;
  o.confirm_rounds = 0;  // exact measurement counts (re-timing: test_tuner_run.cpp)
  o.generate = false;
  o.progress = false;
  return o;
}

// Per gemm and archetype: the 4 ok kernels at T <= 64, the 2 prefill ones above.
int moe_measurements(const std::vector<int64_t>& ts = kTs, int archetypes = 3) {
  int n = 0;
  for (int64_t t : ts) n += t <= 64 ? 4 : 2;
  return 2 * archetypes * n;
}
int moe_rows(const std::vector<int64_t>& ts = kTs, int archetypes = 3) {
  return 2 * archetypes * 5 * static_cast<int>(ts.size());
}

std::string q(const std::string& s) { return "'" + s + "'"; }

// The pack's moe_silu_mul_any_bf16 row, as genkernels writes it.
kf::PackKernel silu_mul_row() {
  kf::PackKernel k = util_row();
  k.name = "moe_silu_mul_any_bf16";
  k.op = "moe_silu_mul";
  k.kind = "silu_mul";
  k.shape = "any_bf16";
  k.config = "t256";
  k.threads = 256;
  return k;
}

// gemm1: an unfused decode and prefill kernel and their fused SiLU twins; gemm2: one
// kernel; util, moe_align_any and moe_silu_mul_any_bf16.
struct FusedPack {
  std::string decode, decode_silu, prefill, prefill_silu, down;
};
FusedPack write_fused_pack(const std::string& path) {
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  FusedPack f;
  const std::pair<std::string*, kf::PackKernel> rows[] = {
      {&f.decode, moe_row(kGemm1, "decode", "bm4_bn64_bk32_w4_sk1_s1")},
      {&f.decode_silu, moe_row(kGemm1, "decode", "bm4_bn64_bk32_w4_sk1_s1_silu")},
      {&f.prefill, moe_row(kGemm1, "prefill", "bm64_bn128_bk64_w4_sk1_s2")},
      {&f.prefill_silu, moe_row(kGemm1, "prefill", "bm64_bn128_bk64_w4_sk1_s2_silu")},
      {&f.down, moe_row(kGemm2, "prefill", "bm16_bn64_bk32_w4_sk1_s2")}};
  for (const auto& [name, k] : rows) {
    pack.put_kernel(k);
    *name = k.name;
  }
  pack.put_kernel(util_row());
  pack.put_kernel(align_row());
  pack.put_kernel(silu_mul_row());
  pack.commit();
  return f;
}

// The pack's moe_sum_any_bf16 row, as genkernels writes it.
kf::PackKernel sum_row() {
  kf::PackKernel k = silu_mul_row();
  k.name = "moe_sum_any_bf16";
  k.op = "moe_sum";
  k.kind = "sum";
  return k;
}

// gemm1: one kernel; gemm2: a decode and a prefill kernel writing a row per slot and
// their top_k-reducing twins; util, moe_align_any and moe_sum_any_bf16.
struct ReducedPack {
  std::string up, decode, decode_red, prefill, prefill_red;
};
ReducedPack write_reduced_pack(const std::string& path) {
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  ReducedPack f;
  const std::pair<std::string*, kf::PackKernel> rows[] = {
      {&f.up, moe_row(kGemm1, "prefill", "bm16_bn64_bk32_w4_sk1_s2")},
      {&f.decode, moe_row(kGemm2, "decode", "bm4_bn64_bk32_w4_sk1_s1")},
      {&f.decode_red, moe_row(kGemm2, "decode", "bm4_bn64_bk32_w4_sk1_s1_red")},
      {&f.prefill, moe_row(kGemm2, "prefill", "bm64_bn128_bk64_w4_sk1_s2")},
      {&f.prefill_red, moe_row(kGemm2, "prefill", "bm64_bn128_bk64_w4_sk1_s2_red")}};
  for (const auto& [name, k] : rows) {
    pack.put_kernel(k);
    *name = k.name;
  }
  pack.put_kernel(util_row());
  pack.put_kernel(align_row());
  pack.put_kernel(sum_row());
  pack.commit();
  return f;
}

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("plan: an MoE selection expects its GEMMs and all three helpers, whatever the filter") {
  kf::ShapeSelection sel;
  sel.config_path = kTinyMoe;
  sel.dtypes = {"bf16", "fp16"};
  const auto moe = kf::moe_tune_shapes(kf::resolve_model(sel), sel, {"w4a16_moe_gemm1", "w4a16_moe_gemm2"});
  REQUIRE(moe.size() == 4);  // 2 GEMMs x 2 dtypes
  const auto names = kf::expected_kernels({}, sel, "sm_90a", std::regex("^$"), moe);
  CHECK(names == std::vector<std::string>{"kf_util_stream_read", "moe_align_any", "moe_align_cluster_any",
                                          "moe_silu_mul_any_bf16", "moe_silu_mul_any_fp16", "moe_sum_any_bf16",
                                          "moe_sum_any_fp16"});
  // Without thread-block clusters, one align.
  const auto amd = kf::expected_kernels({}, sel, "gfx942", std::regex("^$"), moe);
  CHECK(std::count(amd.begin(), amd.end(), "moe_align_cluster_any") == 0);
  CHECK(std::count(amd.begin(), amd.end(), "moe_align_any") == 1);
}

TEST_CASE("robust pick: a kernel best on one archetype but bad on another loses to a consistent one") {
  // At T=8: A is the fastest on uniform (10 vs 11) but 2.5x the best on zipf2; B is within
  // 10% of the best everywhere; C passed only under uniform and cannot compete.
  std::map<std::string, std::vector<kf::Timing>> by = {
      {"uniform", {{8, "A", 10, 10}, {8, "B", 11, 11}, {8, "C", 5, 5}}},
      {"zipf2", {{8, "A", 30, 30}, {8, "B", 12, 12}, {8, "D", 12.5, 12.5}}},
  };
  // C and D each passed under one archetype only: out. Best per archetype still counts
  // them (C is uniform's best: 5), so A's ratios are 2 and 2.5, B's 2.2 and 1.
  auto scores = kf::robust_scores(by);
  REQUIRE(scores.count(8));
  REQUIRE(scores[8].size() == 2);
  CHECK(scores[8][0].kernel == "B");
  CHECK(scores[8][0].worst_ratio == doctest::Approx(2.2));
  CHECK(scores[8][1].kernel == "A");
  CHECK(scores[8][1].worst_ratio == doctest::Approx(2.5));
  auto win = kf::compute_robust_winners(by);
  REQUIRE(win.size() == 1);
  CHECK(win[0].kernel == "B");
  CHECK(win[0].m_lo == 1);
  CHECK(win[0].m_hi == kf::kMaxWinnerM);
  CHECK(win[0].median_us == 12);  // B's worst median, a time
  // Without C and D: B (worst ratio 1.1) against A (2.5).
  by["uniform"].pop_back();
  by["zipf2"].pop_back();
  scores = kf::robust_scores(by);
  CHECK(scores[8][0].worst_ratio == doctest::Approx(1.1));
  CHECK(kf::compute_robust_winners(by)[0].kernel == "B");
  // Each archetype's own winner is still its fastest: the per-archetype rule.
  CHECK(kf::compute_winners(by["uniform"])[0].kernel == "A");
  CHECK(kf::compute_winners(by["zipf2"])[0].kernel == "B");
}

TEST_CASE("robust pick: ties go to the lower mean ratio, then the name; ranges over T like linear winners") {
  // T=1: X and Y both worst ratio 1.2; X's mean is lower. T=16: Y best everywhere.
  std::map<std::string, std::vector<kf::Timing>> by = {
      {"uniform", {{1, "Y", 12, 12}, {1, "X", 10, 10}, {16, "X", 40, 40}, {16, "Y", 20, 20}}},
      {"zipf1", {{1, "Y", 10, 10}, {1, "X", 12, 12}, {16, "X", 40, 40}, {16, "Y", 20, 20}}},
      {"zipf2", {{1, "Y", 10, 10}, {1, "X", 10, 10}, {16, "X", 40, 40}, {16, "Y", 20, 20}}},
  };
  // X: ratios 1, 1.2, 1 (mean 1.067); Y: 1.2, 1, 1 (mean 1.067): equal, so the name: X.
  const auto s = kf::robust_scores(by);
  CHECK(s.at(1)[0].kernel == "X");
  const auto win = kf::compute_robust_winners(by);
  REQUIRE(win.size() == 2);
  CHECK(win[0].kernel == "X");
  CHECK(win[0].m_tuned == 1);
  CHECK(win[1].kernel == "Y");
  CHECK(win[1].m_tuned == 16);
  CHECK(win[0].m_hi + 1 == win[1].m_lo);
  CHECK(win[1].m_hi == kf::kMaxWinnerM);
  // An archetype missing at some T: the robust pick there uses the archetypes timed there.
  by.erase("zipf2");
  by["uniform"].push_back({64, "X", 5, 5});
  const auto w2 = kf::compute_robust_winners(by);
  CHECK(w2.back().kernel == "X");
  CHECK(w2.back().m_tuned == 64);
}

TEST_CASE("autotune MoE: rows and winners per routing archetype, and the robust winner per T range") {
  TempDir dir("tuner-moe");
  const std::string db = dir.sub("kforge.sqlite");
  const MoePack f = write_moe_pack(db);
  const kf::FakeOptions fo = disagreeing_archetypes(f);
  kf::FakeMeasurer fm(fo);
  const InProcess r = run_in_process(moe_options(db), fm);
  INFO(r.out << r.err);
  CHECK(fm.measurements() == moe_measurements());
  CHECK(r.stats.measured == moe_measurements());
  CHECK(scalar(db, "SELECT count(*) FROM results") == moe_rows());
  // Rows: one per (kernel, T, archetype); no routing-less MoE result rows.
  for (const auto& a : kArchetypes)
    CHECK(scalar(db, "SELECT count(*) FROM results WHERE routing = " + q(a)) == moe_rows() / 3);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE routing = ''") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE op = 'w4a16_moe_gemm1' AND shape = " + q(kGemm1.key())) ==
        moe_rows() / 2);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.gemm1[0]) +
                   " AND m = 128 AND disposition = 'pruned'") == 3);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.gemm1[4]) + " AND disposition = 'pruned'"
                   " AND message LIKE '%spills%'") == 12);
  // Per-archetype winners: decode bm4 on uniform and zipf1 up to 64; prefill bm16 on zipf2.
  kf::ResultsDb rdb = kf::ResultsDb::open(db);
  const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
  const auto uni = rdb.winners(p, {kGemm1.op(), kGemm1.key(), true, "uniform"});
  REQUIRE(!uni.empty());
  CHECK(uni.front().kernel == f.gemm1[0]);
  CHECK(rdb.winners(p, {kGemm1.op(), kGemm1.key(), true, "zipf2"}).front().kernel == f.gemm1[2]);
  // The robust winner (routing ''): prefill bm16 up to T=64, prefill bm64 above.
  const auto robust = rdb.winners(p, {kGemm1.op(), kGemm1.key(), true, ""});
  REQUIRE(robust.size() == 2);
  CHECK(robust[0].kernel == f.gemm1[2]);
  CHECK(robust[0].m_lo == 1);
  CHECK(robust[0].median_us == 14);  // its worst median over the archetypes
  CHECK(robust[1].kernel == f.gemm1[3]);
  CHECK(robust[1].m_tuned == 128);
  CHECK(robust[1].m_hi == kf::kMaxWinnerM);
  // Stored robust winners = the rule over the stored rows; every archetype has winners.
  const auto expect = kf::compute_robust_winners(rdb.passed_by_routing(p, {kGemm2.op(), kGemm2.key(), true, ""}));
  const auto got = rdb.winners(p, {kGemm2.op(), kGemm2.key(), true, ""});
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].kernel == expect[i].kernel);
  CHECK(scalar(db, "SELECT count(DISTINCT routing) FROM winners") == 4);
  CHECK(scalar(db, "SELECT count(DISTINCT op || shape) FROM winners WHERE routing = ''") == 2);
  CHECK(r.stats.shapes_with_winners == 2);
  CHECK(contains(r.out, "MoE winners on kforge-fake-gpu"));
  CHECK(contains(r.out, f.gemm1[2]));
  // A rerun measures nothing; another archetype adds only its own rows.
  kf::FakeMeasurer again(fo);
  CHECK(run_in_process(moe_options(db), again).stats.measured == 0);
  kf::AutotuneOptions o = moe_options(db);
  o.archetypes = {kf::RoutingArchetype::hot16};
  kf::FakeMeasurer hot(fo);
  run_in_process(o, hot);
  CHECK(hot.measurements() == moe_measurements(kTs, 1));
  CHECK(scalar(db, "SELECT count(DISTINCT routing) FROM winners") == 5);
}

TEST_CASE("gemm1 step times: unfused kernels pay moe_silu_mul, fused ones only compete where it was timed") {
  const std::vector<kf::Timing> rows = {
      {1, "g1_a", 10, 9},  {1, "g1_a_silu", 11, 10}, {1, "moe_silu_mul_any_bf16", 3, 2.5},
      {64, "g1_a", 20, 19}, {64, "g1_a_silu", 27, 26}, {64, "moe_silu_mul_any_bf16", 5, 4},
      {128, "g1_a", 30, 29}, {128, "g1_a_silu", 1, 1}};  // no moe_silu_mul row at 128
  const auto step = kf::gemm1_step_times(rows);
  std::map<std::pair<int64_t, std::string>, std::pair<double, double>> at;
  for (const auto& t : step) at[{t.m, t.kernel}] = {t.median_us, t.min_us};
  CHECK(at.size() == 5);
  CHECK(at.at({1, "g1_a"}).first == 13.0);
  CHECK(at.at({1, "g1_a"}).second == 11.5);
  CHECK(at.at({1, "g1_a_silu"}).first == 11.0);
  CHECK(at.at({1, "g1_a_silu"}).second == 10.0);
  CHECK(at.at({64, "g1_a"}).first == 25.0);
  CHECK(at.at({64, "g1_a"}).second == 23.0);
  CHECK(at.at({64, "g1_a_silu"}).first == 27.0);
  CHECK(at.at({64, "g1_a_silu"}).second == 26.0);
  CHECK(at.at({128, "g1_a"}).first == 30.0);
  CHECK(at.at({128, "g1_a"}).second == 29.0);
  CHECK_FALSE(at.count({128, "g1_a_silu"}));
  for (const auto& t : step) CHECK_FALSE(kf::is_silu_mul_kernel(t.kernel));
  // Fused up to between 1 and 64 (the crossover of 11 -> 27 against 13 -> 25), unfused above.
  const auto win = kf::compute_winners(step);
  REQUIRE(win.size() == 2);
  CHECK(win[0].kernel == "g1_a_silu");
  CHECK(win[0].median_us == 11);
  CHECK(win[1].kernel == "g1_a");
  CHECK(win[1].m_lo == 33);  // the step times cross at T = 1 + 63 * 2 / 4 = 32.5
  CHECK(win[1].median_us == 25);
  CHECK(kf::fuses_silu("w4a16_moe_gemm1_decode_e8_bm1_bn64_bk64_w4_sk1_s1_silu"));
  CHECK_FALSE(kf::fuses_silu("w4a16_moe_gemm1_decode_e8_bm1_bn64_bk64_w4_sk1_s1"));
  CHECK_FALSE(kf::fuses_silu("moe_silu_mul_any_bf16"));
}

TEST_CASE("autotune MoE: a fused SiLU gemm1 wins where it beats gemm1 + moe_silu_mul, and only there") {
  // moe_silu_mul takes 4 us at every T. Decode (T <= 64): unfused 10 (+ 4 = 14), fused
  // `fused_decode`. Prefill: 50 either way up to 64; above, unfused 20 (+ 4 = 24) and
  // fused 26, so unfused wins there although its GEMM alone is not 6 us faster.
  for (double fused_decode : {11.0, 15.0}) {
    CAPTURE(fused_decode);
    TempDir dir("tuner-moe");
    const std::string db = dir.sub("kforge.sqlite");
    const FusedPack f = write_fused_pack(db);
    kf::FakeOptions fo;
    fo.moe_time_us = [&](const kf::PackKernel& k, const kf::MoeShape&, const kf::MoeRouting& r, bool) {
      if (k.name == "moe_silu_mul_any_bf16") return 4.0;
      if (k.name == f.decode) return 10.0;
      if (k.name == f.decode_silu) return fused_decode;
      if (k.name == f.prefill) return r.t > 64 ? 20.0 : 50.0;
      if (k.name == f.prefill_silu) return r.t > 64 ? 26.0 : 50.0;
      return 30.0;  // gemm2
    };
    kf::FakeMeasurer fm(fo);
    const InProcess r = run_in_process(moe_options(db), fm);
    INFO(r.out << r.err);
    // Per archetype: gemm1 4 kernels + moe_silu_mul at T <= 64, 2 + 1 above; gemm2 1.
    const int per_archetype = 3 * (4 + 1) + 1 * (2 + 1) + 4 * 1;
    CHECK(fm.measurements() == 3 * per_archetype);
    CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_silu_mul_any_bf16' AND op = 'w4a16_moe_gemm1'"
                     " AND shape = " + q(kGemm1.key()) + " AND disposition = 'passed' AND median_us = 4") ==
          static_cast<int64_t>(kTs.size() * kArchetypes.size()));
    CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_silu_mul_any_bf16' AND op != 'w4a16_moe_gemm1'") ==
          0);
    CHECK(scalar(db, "SELECT count(*) FROM winners WHERE kernel = 'moe_silu_mul_any_bf16'") == 0);
    kf::ResultsDb rdb = kf::ResultsDb::open(db);
    const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
    for (const std::string routing : {"", "uniform", "zipf2"}) {
      CAPTURE(routing);
      const auto win = rdb.winners(p, {kGemm1.op(), kGemm1.key(), true, routing});
      REQUIRE(win.size() == 2);
      CHECK(win[0].kernel == (fused_decode < 14 ? f.decode_silu : f.decode));
      CHECK(win[0].median_us == (fused_decode < 14 ? fused_decode : 14.0));  // the gemm1 step's time
      CHECK(win[1].kernel == f.prefill);
      CHECK(win[1].m_tuned == 128);
      CHECK(win[1].median_us == 24);
    }
    // The raw rows keep the GEMM's own time.
    CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.prefill) + " AND m = 128 AND median_us = 20") ==
          3);
  }
}

TEST_CASE("gemm2 step times: kernels writing a row per slot pay moe_sum, _red ones only compete where it was timed") {
  const std::vector<kf::Timing> rows = {
      {1, "g2_a", 10, 9},  {1, "g2_a_red", 11, 10}, {1, "moe_sum_any_bf16", 3, 2.5},
      {64, "g2_a", 20, 19}, {64, "g2_a_red", 27, 26}, {64, "moe_sum_any_bf16", 5, 4},
      {128, "g2_a", 30, 29}, {128, "g2_a_red", 1, 1}};  // no moe_sum row at 128
  const auto step = kf::gemm2_step_times(rows);
  std::map<std::pair<int64_t, std::string>, double> at;
  for (const auto& t : step) at[{t.m, t.kernel}] = t.median_us;
  CHECK(at.size() == 5);
  CHECK(at.at({1, "g2_a"}) == 13.0);
  CHECK(at.at({1, "g2_a_red"}) == 11.0);
  CHECK(at.at({64, "g2_a"}) == 25.0);
  CHECK(at.at({64, "g2_a_red"}) == 27.0);
  CHECK(at.at({128, "g2_a"}) == 30.0);
  CHECK_FALSE(at.count({128, "g2_a_red"}));
  for (const auto& t : step) CHECK_FALSE(kf::is_sum_kernel(t.kernel));
  const auto win = kf::compute_winners(step);
  REQUIRE(win.size() == 2);
  CHECK(win[0].kernel == "g2_a_red");
  CHECK(win[1].kernel == "g2_a");
  CHECK(kf::reduces_topk("w4a16_moe_gemm2_decode_e8_bm1_bn64_bk64_w4_sk1_s1_red"));
  CHECK_FALSE(kf::reduces_topk("w4a16_moe_gemm2_decode_e8_bm1_bn64_bk64_w4_sk1_s1"));
  CHECK_FALSE(kf::reduces_topk("moe_sum_any_bf16"));
  // gemm1's rule ignores moe_sum, gemm2's ignores moe_silu_mul and _silu.
  CHECK(kf::gemm1_step_times({{1, "g1_a", 10, 9}, {1, "moe_sum_any_bf16", 3, 2}}).size() == 2);
}

TEST_CASE("autotune MoE: a _red gemm2 wins where it beats gemm2 + moe_sum, and only there") {
  // moe_sum takes 4 us at every T. Decode (T <= 64): plain 10 (+ 4 = 14), _red
  // `red_decode`. Prefill: 50 either way up to 64; above, plain 20 (+ 4 = 24) and _red 26.
  for (double red_decode : {11.0, 15.0}) {
    CAPTURE(red_decode);
    TempDir dir("tuner-moe");
    const std::string db = dir.sub("kforge.sqlite");
    const ReducedPack f = write_reduced_pack(db);
    kf::FakeOptions fo;
    fo.moe_time_us = [&](const kf::PackKernel& k, const kf::MoeShape&, const kf::MoeRouting& r, bool) {
      if (k.name == "moe_sum_any_bf16") return 4.0;
      if (k.name == f.decode) return 10.0;
      if (k.name == f.decode_red) return red_decode;
      if (k.name == f.prefill) return r.t > 64 ? 20.0 : 50.0;
      if (k.name == f.prefill_red) return r.t > 64 ? 26.0 : 50.0;
      return 30.0;  // gemm1
    };
    kf::FakeMeasurer fm(fo);
    const InProcess r = run_in_process(moe_options(db), fm);
    INFO(r.out << r.err);
    // Per archetype: gemm2 4 kernels + moe_sum at T <= 64, 2 + 1 above; gemm1 1 (the pack
    // has no moe_silu_mul).
    const int per_archetype = 3 * (4 + 1) + 1 * (2 + 1) + 4 * 1;
    CHECK(fm.measurements() == 3 * per_archetype);
    CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_sum_any_bf16' AND op = 'w4a16_moe_gemm2'"
                     " AND shape = " + q(kGemm2.key()) + " AND disposition = 'passed' AND median_us = 4") ==
          static_cast<int64_t>(kTs.size() * kArchetypes.size()));
    CHECK(scalar(db, "SELECT count(*) FROM winners WHERE kernel = 'moe_sum_any_bf16'") == 0);
    kf::ResultsDb rdb = kf::ResultsDb::open(db);
    const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
    for (const std::string routing : {"", "uniform", "zipf2"}) {
      CAPTURE(routing);
      const auto win = rdb.winners(p, {kGemm2.op(), kGemm2.key(), true, routing});
      REQUIRE(win.size() == 2);
      CHECK(win[0].kernel == (red_decode < 14 ? f.decode_red : f.decode));
      CHECK(win[0].median_us == (red_decode < 14 ? red_decode : 14.0));  // the gemm2 step's time
      CHECK(win[1].kernel == f.prefill);
      CHECK(win[1].median_us == 24);
    }
  }
}

TEST_CASE("autotune MoE: without a moe_silu_mul time the fused gemm1 kernels never win") {
  TempDir dir("tuner-moe");
  const std::string db = dir.sub("kforge.sqlite");
  const FusedPack f = write_fused_pack(db);
  kf::FakeOptions fo;
  fo.failed = "^moe_silu_mul_";
  fo.moe_time_us = [&](const kf::PackKernel& k, const kf::MoeShape&, const kf::MoeRouting&, bool) {
    return kf::fuses_silu(k.name) ? 1.0 : k.name == f.prefill ? 20.0 : 30.0;
  };
  kf::FakeMeasurer fm(fo);
  run_in_process(moe_options(db), fm);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_silu_mul_any_bf16' AND disposition = 'failed'") ==
        static_cast<int64_t>(kTs.size() * kArchetypes.size()));
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE op = 'w4a16_moe_gemm1' AND kernel LIKE '%_silu'") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE op = 'w4a16_moe_gemm1' AND routing = '' AND kernel = " +
                   q(f.prefill)) == 1);
}

TEST_CASE("autotune MoE: the default cost model makes the archetypes differ; --ops selects one gemm") {
  TempDir dir("tuner-moe");
  const std::string db = dir.sub("kforge.sqlite");
  write_moe_pack(db);
  kf::AutotuneOptions o = moe_options(db);
  o.ops = {"w4a16_moe_gemm2"};
  kf::FakeMeasurer fm({});
  run_in_process(o, fm);
  CHECK(fm.measurements() == moe_measurements() / 2);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE op != 'w4a16_moe_gemm2'") == 0);
  // zipf2 piles tokens on few experts: at T=64 its sorted blocks differ from uniform's.
  CHECK(scalar(db, "SELECT count(*) FROM (SELECT a.kernel FROM results a JOIN results b ON a.kernel = b.kernel"
                   " AND a.m = b.m WHERE a.routing = 'uniform' AND b.routing = 'zipf2' AND a.m = 64"
                   " AND a.disposition = 'passed' AND a.median_us != b.median_us)") > 0);
}

TEST_CASE("autotune MoE: resumes after kill -9 measuring exactly what is missing") {
  TempDir dir("tuner-moe");
  const std::string db = dir.sub("kforge.sqlite");
  write_moe_pack(db);
  // T=1: a batch of 4 per archetype. Dies in the third batch (zipf2 at T=1).
  const std::vector<std::string> args = {"--measurer", "fake",   "--config", kTinyMoe, "--db", db, "--no-generate",
                                         "--ops",      "w4a16_moe", "--m", "1,4,64,128", "--reps", "5", "--confirm-rounds", "0", "-q",
                                         "--fake-die-after", "10"};
  const Child killed = spawn_autotune(args, dir.path.string(), "killed");
  REQUIRE(killed.wait_status() == 137);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'passed'") == 8);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE routing = 'zipf2'") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE routing = ''") == 1);  // robust over uniform and zipf1
  kf::FakeMeasurer fm({});
  const InProcess r = run_in_process(moe_options(db), fm);
  CHECK(fm.measurements() == moe_measurements() - 8);
  CHECK(r.stats.skipped == 8);  // 8 passed; the pruned kernel's 2 rows are judged again and replaced
  CHECK(scalar(db, "SELECT count(*) FROM results") == moe_rows());
  CHECK(scalar(db, "SELECT count(*) FROM results") ==
        scalar(db, "SELECT count(*) FROM (SELECT DISTINCT arch, device, op, shape, m, kernel, cold_l2, routing"
                   " FROM results)"));
}

TEST_CASE("the shipped vLLM export is what the shipped tuned DB exports") {
  // tuned_db/vllm/ is derived data: regenerate it (autotune --export-vllm) whenever the
  // DB's MoE winners change, or engines reading it get another tile than kforge serves.
  const std::string dir = KF_TEST_DATA_DIR "/../tuned_db";
  const kf::MoeShape q35{1, 256, 8, 1024, 2048, 128, true, false};  // qwen3-35b's gate_up
  const std::string device = "NVIDIA H200";
  const std::string shipped = dir + "/vllm/" + kf::vllm_config_file_name(q35, device);
  std::ifstream f(shipped, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), shipped);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(text == kf::vllm_config_json(dir + "/kforge.sqlite", "sm_90a", device, q35, true));
}

TEST_CASE("plan: MoE skinny kernels go by slots per expert, decode ones by T") {
  // qwen3-35b's gemm1: E 256, top-8, so T * top_k / E = 64 at T = 2048.
  const kf::MoeShape q35{1, 256, 8, 1024, 2048, 128, true, false};
  const auto sk = moe_row(q35, "skinny", "bm8_bn64_bk32_w4_sk1_s4");
  CHECK(kf::static_verdict(sk, 64).disposition.empty());
  CHECK(kf::static_verdict(sk, 1024).disposition.empty());
  CHECK(kf::static_verdict(sk, 2048).disposition.empty());
  const auto v = kf::static_verdict(sk, 2049);
  CHECK(v.disposition == "pruned");
  CHECK(kf_test::contains(v.message, "T <= 2048"));
  CHECK(kf_test::contains(v.message, "T = 2049"));
  // The tiny model (E 16, top-4): 64 slots per expert at T = 256.
  const auto tiny = moe_row(kGemm2, "skinny", "bm16_bn64_bk32_w4_sk1_s2");
  CHECK(kf::static_verdict(tiny, 256).disposition.empty());
  CHECK(kf::static_verdict(tiny, 257).disposition == "pruned");
  // The decode kind keeps the linear rule.
  const auto dec = moe_row(q35, "decode", "bm4_bn64_bk32_w4_sk1_s1");
  CHECK(kf::static_verdict(dec, kf::kDecodeMaxM).disposition.empty());
  CHECK(kf::static_verdict(dec, kf::kDecodeMaxM + 1).disposition == "pruned");
}

TEST_CASE("plan: MoE wgmma kernels go by slots per expert, linear ones by M") {
  // qwen3-35b's gemm1: 16 slots per expert from T = 512.
  const kf::MoeShape q35{1, 256, 8, 1024, 2048, 128, true, false};
  const auto wg = moe_row(q35, "wgmma", "bm64_bn128_bk64_w8_sk1_s4");
  CHECK(kf::static_verdict(wg, 512).disposition.empty());
  CHECK(kf::static_verdict(wg, 4096).disposition.empty());
  const auto v = kf::static_verdict(wg, 511);
  CHECK(v.disposition == "pruned");
  CHECK(kf_test::contains(v.message, "T >= 512"));
  CHECK(kf_test::contains(v.message, "T = 511"));
  // Narrower blocks from fewer slots: block_m / 4 per expert (32: T = 256, 16: T = 128).
  const auto wg32 = moe_row(q35, "wgmma", "bm32_bn128_bk64_w8_sk1_s4");
  CHECK(kf::static_verdict(wg32, 256).disposition.empty());
  CHECK(kf::static_verdict(wg32, 255).disposition == "pruned");
  CHECK(kf_test::contains(kf::static_verdict(wg32, 255).message, "block_m 32"));
  const auto wg16 = moe_row(q35, "wgmma", "bm16_bn128_bk64_w8_sk1_s4");
  CHECK(kf::static_verdict(wg16, 128).disposition.empty());
  CHECK(kf::static_verdict(wg16, 127).disposition == "pruned");
  // w4a16_linear's wgmma kernels: from half their tile plus one row, at most from M = 64.
  const kf::LinearShape s{12288, 2048, 128, true, false};
  const auto lin = kf_tuner_test::row(s, "wgmma", "bm128_bn128_bk64_w8_sk1_s4");
  CHECK(kf::static_verdict(lin, kf::kWgmmaMinM).disposition.empty());
  CHECK(kf::static_verdict(lin, kf::kWgmmaMinM - 1).disposition == "pruned");
  const auto lin64 = kf_tuner_test::row(s, "wgmma", "bm64_bn128_bk64_w8_sk1_s4");
  CHECK(kf::static_verdict(lin64, 33).disposition.empty());
  CHECK(kf::static_verdict(lin64, 32).disposition == "pruned");
  const auto lin32 = kf_tuner_test::row(s, "wgmma", "bm32_bn128_bk64_w8_sk1_s4");
  CHECK(kf::static_verdict(lin32, 17).disposition.empty());
  CHECK(kf::static_verdict(lin32, 16).disposition == "pruned");
  CHECK(kf_test::contains(kf::static_verdict(lin32, 16).message, "M >= 17"));
  // Split-K ones up to M = 1024.
  const auto split = kf_tuner_test::row(s, "wgmma", "bm64_bn64_bk128_w4_sk4_s4");
  CHECK(kf::static_verdict(split, kf::kSplitWgmmaMaxM).disposition.empty());
  const auto v2 = kf::static_verdict(split, kf::kSplitWgmmaMaxM + 1);
  CHECK(v2.disposition == "pruned");
  CHECK(kf_test::contains(v2.message, "split-K wgmma"));
}

TEST_CASE("autotune MoE: a stored pruned row is judged again, and measured once the rules allow it") {
  TempDir dir("tuner-moe-repruned");
  const std::string db = dir.sub("kforge.sqlite");
  const MoePack f = write_moe_pack(db);
  kf::FakeMeasurer first({});
  run_in_process(moe_options(db), first);
  // As an older kforge would have left it: the first gemm1 decode kernel pruned at T = 4.
  const std::string where = " WHERE kernel = " + q(f.gemm1[0]) + " AND m = 4";
  kf_test::sql(db, "UPDATE results SET disposition = 'pruned', median_us = NULL, message = 'an older rule'" + where);
  CHECK(scalar(db, "SELECT count(*) FROM results" + where + " AND disposition = 'pruned'") == 3);
  kf::FakeMeasurer again({});
  const InProcess r = run_in_process(moe_options(db), again);
  CHECK(again.measurements() == 3);  // one per archetype
  CHECK(scalar(db, "SELECT count(*) FROM results" + where + " AND disposition = 'passed'") == 3);
  CHECK(scalar(db, "SELECT count(*) FROM results") == moe_rows());
}

TEST_CASE("recompute_winners: the MoE winners, per archetype and robust, come back the same from the stored rows") {
  TempDir dir("tuner-moe-rewin");
  const std::string db = dir.sub("kforge.sqlite");
  const MoePack f = write_moe_pack(db);
  // The robust winners differ from each archetype's own.
  kf::FakeMeasurer fm(disagreeing_archetypes(f));
  run_in_process(moe_options(db), fm);
  const std::string all = "SELECT group_concat(op || ' ' || shape || ' ' || routing || ' ' || m_lo || '-' || m_hi ||"
                          " ' ' || kernel, '; ') FROM (SELECT * FROM winners ORDER BY op, shape, routing, m_lo)";
  const std::string before = text_of(db, all);
  REQUIRE(scalar(db, "SELECT count(*) FROM winners WHERE routing = ''") > 0);
  kf_test::sql(db, "DELETE FROM winners");
  const kf::ResultsDb::Recomputed done = kf::ResultsDb::open(db).recompute_winners();
  CHECK(done.keys == 2 * 3);  // 2 GEMMs x 3 archetypes
  CHECK(done.kept == 0);
  CHECK(text_of(db, all) == before);
}

TEST_CASE("export: vLLM fused-MoE config JSON from the robust gemm1 winners") {
  TempDir dir("tuner-moe");
  const std::string db = dir.sub("kforge.sqlite");
  const MoePack f = write_moe_pack(db);
  CHECK(kf::vllm_config_file_name(kGemm1, "NVIDIA H100 80GB HBM3") ==
        "E=16,N=128,device_name=NVIDIA_H100_80GB_HBM3,dtype=int4_w4a16.json");
  kf::FakeOptions fo;
  fo.device = "NVIDIA H100 80GB HBM3";
  fo.moe_time_us = [&](const kf::PackKernel& k, const kf::MoeShape&, const kf::MoeRouting& r, bool) {
    if (k.name == f.gemm1[0]) return 10.0;                 // decode bm4_bn64_bk32_w4_s1, up to 64
    if (k.name == f.gemm1[3]) return r.t > 64 ? 20.0 : 80.0;  // prefill bm64_bn128_bk64_w8_s2 above
    return 60.0;
  };
  kf::FakeMeasurer fm(fo);
  run_in_process(moe_options(db), fm);
  const std::string out = dir.sub("vllm");
  const Child c = spawn_autotune({"--db", db, "--config", kTinyMoe, "--export-vllm", out}, dir.path.string(), "x");
  INFO(c.err());
  REQUIRE(c.wait_status() == 0);
  const std::string file = out + "/E=16,N=128,device_name=NVIDIA_H100_80GB_HBM3,dtype=int4_w4a16.json";
  REQUIRE(fs::exists(file));
  CHECK(std::distance(fs::directory_iterator(out), fs::directory_iterator()) == 1);  // one layer: one file
  const auto j = nlohmann::json::parse(file_text(file));
  REQUIRE(j.size() == kTs.size());
  for (const char* t : {"1", "4", "64"}) {
    CAPTURE(t);
    // The decode winner's 4 rows become vLLM's smallest tl.dot tile.
    CHECK(j.at(t) == nlohmann::json{{"BLOCK_SIZE_M", 16}, {"BLOCK_SIZE_N", 64}, {"BLOCK_SIZE_K", 32},
                                    {"GROUP_SIZE_M", 1}, {"num_warps", 4},     {"num_stages", 1}});
  }
  CHECK(j.at("128") == nlohmann::json{{"BLOCK_SIZE_M", 64}, {"BLOCK_SIZE_N", 128}, {"BLOCK_SIZE_K", 64},
                                      {"GROUP_SIZE_M", 1}, {"num_warps", 8},      {"num_stages", 2}});
  CHECK(contains(c.out(), "wrote"));
  // Keys in ascending T, as vLLM's own files list them.
  const std::string text = file_text(file);
  CHECK(text.find("\"4\"") < text.find("\"64\""));
  CHECK(text.find("\"64\"") < text.find("\"128\""));
  // Nothing tuned: nothing to export, exit 1.
  TempDir empty("tuner-moe");
  write_moe_pack(empty.sub("kforge.sqlite"));
  const Child none = spawn_autotune({"--db", empty.sub("kforge.sqlite"), "--config", kTinyMoe, "--arch", "sm_90a",
                                     "--export-vllm", empty.sub("out")},
                                    empty.path.string(), "none");
  CHECK(none.wait_status() == 1);
  CHECK(contains(none.err(), "no tuned w4a16_moe_gemm1 winners"));
}

TEST_CASE("MoE host checks: the fused SiLU gemm1 reference and verdict; moe_silu_mul's problem and verdict") {
  std::mt19937_64 rng(11);
  const kf::MoeShape s{1, 4, 2, 64, 64, 32, true, false};  // N = 64: gate 32 + up 32
  kf::MoeProblem p;
  kf::make_moe_weights(p, s, rng);
  kf::make_moe_activations(p, {"uniform", 3, kf::generate_routing(kf::RoutingArchetype::uniform, 3, 4, 2, 1)}, rng);
  const auto ref = kf::moe_reference(p, kf::moe_checked_slots(p.topk_ids, 4, 4096, rng), 2);
  REQUIRE(ref.silu.size() == ref.slots.size() * 32);
  const double g = ref.y[1 * 64 + 5], u = ref.y[1 * 64 + 32 + 5];
  CHECK(ref.silu[1 * 32 + 5] == doctest::Approx(g / (1 + std::exp(-g)) * u).epsilon(1e-12));
  // A fused kernel's output: N/2 columns per slot row, guard rows poisoned.
  std::vector<uint16_t> h(kf::moe_checked_rows(3, 2) * 32, 0xffff);
  for (size_t i = 0; i < ref.slots.size(); ++i)
    for (int64_t c = 0; c < 32; ++c)
      h[ref.slots[i] * 32 + c] = kf::float_to_half_bits(static_cast<float>(ref.silu[i * 32 + c]), true);
  kf::Measurement ok;
  kf::judge_moe_output(h, ref, s, 3, ok, /*fused_silu=*/true);
  CHECK(ok.disposition.empty());
  CHECK(ok.max_rel_err < kf::linear_tolerance(true));
  kf::Measurement as_unfused;  // the same bytes are not an N-wide product
  std::vector<uint16_t> wide(kf::moe_checked_rows(3, 2) * 64, 0xffff);
  std::copy(h.begin(), h.end(), wide.begin());
  kf::judge_moe_output(wide, ref, s, 3, as_unfused);
  CHECK(as_unfused.disposition == "incorrect");
  auto past = h;
  past[6 * 32] = 0;  // the padding row
  kf::Measurement wrote_pad;
  kf::judge_moe_output(past, ref, s, 3, wrote_pad, true);
  CHECK(contains(wrote_pad.message, "padding"));
  auto gate_only = h;  // silu(gate) without the up factor
  for (size_t i = 0; i < ref.slots.size(); ++i)
    for (int64_t c = 0; c < 32; ++c) {
      const double gv = ref.y[i * 64 + c];
      gate_only[ref.slots[i] * 32 + c] = kf::float_to_half_bits(static_cast<float>(gv / (1 + std::exp(-gv))), true);
    }
  kf::Measurement wrong;
  kf::judge_moe_output(gate_only, ref, s, 3, wrong, true);
  CHECK(contains(wrong.message, "above tolerance"));

  // moe_silu_mul: 5000 rows (more than kMoeCheckedSlots distinct ones, the rest repeated).
  const kf::SiluMulProblem sp = kf::make_silu_mul_problem(5000, 16, true, rng);
  CHECK(sp.distinct == kf::kMoeCheckedSlots);
  CHECK(sp.h1[4500 * 32 + 7] == sp.h1[(4500 - kf::kMoeCheckedSlots) * 32 + 7]);
  const double g2 = kf::half_bits_to_float(sp.h1[3 * 32 + 2], true), u2 = kf::half_bits_to_float(sp.h1[3 * 32 + 18], true);
  CHECK(sp.ref[3 * 16 + 2] == doctest::Approx(kf::silu_mul_ref(g2, u2)).epsilon(1e-12));
  std::vector<uint16_t> out((5000 + kf::kGuardRows) * 16, 0xffff);
  for (int64_t r = 0; r < 5000; ++r)
    for (int64_t c = 0; c < 16; ++c)
      out[r * 16 + c] = kf::float_to_half_bits(static_cast<float>(sp.ref[(r % sp.distinct) * 16 + c]), true);
  kf::Measurement good;
  kf::judge_silu_mul_output(out, sp, good);
  CHECK(good.disposition.empty());
  auto missing = out;
  missing[4999 * 16 + 3] = 0xffff;
  kf::Measurement unwritten;
  kf::judge_silu_mul_output(missing, sp, unwritten);
  CHECK(contains(unwritten.message, "row 4999"));
  auto over = out;
  over[5000 * 16] = 0;
  kf::Measurement overrun;
  kf::judge_silu_mul_output(over, sp, overrun);
  CHECK(contains(overrun.message, "past the last"));
}

TEST_CASE("MoE host checks: a _red gemm2's verdict on token rows, its check weights; moe_sum's problem and verdict") {
  std::mt19937_64 rng(13);
  const kf::MoeShape s{2, 8, 2, 32, 64, 32, true, false};
  kf::MoeProblem p;
  kf::make_moe_weights(p, s, rng);
  const int64_t t = 5;
  kf::make_moe_activations(p, {"uniform", t, kf::generate_routing(kf::RoutingArchetype::uniform, t, 8, 2, 1)}, rng);
  p.topk_ids[3] = -1;  // token 1's second slot routes nowhere
  const auto all = kf::moe_reference(p, kf::moe_checked_slots(p.topk_ids, 8, 4096, rng), 2);
  REQUIRE_FALSE(all.sampled);
  CHECK(kf::reduced_check_weights(p, all) == p.topk_weights);
  // What a correct kernel leaves: each token's routed rows summed, guard rows poisoned.
  auto reduced = [&](const kf::MoeReference& ref) {
    std::vector<double> want(t * 32, 0.0);
    for (size_t i = 0; i < ref.slots.size(); ++i)
      for (int64_t c = 0; c < 32; ++c) want[ref.slots[i] / 2 * 32 + c] += ref.y[i * 32 + c];
    std::vector<uint16_t> y(kf::moe_reduced_rows(t) * 32, 0xffff);
    for (int64_t i = 0; i < t * 32; ++i) y[i] = kf::float_to_half_bits(static_cast<float>(want[i]), true);
    return y;
  };
  const auto y = reduced(all);
  kf::Measurement ok;
  kf::judge_moe_reduced_output(y, all, s, t, ok);
  CHECK(ok.disposition.empty());
  CHECK(ok.max_rel_err < kf::linear_tolerance(true));
  CHECK(kf::reduced_tolerance(true, 8) == doctest::Approx(8e-3 + std::sqrt(8.0) / 256));
  auto past = y;
  past[t * 32 + 1] = 0;
  kf::Measurement overrun;
  kf::judge_moe_reduced_output(past, all, s, t, overrun);
  CHECK(contains(overrun.message, "past the last token"));
  auto unzeroed = y;
  unzeroed[2 * 32 + 4] = 0xffff;
  kf::Measurement nan;
  kf::judge_moe_reduced_output(unzeroed, all, s, t, nan);
  CHECK(contains(nan.message, "token 2"));
  auto per_slot = y;  // one slot's row stored instead of added: token 0 lacks slot 1
  for (int64_t c = 0; c < 32; ++c) per_slot[c] = kf::float_to_half_bits(static_cast<float>(all.y[c]), true);
  kf::Measurement lost;
  kf::judge_moe_reduced_output(per_slot, all, s, t, lost);
  CHECK(contains(lost.message, "above tolerance"));
  // A sample of the slots: the others weigh 0, so the token rows sum the checked ones.
  const auto some = kf::moe_reference(p, kf::moe_checked_slots(p.topk_ids, 8, 3, rng), 2);
  REQUIRE(some.sampled);
  const auto w = kf::reduced_check_weights(p, some);
  for (int64_t sl = 0; sl < t * 2; ++sl)
    CHECK(w[sl] == (std::count(some.slots.begin(), some.slots.end(), sl) ? p.topk_weights[sl] : 0.f));
  kf::Measurement sampled_ok;
  kf::judge_moe_reduced_output(reduced(some), some, s, t, sampled_ok);
  CHECK(sampled_ok.disposition.empty());

  // moe_sum: 1100 tokens x top-4 (more slots than kMoeCheckedSlots distinct rows).
  const auto ids = kf::generate_routing(kf::RoutingArchetype::uniform, 1100, 16, 4, 2);
  const kf::SumProblem sp = kf::make_sum_problem(ids, 1100, 4, 16, 16, true, rng);
  CHECK(sp.distinct == kf::kMoeCheckedSlots);
  CHECK(sp.tokens == kf::kMoeCheckedSlots / 4);
  CHECK(sp.x[4200 * 16 + 3] == sp.x[(4200 - kf::kMoeCheckedSlots) * 16 + 3]);
  double direct = 0;
  for (int j = 0; j < 4; ++j) direct += kf::half_bits_to_float(sp.x[(7 * 4 + j) * 16 + 5], true);
  CHECK(sp.ref[7 * 16 + 5] == doctest::Approx(direct).epsilon(1e-12));
  std::vector<uint16_t> out((1100 + kf::kGuardRows) * 16, 0xffff);
  for (int64_t r = 0; r < 1100; ++r)
    for (int64_t c = 0; c < 16; ++c) {
      double v = 0;
      for (int j = 0; j < 4; ++j) v += kf::half_bits_to_float(sp.x[(r * 4 + j) * 16 + c], true);
      out[r * 16 + c] = kf::float_to_half_bits(static_cast<float>(v), true);
    }
  kf::Measurement good;
  kf::judge_sum_output(out, sp, good);
  CHECK(good.disposition.empty());
  auto missing = out;
  missing[1099 * 16] = 0xffff;
  kf::Measurement unwritten;
  kf::judge_sum_output(missing, sp, unwritten);
  CHECK(contains(unwritten.message, "token 1099"));
  auto over = out;
  over[1100 * 16 + 2] = 0;
  kf::Measurement overrun2;
  kf::judge_sum_output(over, sp, overrun2);
  CHECK(contains(overrun2.message, "past the last token"));
}

TEST_CASE("MoE host checks: align verdict, checked slots, float64 reference, output verdict") {
  // Align: 2 tokens x top-2 over 4 experts: slots 0:e1 1:e3 2:e1 3:e0; block_m 2.
  const std::vector<int32_t> ids = {1, 3, 1, 0};
  // e0: [3, pad], e1: [0, 2] (any order), e3: [1, pad]; pad = 4.
  std::vector<int32_t> sorted = {3, 4, 2, 0, 1, 4}, experts = {0, 1, 3};
  CHECK(kf::check_moe_align(ids, 2, 2, 4, 2, sorted, experts, 6) == "");
  CHECK(kf::moe::sorted_capacity(2, 2, 4, 2) >= 6);
  CHECK(contains(kf::check_moe_align(ids, 2, 2, 4, 2, sorted, experts, 8), "num_padded 8, expected 6"));
  std::vector<int32_t> bad = sorted;
  bad[2] = 1;  // a slot of expert 3 in expert 1's run
  CHECK(contains(kf::check_moe_align(ids, 2, 2, 4, 2, bad, experts, 6), "not a slot of expert 1"));
  bad = sorted;
  bad[0] = 4;  // expert 0's slot lost
  CHECK(contains(kf::check_moe_align(ids, 2, 2, 4, 2, bad, experts, 6), "expert 0 has 0 slots"));
  std::vector<int32_t> bad_e = {0, 3, 1};
  CHECK(contains(kf::check_moe_align(ids, 2, 2, 4, 2, sorted, bad_e, 6), "expert_ids[1]"));

  // Checked slots: all when few; else whole experts of a sample, within the budget.
  std::mt19937_64 rng(7);
  const auto routing = kf::generate_routing(kf::RoutingArchetype::uniform, 64, 16, 4, 3);
  CHECK(kf::moe_checked_slots(routing, 16, 4096, rng).size() == 256);
  const auto some = kf::moe_checked_slots(routing, 16, 40, rng);
  CHECK(some.size() <= 40);
  CHECK(!some.empty());
  std::map<int32_t, int> per;
  for (int64_t s : some) ++per[routing[s]];
  for (const auto& [e, n] : per) CHECK(n == std::count(routing.begin(), routing.end(), e));  // whole experts

  // Reference: gemm2 of a tiny shape against a direct sum; the verdict on outputs.
  const kf::MoeShape s{2, 4, 2, 64, 64, 32, true, false};
  kf::MoeProblem p;
  kf::make_moe_weights(p, s, rng);
  const kf::MoeRouting r{"uniform", 3, kf::generate_routing(kf::RoutingArchetype::uniform, 3, 4, 2, 1)};
  kf::make_moe_activations(p, r, rng);
  const auto ref = kf::moe_reference(p, kf::moe_checked_slots(p.topk_ids, 4, 4096, rng), 2);
  REQUIRE(ref.slots.size() == 6);
  CHECK(!ref.sampled);
  const int64_t slot = 5, n = 17;
  double want = 0;
  for (int64_t k = 0; k < s.k; ++k)
    want += kf::half_bits_to_float(p.x[slot * s.k + k], true) * kf::moe_dequant(p, p.topk_ids[slot], n, k);
  want *= p.topk_weights[slot];
  CHECK(ref.y[slot * s.n + n] == doctest::Approx(want).epsilon(1e-12));
  std::vector<uint16_t> y(kf::moe_checked_rows(3, 2) * s.n, 0xffff);
  for (size_t i = 0; i < ref.slots.size(); ++i)
    for (int64_t c = 0; c < s.n; ++c)
      y[ref.slots[i] * s.n + c] = kf::float_to_half_bits(static_cast<float>(ref.y[i * s.n + c]), true);
  kf::Measurement ok;
  kf::judge_moe_output(y, ref, s, 3, ok);
  CHECK(ok.disposition.empty());
  CHECK(ok.max_rel_err < kf::linear_tolerance(true));
  auto padded = y;
  padded[6 * s.n + 3] = 0;  // row T * top_k: the padding id's
  kf::Measurement wrote_pad;
  kf::judge_moe_output(padded, ref, s, 3, wrote_pad);
  CHECK(wrote_pad.disposition == "incorrect");
  CHECK(contains(wrote_pad.message, "padding"));
  auto missing = y;
  missing[2 * s.n + 5] = 0xffff;
  kf::Measurement unwritten;
  kf::judge_moe_output(missing, ref, s, 3, unwritten);
  CHECK(contains(unwritten.message, "slot 2"));
  auto off = y;
  for (int64_t c = 0; c < s.n; ++c) off[c] = kf::float_to_half_bits(0.f, true);
  kf::Measurement wrong;
  kf::judge_moe_output(off, ref, s, 3, wrong);
  CHECK(contains(wrong.message, "above tolerance"));
}

}  // TEST_SUITE
