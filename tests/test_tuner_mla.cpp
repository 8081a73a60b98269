// autotune on sparse_mla_decode: the shapes and kernels a selection plans, the split
// pruning rule, rows and winners per Q with the fake measurer, --m setting the Q buckets,
// resuming after kill -9; and the host side of the device measurers' MLA checks (the
// problem, the sampled float64 reference, the verdict on o and lse).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "linear_reference.h"
#include "mla_problem.h"
#include "mla_reference.h"
#include "results_db.h"
#include "sparse_mla/launch.h"
#include "test_tuner_util.h"

namespace {

using namespace kf_tuner_test;

const kf::MlaShape kH16{16, 2048, 0, true};
const kf::MlaShape kH128x{128, 2048, 128, true};
constexpr int kSms = 132;  // the fake measurer's multiprocessors

kf::PackKernel mla_row(const kf::MlaShape& s, const std::string& config, const std::string& status = "ok") {
  const kf::MlaConfig c = kf::parse_mla_config(config);
  kf::PackKernel k = util_row();
  k.name = kf::mla_kernel_name(s, c);
  k.op = kf::kMlaDecodeOp;
  k.kind = "decode";
  k.shape = s.key();
  k.config = config;
  k.threads = c.warps * 32;
  k.status = status;
  if (status == "compile_error") k.code_object.clear();
  return k;
}

kf::PackKernel combine_row() {
  const kf::Candidate c = kf::make_mla_combine_candidate(true, kf::arch_info("sm_90a"));
  kf::PackKernel k = util_row();
  k.name = c.name;
  k.op = c.op;
  k.kind = c.kind;
  k.shape = c.shape;
  k.config = c.config;
  k.threads = c.threads;
  return k;
}

struct MlaPack {
  std::string plain, wide, split4, split32, spilled, broken;  // h16
  std::string h128_bh16, h128_bh64, h128_split16;
};

MlaPack write_mla_pack(const std::string& path) {
  MlaPack f;
  const std::vector<std::pair<std::string*, kf::PackKernel>> rows = {
      {&f.plain, mla_row(kH16, "bh16_bk16_w4_sp1_s1")},
      {&f.wide, mla_row(kH16, "bh16_bk32_w8_sp1_s2")},
      {&f.split4, mla_row(kH16, "bh16_bk16_w4_sp4_s1")},
      {&f.split32, mla_row(kH16, "bh16_bk16_w4_sp32_s1")},
      {&f.spilled, mla_row(kH16, "bh16_bk16_w16_sp2_s1", "pruned:spills")},
      {&f.broken, mla_row(kH16, "bh16_bk32_w4_sp8_s1", "compile_error")},
      {&f.h128_bh16, mla_row(kH128x, "bh16_bk16_w4_sp1_s1")},
      {&f.h128_bh64, mla_row(kH128x, "bh64_bk16_w16_sp1_s1")},
      {&f.h128_split16, mla_row(kH128x, "bh32_bk16_w8_sp16_s1")}};
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  for (const auto& [name, k] : rows) {
    pack.put_kernel(k);
    *name = k.name;
  }
  pack.put_kernel(util_row());
  pack.put_kernel(combine_row());
  pack.commit();
  return f;
}

kf::AutotuneOptions mla_options(const std::string& db) {
  kf::AutotuneOptions o;
  o.select.model = "deepseek-v3.2";
  o.ops = {"sparse_mla_decode"};
  o.db = db;
  o.reps = 5;
  o.confirm_rounds = 0;  // exact measurement counts (re-timing: test_tuner_run.cpp)
  o.generate = false;
  o.progress = false;
  return o;  // Q: the default buckets 1 .. 1024
}

// Measurements of a full run on the pack at the default Qs with 132 SMs, by the rule:
// h16 (1 block per query unsplit): sp4 while Q * 2 < 264 (Q <= 128: 8 buckets), sp32
// while Q * 16 < 264 (Q <= 16: 5); h128 bh32 (4 blocks per query): sp16 while
// 4 Q * 8 < 264 (Q <= 8: 4); the unsplit kernels at all 11.
constexpr int kFullMeasurements = 11 + 11 + 8 + 5 + 11 + 11 + 4;
constexpr int kFullRows = 9 * 11;

std::string q(const std::string& s) { return "'" + s + "'"; }

double stored(const std::string& db, const std::string& kernel, int64_t m, const std::string& what = "count(*)") {
  return scalar(db, "SELECT " + what + " FROM results WHERE kernel = " + q(kernel) + " AND m = " + std::to_string(m));
}

// The whole problem as one MlaDecodeProblem (the KV cache materialised): what the
// sampled reference must agree with.
kf::MlaDecodeProblem full_problem(const kf::MlaTuneProblem& p) {
  kf::MlaDecodeProblem f;
  f.queries = p.queries;
  f.heads = p.shape.heads;
  f.kv_rows = p.kv_rows;
  f.topk = p.shape.topk;
  f.q = p.q;
  f.kv.resize(p.kv_rows * kf::kMlaHeadDim);
  kf::mla_kv_fill(p, 0, p.kv_rows, f.kv.data());
  f.indices = p.indices;
  f.softmax_scale = p.softmax_scale;
  f.extra_start = p.extra_start;
  f.extra_count = p.extra_count;
  f.bf16 = p.shape.bf16;
  return f;
}

}  // namespace

TEST_SUITE("tuner mla") {

TEST_CASE("plan: deepseek-v3.2's MLA shapes, their kernels and the combine kernel per dtype") {
  kf::ShapeSelection sel;
  sel.model = "deepseek-v3.2";
  const kf::ModelDesc model = kf::resolve_model(sel);
  CHECK(kf::mla_tune_shapes(model, sel, {"w4a16_moe_gemm1"}).empty());
  const auto shapes = kf::mla_tune_shapes(model, sel, {"sparse_mla_decode"});
  REQUIRE(shapes.size() == 8);
  CHECK(shapes.front().key == "h16_topk2048_x0_bf16");
  CHECK(shapes.back().key == "h128_topk2048_x128_bf16");
  CHECK(shapes.back().layers == std::vector<std::string>{"attn.sparse_mla.h128_window"});
  CHECK(shapes.front().op == "sparse_mla_decode");
  // Every op of the default selection includes the family; another model has no MLA.
  CHECK(kf::mla_tune_shapes(model, sel, kf::resolve_ops({})).size() == 8);
  kf::ShapeSelection qwen;
  CHECK(kf::mla_tune_shapes(kf::resolve_model(qwen), qwen, kf::resolve_ops({})).empty());
  sel.dtypes = {"bf16", "fp16"};
  const auto both = kf::mla_tune_shapes(model, sel, {"sparse_mla_decode"});
  CHECK(both.size() == 16);
  // The kernels genkernels emits for them, and both combine kernels whatever the filter.
  const auto names = kf::expected_kernels({}, sel, "sm_90a", std::regex("h16_topk2048_x0_bf16"), {}, both);
  const auto cfgs = kf::enumerate_mla_configs(kH16, kf::arch_info("sm_90a"));
  REQUIRE(!cfgs.empty());
  CHECK(names.size() == cfgs.size() + 3);
  for (const char* n : {"kf_util_stream_read", "sparse_mla_combine_any_bf16", "sparse_mla_combine_any_fp16"})
    CHECK(std::count(names.begin(), names.end(), n) == 1);
  CHECK(std::count(names.begin(), names.end(), kf::mla_kernel_name(kH16, cfgs.front())) == 1);
}

TEST_CASE("plan: MLA split pruning (blocks against the SMs, slots per split) and no decode-M rule") {
  auto why = [](const kf::MlaShape& s, const std::string& cfg, int64_t queries, int sms) {
    return kf::mla_split_prune_reason(s, kf::parse_mla_config(cfg), queries, sms);
  };
  // Unsplit configs are always timed.
  CHECK(why(kH16, "bh16_bk16_w4_sp1_s1", 1024, kSms) == "");
  // h16, bh16: Q blocks unsplit. sp2 is timed while Q < 264, sp4 while 2 Q < 264.
  CHECK(why(kH16, "bh16_bk16_w4_sp2_s1", 256, kSms) == "");
  CHECK(contains(why(kH16, "bh16_bk16_w4_sp2_s1", 264, kSms), "unsplit the grid already has 264 blocks"));
  CHECK(why(kH16, "bh16_bk16_w4_sp4_s1", 128, kSms) == "");
  CHECK(contains(why(kH16, "bh16_bk16_w4_sp4_s1", 256, kSms), "with 2 splits the grid already has 512 blocks"));
  // h128, bh16: 8 blocks per query.
  CHECK(why(kH128x, "bh16_bk16_w4_sp2_s1", 32, kSms) == "");
  CHECK(why(kH128x, "bh16_bk16_w4_sp2_s1", 33, kSms) != "");
  // Unknown SM count: only the slot rule.
  CHECK(why(kH16, "bh16_bk16_w4_sp32_s1", 1024, 0) == "");
  // Each split must get block_k slots: 64 slots in 8 splits leave 8 < 16.
  const kf::MlaShape small{16, 64, 0, true};
  CHECK(why(small, "bh16_bk16_w4_sp4_s1", 1, kSms) == "");
  CHECK(contains(why(small, "bh16_bk16_w4_sp8_s1", 1, kSms), "fewer than block_k = 16"));
  CHECK(why(kf::MlaShape{16, 64, 64, true}, "bh16_bk16_w4_sp8_s1", 1, kSms) == "");  // extras count as slots
  // static_verdict: MLA decode kernels run above M = 64 (the linear decode rule is not theirs).
  const kf::PackKernel plain = mla_row(kH16, "bh16_bk16_w4_sp1_s1");
  CHECK(kf::static_verdict(plain, 1024, kSms).disposition.empty());
  const kf::Verdict v = kf::static_verdict(mla_row(kH16, "bh16_bk16_w4_sp4_s1"), 256, kSms);
  CHECK(v.disposition == "pruned");
  CHECK(contains(v.message, "split KV"));
  CHECK(kf::static_verdict(mla_row(kH16, "bh16_bk16_w4_sp4_s1", "pruned:spills"), 1, kSms).disposition == "pruned");
  CHECK(kf::static_verdict(mla_row(kH16, "bh16_bk16_w4_sp4_s1", "compile_error"), 1, kSms).disposition == "failed");
}

TEST_CASE("autotune MLA: every Q bucket, pruned splits recorded, winners per Q range with routing ''") {
  TempDir dir("tuner-mla");
  const std::string db = dir.sub("kforge.sqlite");
  const MlaPack f = write_mla_pack(db);
  kf::FakeOptions fo;
  // h16: sp4 fastest up to Q = 8, the wide unsplit kernel from there on (crossover 13.5);
  // h128: the default cost model.
  fo.mla_time_us = [&](const kf::PackKernel& k, const kf::MlaShape& s, int64_t queries, bool cold) {
    const double qd = static_cast<double>(queries);
    if (k.name == f.split4) return 10.0 + qd;
    if (k.name == f.wide) return 14.5 + qd * 2.0 / 3.0;
    if (k.name == f.plain || k.name == f.split32) return 100.0 + qd;
    return kf::fake_mla_time_us(k, s, queries, cold);
  };
  kf::FakeMeasurer fm(fo);
  const InProcess r = run_in_process(mla_options(db), fm);
  INFO(r.out << r.err);
  CHECK(fm.measurements() == kFullMeasurements);
  CHECK(fm.shapes_begun() == 2);  // the other six shapes have no kernel in the pack
  CHECK(r.stats.measured == kFullMeasurements);
  CHECK(scalar(db, "SELECT count(*) FROM results") == kFullRows);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE op != 'sparse_mla_decode' OR routing != ''") == 0);
  CHECK(scalar(db, "SELECT count(DISTINCT m) FROM results") == 11);
  CHECK(scalar(db, "SELECT max(m) FROM results") == 1024);
  // Dispositions: the split rule's, genkernels' and the compile error's.
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(f.split4) + " AND m = 128") == "passed");
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(f.split4) + " AND m = 256") == "pruned");
  CHECK(contains(text_of(db, "SELECT message FROM results WHERE kernel = " + q(f.split4) + " AND m = 256"),
                 "with 2 splits the grid already has 512 blocks"));
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.split32) + " AND disposition = 'passed'") == 5);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.spilled) +
                   " AND disposition = 'pruned' AND message LIKE '%spills%'") == 11);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.broken) + " AND disposition = 'failed'") == 11);
  CHECK(stored(db, f.h128_split16, 8, "count(*)") == 1);
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(f.h128_split16) + " AND m = 16") == "pruned");
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(f.h128_bh64) + " AND m = 1024") == "passed");
  // Winners of h16: sp4 up to the crossover at Q = 13.5, the wide kernel above.
  kf::ResultsDb rdb = kf::ResultsDb::open(db);
  const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
  const auto win = rdb.winners(p, {"sparse_mla_decode", kH16.key(), true, ""});
  REQUIRE(win.size() == 2);
  CHECK(win[0].kernel == f.split4);
  CHECK(win[0].m_lo == 1);
  CHECK(win[0].m_hi == 13);
  CHECK(win[1].kernel == f.wide);
  CHECK(win[1].m_lo == 14);
  CHECK(win[1].m_hi == kf::kMaxWinnerM);
  CHECK(win[1].m_tuned == 16);
  // Stored winners are the rule over the stored rows, for the other shape too.
  const auto expect = kf::compute_winners(rdb.passed(p, {"sparse_mla_decode", kH128x.key(), true, ""}));
  const auto got = rdb.winners(p, {"sparse_mla_decode", kH128x.key(), true, ""});
  REQUIRE(!got.empty());
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].kernel == expect[i].kernel);
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE routing != ''") == 0);
  CHECK(r.stats.shapes_with_winners == 2);
  CHECK(contains(r.out, "8 MLA shapes x 11 Q"));
  CHECK(contains(r.out, "sparse_mla_decode winners on kforge-fake-gpu"));
  CHECK(contains(r.out, "h64_topk2048_x0_bf16"));  // listed without a winner
  // A rerun measures nothing.
  kf::FakeMeasurer again(fo);
  CHECK(run_in_process(mla_options(db), again).stats.measured == 0);
}

TEST_CASE("autotune MLA: --m sets the Q buckets; injected failures are recorded") {
  TempDir dir("tuner-mla");
  const std::string db = dir.sub("kforge.sqlite");
  const MlaPack f = write_mla_pack(db);
  std::vector<std::string> args = cli_args(db, "1,64");
  args[3] = "deepseek-v3.2";  // --config FILE -> --model deepseek-v3.2
  args[2] = "--model";
  args.insert(args.end(), {"--ops", "sparse_mla_decode", "--fake-incorrect", "_sp32_", "--fake-failed", "bh64_"});
  const Child c = spawn_autotune(args, dir.path.string(), "m");
  INFO(c.err() << c.out());
  REQUIRE(c.wait_status() == 0);
  CHECK(scalar(db, "SELECT count(DISTINCT m) FROM results") == 2);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE m NOT IN (1, 64)") == 0);
  CHECK(stored(db, f.split32, 1, "count(*)") == 1);
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(f.split32) + " AND m = 1") == "incorrect");
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(f.h128_bh64) + " AND m = 64") == "failed");
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE kernel IN (" + q(f.split32) + ", " + q(f.h128_bh64) + ")") ==
        0);
}

TEST_CASE("autotune MLA: resumes after kill -9 measuring exactly what is missing") {
  TempDir dir("tuner-mla");
  const std::string db = dir.sub("kforge.sqlite");
  write_mla_pack(db);
  // Q = 1 measures 4 kernels of h16 (one batch), Q = 2 the next 4: dies in the second.
  const std::vector<std::string> args = {"--measurer", "fake", "--model", "deepseek-v3.2", "--ops", "sparse_mla_decode",
                                         "--db", db, "--no-generate", "--reps", "5", "--confirm-rounds", "0", "-q", "--fake-die-after", "6"};
  const Child killed = spawn_autotune(args, dir.path.string(), "killed");
  REQUIRE(killed.wait_status() == 137);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'passed'") == 4);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE m = 2") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM winners") == 1);
  kf::FakeMeasurer fm({});
  const InProcess r = run_in_process(mla_options(db), fm);
  INFO(r.out << r.err);
  CHECK(fm.measurements() == kFullMeasurements - 4);
  // 4 passed and the failed kernel's row at Q = 1; the pruned one's row is judged again
  // (pruning rules may change between runs) and replaced, not skipped.
  CHECK(r.stats.skipped == 5);
  CHECK(scalar(db, "SELECT count(*) FROM results") == kFullRows);
  CHECK(scalar(db, "SELECT count(*) FROM results") ==
        scalar(db, "SELECT count(*) FROM (SELECT DISTINCT arch, device, op, shape, m, kernel, cold_l2, routing"
                   " FROM results)"));
}

TEST_CASE("MLA host problem: KV regions per query, distinct indices, unused slots, extras, determinism") {
  CHECK(kf::mla_region_rows(kH16, 1) == 32768);
  CHECK(kf::mla_region_rows(kH16, 3) == 10923);
  CHECK(kf::mla_region_rows(kH16, 16) == 2048);
  CHECK(kf::mla_region_rows(kH128x, 16) == 2176);
  CHECK(kf::mla_kv_rows(kH128x, 1024) == 1024 * 2176);
  for (int64_t qn = 1; qn <= 1024; ++qn) {
    CAPTURE(qn);
    REQUIRE(kf::mla_kv_rows(kH128x, qn) <= kf::mla_kv_rows_bound(kH128x, 1024));
    REQUIRE(kf::mla_kv_rows(kH16, qn) <= kf::mla_kv_rows_bound(kH16, qn));
  }
  // Random access into the value stream matches a sequential draw; moments ~ N(0, 1).
  std::vector<uint16_t> all(4000), part(997);
  kf::mla_random_values(42, 0, 4000, true, all.data());
  kf::mla_random_values(42, 1001, 997, true, part.data());
  CHECK(std::equal(part.begin(), part.end(), all.begin() + 1001));
  double sum = 0, sq = 0;
  for (uint16_t v : all) {
    sum += kf::half_bits_to_float(v, true);
    sq += std::pow(kf::half_bits_to_float(v, true), 2);
  }
  CHECK(std::fabs(sum / 4000) < 0.1);
  CHECK(sq / 4000 == doctest::Approx(1.0).epsilon(0.1));

  const kf::MlaShape s{32, 256, 64, true};
  std::mt19937_64 rng(3), rng2(3);
  const kf::MlaTuneProblem p = kf::make_mla_problem(s, 6, rng);
  CHECK(p.region == 5462);
  CHECK(p.kv_rows == 6 * 5462);
  CHECK(p.q.size() == 6u * 32 * 576);
  CHECK(p.softmax_scale == doctest::Approx(1.0 / 24));
  for (int64_t qi = 0; qi < 6; ++qi) {
    CAPTURE(qi);
    std::set<int32_t> seen;
    int unused = 0;
    for (int64_t j = 0; j < s.topk; ++j) {
      const int32_t r = p.indices[qi * s.topk + j];
      if (r < 0) {
        CHECK(r == -1);
        ++unused;
        continue;
      }
      CHECK(r >= qi * p.region);
      CHECK(r < (qi + 1) * p.region);
      CHECK(seen.insert(r).second);
    }
    if (qi == 5) CHECK(unused == 64);  // the tail; the first query's few are counted below
    if (qi > 0 && qi < 5) CHECK(unused == 0);
    CHECK(p.extra_count[qi] == 64);
    CHECK(p.extra_start[qi] >= qi * p.region);
    CHECK(p.extra_start[qi] + 64 <= (qi + 1) * p.region);
  }
  // The last query's tail is unused; the first query has a few scattered unused slots.
  for (int64_t j = 192; j < 256; ++j) CHECK(p.indices[5 * 256 + j] == -1);
  const auto first_unused = std::count(p.indices.begin(), p.indices.begin() + 256, -1);
  CHECK(first_unused >= 1);
  CHECK(first_unused <= 16);
  const kf::MlaTuneProblem again = kf::make_mla_problem(s, 6, rng2);
  CHECK(again.indices == p.indices);
  CHECK(again.q == p.q);
  CHECK(again.kv_seed == p.kv_seed);
  CHECK(kf::make_mla_problem(s, 6, rng2).kv_seed != p.kv_seed);  // fresh per draw
  CHECK(kf::mla_checked_queries(4) == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(kf::mla_checked_queries(1024) == std::vector<int64_t>{0, 512, 1023});
}

TEST_CASE("MLA host checks: the sampled reference and the verdict on o and lse") {
  const kf::MlaShape s{32, 256, 64, true};
  std::mt19937_64 rng(11);
  const kf::MlaTuneProblem p = kf::make_mla_problem(s, 6, rng);
  const kf::MlaCheckReference ref = kf::mla_check_reference(p, 3);
  REQUIRE(ref.queries == std::vector<int64_t>{0, 3, 5});
  const kf::MlaDecodeResult full = kf::mla_decode_reference(full_problem(p));
  const int64_t H = s.heads, D = kf::kMlaLatentDim;
  for (size_t c = 0; c < ref.queries.size(); ++c)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t row = ref.queries[c] * H + h, at = static_cast<int64_t>(c) * H + h;
      REQUIRE(ref.lse[at] == doctest::Approx(full.lse[row]).epsilon(1e-12));
      for (int64_t d = 0; d < D; d += 37)
        REQUIRE(ref.o[at * D + d] == doctest::Approx(full.o[row * D + d]).epsilon(1e-9));
    }
  // Neither flat nor one-hot: lse well above log(1) and below log(#keys) + a few.
  CHECK(full.lse[0] > std::log(256.0) - 1);
  CHECK(full.lse[0] < std::log(320.0) + 4);

  // The verdict: outputs rounded from the full reference pass; each fault is named.
  std::vector<uint16_t> o((p.queries + 1) * H * D, 0xffff);
  std::vector<float> lse((p.queries + 1) * H);
  const float poison = [] {
    const uint32_t u = 0xffffffffu;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }();
  std::fill(lse.begin(), lse.end(), poison);
  for (int64_t i = 0; i < p.queries * H * D; ++i) o[i] = kf::float_to_half_bits(static_cast<float>(full.o[i]), true);
  for (int64_t i = 0; i < p.queries * H; ++i) lse[i] = static_cast<float>(full.lse[i]);
  auto judge = [&](const std::vector<uint16_t>& oo, const std::vector<float>& ll) {
    kf::Measurement r;
    kf::judge_mla_output(oo, ll, ref, p, r);
    return r;
  };
  const kf::Measurement ok = judge(o, lse);
  CHECK(ok.disposition.empty());
  CHECK(ok.max_rel_err > 0);
  CHECK(ok.max_rel_err < 5e-3);
  auto unwritten = o;
  unwritten[(2 * H + 7) * D + 100] = 0xffff;  // query 2: not a checked one
  CHECK(contains(judge(unwritten, lse).message, "o of query 2, head 7 not written (dim 100)"));
  auto inf = o;
  inf[5] = 0x7f80;
  CHECK(contains(judge(inf, lse).message, "not finite"));
  auto guard = o;
  guard[p.queries * H * D + 3] = 0;
  CHECK(contains(judge(guard, lse).message, "wrote o past the last query"));
  auto lse_guard = lse;
  lse_guard[p.queries * H] = 0;
  CHECK(contains(judge(o, lse_guard).message, "wrote lse past the last query"));
  auto lse_missing = lse;
  lse_missing[4 * H + 1] = poison;
  CHECK(contains(judge(o, lse_missing).message, "lse of query 4, head 1 not written"));
  auto lse_off = lse;
  lse_off[5 * H + 2] += 0.05f;
  const kf::Measurement off = judge(o, lse_off);
  CHECK(off.disposition == "incorrect");
  CHECK(contains(off.message, "lse of query 5, head 2 off by"));
  auto wrong = o;
  for (int64_t d = 0; d < D; ++d) wrong[(3 * H) * D + d] = kf::float_to_half_bits(0.5f, true);  // a checked query
  const kf::Measurement bad = judge(wrong, lse);
  CHECK(bad.disposition == "incorrect");
  CHECK(contains(bad.message, "normalised error of o"));
  CHECK(bad.max_rel_err > kf::mla_tolerance(true));
}

}  // TEST_SUITE
