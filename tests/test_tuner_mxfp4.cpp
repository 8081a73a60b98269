// autotune on the mxfp4_moe ops with the fake measurer: the shapes and kernels a gpt-oss
// selection plans, the block_m pruning rule, rows and winners per routing archetype plus
// the routing-robust winner, the routing with slots routed nowhere, resuming after kill -9;
// and the host side of the device measurers' MXFP4 checks (the counter-based problem, the
// sampled float64 reference against mxfp4_reference.h's, the verdict on y).
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include "device_plan.h"
#include "linear_reference.h"
#include "mxfp4_problem.h"
#include "mxfp4_reference.h"
#include "results_db.h"
#include "test_tuner_util.h"

namespace {

using namespace kf_tuner_test;

// gpt-oss-20b: 32 experts, top-4, hidden = intermediate = 2880.
const kf::Mxfp4MoeShape kUp20{1, 32, 4, 5760, 2880, true};
const kf::Mxfp4MoeShape kDown20{2, 32, 4, 2880, 2880, false};
const kf::Mxfp4MoeShape kUp120{1, 128, 4, 5760, 2880, true};
const std::vector<int64_t> kTs = {1, 16, 128, 512};

kf::PackKernel mx_row(const kf::Mxfp4MoeShape& s, const std::string& config, const std::string& status = "ok") {
  const kf::Mxfp4Config c = kf::parse_mxfp4_config(config);
  kf::PackKernel k = util_row();
  k.name = kf::mxfp4_kernel_name(s, c);
  k.op = s.op();
  k.kind = "mma";
  k.shape = s.key();
  k.config = config;
  k.threads = c.warps * 32;
  k.status = status;
  if (status == "compile_error") k.code_object.clear();
  return k;
}

struct MxPack {
  std::string up16, up32, up64, up128, spilled, broken;  // gemm1
  std::string down16, down64;                            // gemm2
};

MxPack write_mx_pack(const std::string& path) {
  MxPack f;
  const std::vector<std::pair<std::string*, kf::PackKernel>> rows = {
      {&f.up16, mx_row(kUp20, "bm16_bn96_bk64_w4_s3_ep1")},
      {&f.up32, mx_row(kUp20, "bm32_bn96_bk64_w4_s3_ep1")},
      {&f.up64, mx_row(kUp20, "bm64_bn192_bk64_w8_s3_ep1")},
      {&f.up128, mx_row(kUp20, "bm128_bn96_bk64_w8_s2_ep2")},
      {&f.spilled, mx_row(kUp20, "bm32_bn192_bk128_w4_s4_ep1", "pruned:spills")},
      {&f.broken, mx_row(kUp20, "bm16_bn64_bk32_w4_s2_ep1", "compile_error")},
      {&f.down16, mx_row(kDown20, "bm16_bn96_bk64_w4_s3_ep1")},
      {&f.down64, mx_row(kDown20, "bm64_bn96_bk64_w8_s3_ep1")}};
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  for (const auto& [name, k] : rows) {
    pack.put_kernel(k);
    *name = k.name;
  }
  pack.put_kernel(util_row());
  pack.put_kernel(align_row());
  pack.commit();
  return f;
}

kf::AutotuneOptions mx_options(const std::string& db) {
  kf::AutotuneOptions o;
  o.select.model = "gpt-oss-20b";
  o.ops = {"mxfp4_moe"};
  o.db = db;
  o.ms = kTs;
  o.reps = 5;
  o.confirm_rounds = 0;  // exact measurement counts (re-timing: test_tuner_run.cpp)
  o.generate = false;
  o.progress = false;
  return o;
}

// Per archetype, by the block_m rule at E = 32, top-4 (64 from T = 128, 128 from T = 256,
// 16 below T = 512): gemm1 T=1: 16, 32; T=16: 16, 32; T=128: 16, 32, 64; T=512: 32, 64,
// 128; gemm2 T=1, 16: 16; T=128: 16, 64; T=512: 64.
constexpr int kPerArchetype = (2 + 2 + 3 + 3) + (1 + 1 + 2 + 1);
constexpr int kRows = 3 * 8 * 4;  // archetypes x candidates x Ts

std::string q(const std::string& s) { return "'" + s + "'"; }

// A small problem of the generator, materialised for mxfp4_moe_reference (checkpoint
// layout): per slot (gemm2 with one slot per "token", as the GPU check runs it).
kf::Mxfp4MoeProblem full_problem(const kf::Mxfp4TuneProblem& p) {
  const kf::Mxfp4MoeShape& s = p.shape;
  kf::Mxfp4MoeProblem f;
  f.gemm = s.gemm;
  f.experts = s.experts;
  f.top_k = s.gemm == 1 ? s.top_k : 1;
  f.t = s.gemm == 1 ? p.t : p.slots();
  f.n = s.n;
  f.k = s.k;
  f.weight.resize(kf::mxfp4_weight_bytes(s));
  kf::mxfp4_weight_fill(p, 0, static_cast<int64_t>(f.weight.size()), f.weight.data());
  for (int64_t e = 0; e < s.experts; ++e)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t kb = 0; kb < s.k / 32; ++kb) f.scales.push_back(kf::mxfp4_scale(p, e, n, kb));
  f.bias = p.bias;
  f.x = p.x;
  f.topk_ids = p.topk_ids;
  if (s.gemm == 2) f.topk_weights = p.topk_weights;
  f.swiglu = s.swiglu;
  f.swiglu_alpha = kf::kMxfp4SwigluAlpha;
  f.swiglu_limit = kf::kMxfp4SwigluLimit;
  return f;
}

// y as a kernel writes it: the reference rows rounded to bf16, every other row poisoned.
std::vector<uint16_t> output_of(const kf::Mxfp4TuneProblem& p, const kf::Mxfp4CheckReference& ref) {
  const int64_t n = p.out_cols();
  std::vector<uint16_t> y((p.slots() + kf::kGuardRows) * n, 0xffff);
  for (size_t i = 0; i < ref.slots.size(); ++i)
    for (int64_t c = 0; c < n; ++c)
      y[ref.slots[i] * n + c] = kf::float_to_half_bits(static_cast<float>(ref.y[i * n + c]), true);
  return y;
}

}  // namespace

TEST_SUITE("tuner mxfp4") {

TEST_CASE("plan: gpt-oss's expert layers are mxfp4_moe shapes, with their kernels and the helpers") {
  kf::ShapeSelection sel;
  sel.model = "gpt-oss-120b";
  const kf::ModelDesc model = kf::resolve_model(sel);
  // Never w4a16 MoE shapes (2880 is no multiple of the group size, and the weights are MXFP4).
  CHECK(kf::moe_tune_shapes(model, sel, kf::resolve_ops({})).empty());
  const auto shapes = kf::mxfp4_tune_shapes(model, kf::resolve_ops({"mxfp4_moe"}));
  REQUIRE(shapes.size() == 2);
  CHECK(shapes[0].op == "mxfp4_moe_gemm1");
  CHECK(shapes[0].key == "e128_topk4_n5760_k2880_swiglu");
  CHECK(shapes[0].layers == std::vector<std::string>{"experts.gate_up_proj"});
  CHECK(shapes[1].op == "mxfp4_moe_gemm2");
  CHECK(shapes[1].key == "e128_topk4_n2880_k2880");
  CHECK(kf::mxfp4_tune_shapes(model, kf::resolve_ops({})).size() == 2);
  CHECK(kf::mxfp4_tune_shapes(model, {"mxfp4_moe_gemm2"}).size() == 1);
  CHECK(kf::mxfp4_tune_shapes(model, {"w4a16_moe_gemm1", "sparse_mla_decode"}).empty());
  sel.model = "qwen3-35b";
  CHECK(kf::mxfp4_tune_shapes(kf::resolve_model(sel), kf::resolve_ops({})).empty());
  // The helpers come whatever the filter: align, and the bf16 silu_mul and sum genkernels
  // emits with the family.
  const auto helpers = kf::expected_kernels({}, sel, "sm_90a", std::regex("^$"), {}, {}, shapes);
  CHECK(helpers == std::vector<std::string>{"kf_util_stream_read", "moe_align_any", "moe_align_cluster_any",
                                            "moe_silu_mul_any_bf16", "moe_sum_any_bf16"});
  const auto all = kf::expected_kernels({}, sel, "sm_90a", std::regex("_bm16_"), {}, {}, shapes);
  size_t bm16 = 0;
  for (const auto& s : shapes)
    for (const auto& c : kf::enumerate_mxfp4_configs(s.shape, kf::arch_info("sm_90a"))) bm16 += c.block_m == 16;
  CHECK(all.size() == bm16 + helpers.size());
  CHECK(std::count_if(all.begin(), all.end(), [](const std::string& n) { return n.rfind("mxfp4_moe_gemm2_", 0) == 0; }) > 0);
}

TEST_CASE("plan: MXFP4 block_m pruning by routed slots per expert") {
  auto reason = [](const kf::Mxfp4MoeShape& s, int bm, int64_t t) {
    kf::Mxfp4Config c;
    c.block_m = bm;
    return kf::mxfp4_block_m_prune_reason(s, c, t);
  };
  // gpt-oss-120b: L = T / 32.
  for (int64_t t = 1; t <= 4096; t *= 2) {
    CAPTURE(t);
    CHECK(reason(kUp120, 32, t).empty());
    CHECK(reason(kUp120, 16, t).empty() == (t < 2048));
    CHECK(reason(kUp120, 64, t).empty() == (t >= 512));
    CHECK(reason(kUp120, 128, t).empty() == (t >= 1024));
    // gpt-oss-20b: L = T / 8.
    CHECK(reason(kUp20, 16, t).empty() == (t < 512));
    CHECK(reason(kUp20, 64, t).empty() == (t >= 128));
    CHECK(reason(kUp20, 128, t).empty() == (t >= 256));
  }
  CHECK(contains(reason(kUp120, 64, 256), "block_m 64 is timed from T = 512"));
  CHECK(contains(reason(kUp120, 128, 512), "timed from T = 1024"));
  CHECK(contains(reason(kUp120, 16, 2048), "block_m 16 is timed below T = 2048"));
  // The wgmma kind's padding is cheap: block_m / 16 slots per expert suffice.
  auto wgmma_reason = [](const kf::Mxfp4MoeShape& s, int bm, int64_t t) {
    kf::Mxfp4Config c{bm, 64, 64, 4, 4, 1};
    c.kind = kf::Mxfp4Kind::wgmma;
    return kf::mxfp4_block_m_prune_reason(s, c, t);
  };
  for (int64_t t = 1; t <= 4096; t *= 2) {
    CAPTURE(t);
    CHECK(wgmma_reason(kUp120, 64, t).empty() == (t >= 128));
    CHECK(wgmma_reason(kUp120, 256, t).empty() == (t >= 512));
  }
  CHECK(contains(wgmma_reason(kUp120, 128, 128), "wgmma block_m 128"));
  CHECK(contains(wgmma_reason(kUp120, 128, 128), "wgmma block_m 128 is timed from T = 256"));
  // Not a power of two: the bounds are exact.
  CHECK(reason(kUp120, 64, 511).size() > 0);
  CHECK(reason(kUp120, 16, 2047).empty());
  // Through static_verdict, after the pack's own status.
  const kf::PackKernel big = mx_row(kUp20, "bm128_bn96_bk64_w8_s2_ep2");
  CHECK(kf::static_verdict(big, 128).disposition == "pruned");
  CHECK(kf::static_verdict(big, 256).disposition.empty());
  CHECK(kf::static_verdict(mx_row(kUp20, "bm16_bn96_bk64_w4_s3_ep1", "compile_error"), 1).disposition == "failed");
  CHECK(contains(kf::static_verdict(mx_row(kUp20, "bm32_bn96_bk64_w4_s3_ep1", "pruned:spills"), 1).message,
                 "spills"));
  // gpt-oss-120b at the default Ts: what is timed of the whole candidate space on sm_90a.
  int timed = 0, all = 0;
  for (const auto& s : {kUp120, kf::Mxfp4MoeShape{2, 128, 4, 2880, 2880, false}})
    for (const auto& c : kf::enumerate_mxfp4_configs(s, kf::arch_info("sm_90a")))
      for (int64_t t = 1; t <= 4096; t *= 2) {
        ++all;
        timed += kf::mxfp4_block_m_prune_reason(s, c, t).empty();
      }
  MESSAGE("gpt-oss-120b sm_90a: " << timed << " of " << all << " (config, T) timed per archetype");
  CHECK(timed < all * 2 / 3);
  CHECK(timed > all / 2);
}

TEST_CASE("autotune MXFP4: rows and winners per routing archetype, the robust winner, pruned block_m") {
  TempDir dir("tuner-mxfp4");
  const std::string db = dir.sub("kforge.sqlite");
  const MxPack f = write_mx_pack(db);
  kf::FakeOptions fo;
  // gemm1: bm16 is the fastest at T <= 16 on uniform and zipf1 but 3x the best under zipf2;
  // bm32 within 1.2x everywhere (the robust pick there); bm64 wins T = 128, bm128 T = 512.
  std::map<std::pair<std::string, int64_t>, std::vector<int32_t>> seen;  // (archetype, T) -> routing
  fo.mxfp4_time_us = [&](const kf::PackKernel& k, const kf::Mxfp4MoeShape& s, const kf::MoeRouting& r, bool cold) {
    CHECK(cold);
    seen[{r.archetype, r.t}] = r.topk_ids;
    const bool zipf2 = r.archetype == "zipf2";
    if (s.gemm == 2) return k.name == f.down16 ? 20.0 : r.t >= 128 ? 15.0 : 30.0;
    if (k.name == f.up16) return r.t <= 16 ? (zipf2 ? 30.0 : 10.0) : 40.0;
    if (k.name == f.up32) return r.t <= 16 ? 12.0 : 30.0;
    if (k.name == f.up64) return r.t == 128 ? 20.0 : 25.0;
    return 10.0;  // up128, timed at T = 512 only
  };
  kf::FakeMeasurer fm(fo);
  const InProcess r = run_in_process(mx_options(db), fm);
  INFO(r.out << r.err);
  CHECK(fm.measurements() == 3 * kPerArchetype);
  CHECK(r.stats.measured == 3 * kPerArchetype);
  CHECK(scalar(db, "SELECT count(*) FROM results") == kRows);
  for (const std::string a : {"uniform", "zipf1", "zipf2"}) {
    CHECK(scalar(db, "SELECT count(*) FROM results WHERE routing = " + q(a)) == kRows / 3);
    CHECK(seen.count({a, 512}));
  }
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE routing = ''") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE op = 'mxfp4_moe_gemm1' AND shape = " + q(kUp20.key())) ==
        3 * 6 * 4);
  // The pruned block_m rows say why; the pack's own dispositions stay.
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.up128) +
                   " AND disposition = 'pruned' AND message LIKE '%timed from T = 256%'") == 9);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.up16) + " AND m = 512 AND disposition ="
                   " 'pruned' AND message LIKE 'block_m 16:%'") == 3);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.spilled) + " AND disposition = 'pruned'") == 12);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.broken) + " AND disposition = 'failed'") == 12);
  // Slots routed nowhere from T = 16 on (-1), a second one from T = 64 (E).
  for (const auto& [key, ids] : seen) {
    CAPTURE(key.second);
    const int64_t minus = std::count(ids.begin(), ids.end(), -1), over = std::count(ids.begin(), ids.end(), 32);
    CHECK(minus == (key.second >= 16 ? 1 : 0));
    CHECK(over == (key.second >= 64 ? 1 : 0));
    CHECK(static_cast<int64_t>(ids.size()) == key.second * 4);
  }
  // Per-archetype winners: bm16 on uniform at T <= 16, bm32 under zipf2; the robust one bm32.
  kf::ResultsDb rdb = kf::ResultsDb::open(db);
  const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
  CHECK(rdb.winners(p, {kUp20.op(), kUp20.key(), true, "uniform"}).front().kernel == f.up16);
  CHECK(rdb.winners(p, {kUp20.op(), kUp20.key(), true, "zipf2"}).front().kernel == f.up32);
  const auto robust = rdb.winners(p, {kUp20.op(), kUp20.key(), true, ""});
  REQUIRE(robust.size() == 3);
  CHECK(robust[0].kernel == f.up32);
  CHECK(robust[0].m_lo == 1);
  CHECK(robust[0].median_us == 12);
  CHECK(robust[1].kernel == f.up64);
  CHECK(robust[1].m_tuned == 128);
  CHECK(robust[2].kernel == f.up128);
  CHECK(robust[2].m_tuned == 512);
  CHECK(robust[2].m_hi == kf::kMaxWinnerM);
  const auto down = rdb.winners(p, {kDown20.op(), kDown20.key(), true, ""});
  REQUIRE(down.size() == 2);
  CHECK(down[0].kernel == f.down16);
  CHECK(down[1].kernel == f.down64);
  CHECK(down[1].m_tuned == 128);
  CHECK(scalar(db, "SELECT count(DISTINCT routing) FROM winners") == 4);
  CHECK(r.stats.shapes_with_winners == 2);
  CHECK(contains(r.out, "2 MXFP4 shapes x 4 T x 3 routings (uniform,zipf1,zipf2)"));
  CHECK(contains(r.out, "MXFP4 MoE winners on kforge-fake-gpu"));
  CHECK(contains(r.out, f.up64));
  // A rerun measures nothing; hot16 adds only its own rows.
  kf::FakeMeasurer again(fo);
  CHECK(run_in_process(mx_options(db), again).stats.measured == 0);
  kf::AutotuneOptions o = mx_options(db);
  o.archetypes = {kf::RoutingArchetype::hot16};
  kf::FakeMeasurer hot(fo);
  run_in_process(o, hot);
  CHECK(hot.measurements() == kPerArchetype);
  CHECK(scalar(db, "SELECT count(DISTINCT routing) FROM winners") == 5);
}

TEST_CASE("autotune MXFP4: the default cost model; --ops picks one GEMM; injected failures are recorded") {
  TempDir dir("tuner-mxfp4");
  const std::string db = dir.sub("kforge.sqlite");
  const MxPack f = write_mx_pack(db);
  kf::AutotuneOptions o = mx_options(db);
  o.ops = {"mxfp4_moe_gemm1"};
  kf::FakeOptions fo;
  fo.incorrect = "_bm32_";
  kf::FakeMeasurer fm(fo);
  const InProcess r = run_in_process(o, fm);
  INFO(r.out << r.err);
  CHECK(fm.measurements() == 3 * (2 + 2 + 3 + 3));
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE op != 'mxfp4_moe_gemm1'") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(f.up32) + " AND disposition = 'incorrect'") == 12);
  // bm16 (bm32 is out) serves the small Ts, a block_m 64 or 128 tile T = 512.
  kf::ResultsDb rdb = kf::ResultsDb::open(db);
  const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
  const auto win = rdb.winners(p, {kUp20.op(), kUp20.key(), true, ""});
  REQUIRE(!win.empty());
  CHECK(win.front().kernel == f.up16);
  CHECK((win.back().kernel == f.up64 || win.back().kernel == f.up128));
  // The model itself: padding costs math at T = 1, re-reading the weights per 16 slots
  // costs at T = 4096 (gpt-oss-120b).
  const kf::PackKernel small = mx_row(kUp120, "bm16_bn96_bk64_w4_s3_ep1"), big = mx_row(kUp120, "bm128_bn96_bk64_w8_s2_ep2");
  for (int64_t t : {1, 4096}) {
    CAPTURE(t);
    const kf::MoeRouting r{"uniform", t, kf::mxfp4_tune_routing(kf::RoutingArchetype::uniform, t, 128, 4, 1)};
    const double t16 = kf::fake_mxfp4_time_us(small, kUp120, r, true), t128 = kf::fake_mxfp4_time_us(big, kUp120, r, true);
    CHECK((t == 1 ? t16 < t128 : t128 < t16));
    CHECK(kf::fake_mxfp4_time_us(small, kUp120, r, false) <= t16);
  }
  // zipf2 piles slots on a few experts: at T = 16 the sorted blocks differ from uniform's.
  CHECK(scalar(db, "SELECT count(*) FROM results a JOIN results b ON a.kernel = b.kernel AND a.m = b.m"
                   " WHERE a.routing = 'uniform' AND b.routing = 'zipf2' AND a.m = 16 AND a.disposition = 'passed'"
                   " AND a.median_us != b.median_us") > 0);
}

TEST_CASE("autotune MXFP4: resumes after kill -9 measuring exactly what is missing") {
  TempDir dir("tuner-mxfp4");
  const std::string db = dir.sub("kforge.sqlite");
  write_mx_pack(db);
  // T=1 batches: 2 gemm1 kernels per archetype. Dies in the third (zipf2).
  const std::vector<std::string> args = {"--measurer", "fake", "--model", "gpt-oss-20b", "--db", db, "--no-generate",
                                         "--ops", "mxfp4_moe", "--m", "1,16,128,512", "--reps", "5", "--confirm-rounds", "0", "-q",
                                         "--fake-die-after", "5"};
  const Child killed = spawn_autotune(args, dir.path.string(), "killed");
  REQUIRE(killed.wait_status() == 137);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'passed'") == 4);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE routing = 'zipf2'") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE routing = ''") == 1);  // gemm1, over uniform and zipf1
  kf::FakeMeasurer fm({});
  const InProcess r = run_in_process(mx_options(db), fm);
  CHECK(fm.measurements() == 3 * kPerArchetype - 4);
  // Per stored batch: 2 passed and 1 broken; the 3 pruned rows (by the pack, by block_m)
  // are judged again and replaced.
  CHECK(r.stats.skipped == 2 * 3);
  CHECK(scalar(db, "SELECT count(*) FROM results") == kRows);
  CHECK(scalar(db, "SELECT count(*) FROM results") ==
        scalar(db, "SELECT count(*) FROM (SELECT DISTINCT arch, device, op, shape, m, kernel, cold_l2, routing"
                   " FROM results)"));
}

TEST_CASE("MXFP4 host problem: routing, counter-based weights and scales, both layouts, determinism") {
  // Slots routed nowhere from T = 16 (the last token's first choice) and T = 64 (token 1's last).
  for (int64_t t : {1, 15, 16, 63, 64, 300}) {
    CAPTURE(t);
    const auto ids = kf::mxfp4_tune_routing(kf::RoutingArchetype::zipf1, t, 32, 4, 1);
    REQUIRE(static_cast<int64_t>(ids.size()) == t * 4);
    CHECK((ids[(t - 1) * 4] == -1) == (t >= 16));
    if (t >= 2) CHECK((ids[7] == 32) == (t >= 64));
    CHECK(std::count_if(ids.begin(), ids.end(), [](int32_t e) { return e < 0 || e >= 32; }) ==
          (t >= 16) + (t >= 64));
  }
  const kf::Mxfp4MoeShape s{1, 4, 2, 64, 96, true};
  const kf::MoeRouting routing{"uniform", 5, kf::mxfp4_tune_routing(kf::RoutingArchetype::uniform, 5, 4, 2, 3)};
  std::mt19937_64 rng(7), again(7);
  const kf::Mxfp4TuneProblem p = kf::make_mxfp4_problem(s, routing, rng);
  const kf::Mxfp4TuneProblem p2 = kf::make_mxfp4_problem(s, routing, again);
  CHECK(p.x == p2.x);
  CHECK(p.bias == p2.bias);
  CHECK(p.x.size() == 5 * 96);
  CHECK(p.bias.size() == 4 * 64);
  CHECK(p.topk_weights.size() == 10);
  for (float w : p.topk_weights) CHECK((w >= 0.1f && w <= 1.f));
  for (float b : p.bias) CHECK(std::fabs(b) <= 0.5f);
  // The same bytes in any chunking.
  std::vector<uint8_t> whole(kf::mxfp4_weight_bytes(s)), parts(whole.size());
  kf::mxfp4_weight_fill(p, 0, static_cast<int64_t>(whole.size()), whole.data());
  for (int64_t at = 0; at < static_cast<int64_t>(parts.size()); at += 13)
    kf::mxfp4_weight_fill(p, at, std::min<int64_t>(13, parts.size() - at), &parts[at]);
  CHECK(whole == parts);
  CHECK_THROWS(kf::mxfp4_weight_fill(p, 1, static_cast<int64_t>(whole.size()), parts.data()));
  // Every e2m1 code; the scales of the kernels' [E, K/32, N] layout are the checkpoint's transposed.
  std::set<int> codes;
  for (uint8_t b : whole) {
    codes.insert(b & 15);
    codes.insert(b >> 4);
  }
  CHECK(codes.size() == 16);
  std::vector<uint8_t> k_major(kf::mxfp4_scale_bytes(s));
  kf::mxfp4_scale_fill(p, 0, static_cast<int64_t>(k_major.size()), k_major.data());
  for (int64_t e = 0; e < 4; ++e)
    for (int64_t kb = 0; kb < 3; ++kb)
      for (int64_t n = 0; n < 64; ++n) REQUIRE(k_major[(e * 3 + kb) * 64 + n] == kf::mxfp4_scale(p, e, n, kb));
  // The scale distribution on a large draw: mostly 2^-9 .. 2^-3, ~1/64 at each edge.
  const kf::Mxfp4MoeShape big{2, 8, 2, 512, 2048, false};
  const kf::Mxfp4TuneProblem pb = kf::make_mxfp4_problem(big, {"uniform", 1, {0, 7}}, rng);
  std::vector<uint8_t> sc(kf::mxfp4_scale_bytes(big));
  kf::mxfp4_scale_fill(pb, 0, static_cast<int64_t>(sc.size()), sc.data());
  std::map<int, int> hist;
  for (uint8_t v : sc) ++hist[v];
  const double total = static_cast<double>(sc.size());
  CHECK((hist[0] + hist[1]) / total == doctest::Approx(1.0 / 64).epsilon(0.1));
  CHECK(hist[132] / total == doctest::Approx(1.0 / 64).epsilon(0.1));
  int mid = 0;
  for (int v = 118; v <= 124; ++v) mid += hist[v];
  CHECK(mid + hist[0] + hist[1] + hist[132] == static_cast<int>(sc.size()));
}

TEST_CASE("MXFP4 host checks: the sampled reference agrees with mxfp4_moe_reference") {
  for (const kf::Mxfp4MoeShape& s : {kf::Mxfp4MoeShape{1, 6, 2, 64, 128, true}, kf::Mxfp4MoeShape{2, 6, 2, 96, 64, false},
                                     kf::Mxfp4MoeShape{1, 6, 2, 32, 64, false}}) {
    CAPTURE(s.key());
    CAPTURE(s.gemm);
    std::mt19937_64 rng(11);
    // T = 20: 40 slots, one routed nowhere.
    const kf::MoeRouting routing{"zipf1", 20, kf::mxfp4_tune_routing(kf::RoutingArchetype::zipf1, 20, 6, 2, 5)};
    const kf::Mxfp4TuneProblem p = kf::make_mxfp4_problem(s, routing, rng);
    const auto slots = kf::mxfp4_checked_slots(p.topk_ids, s.experts, rng);
    CHECK(slots.size() == 39);  // all routed ones
    const kf::Mxfp4CheckReference ref = kf::mxfp4_check_reference(p, slots, 3);
    CHECK_FALSE(ref.sampled);
    const std::vector<double> full = kf::mxfp4_moe_reference(full_problem(p));
    const int64_t n = p.out_cols();
    double worst = 0, scale = 0;
    for (size_t i = 0; i < ref.slots.size(); ++i)
      for (int64_t c = 0; c < n; ++c) {
        worst = std::max(worst, std::fabs(ref.y[i * n + c] - full[ref.slots[i] * n + c]));
        scale = std::max(scale, std::fabs(full[ref.slots[i] * n + c]));
      }
    CHECK(scale > 0);
    CHECK(worst <= 1e-12 * scale);
    // What a correct kernel writes passes; its normalised error is the bf16 rounding.
    kf::Measurement r;
    kf::judge_mxfp4_output(output_of(p, ref), ref, p, r);
    CHECK(r.disposition.empty());
    CHECK(r.max_rel_err > 0);
    CHECK(r.max_rel_err < 4e-3);
  }
}

TEST_CASE("MXFP4 host checks: the slot sample and the verdict on y") {
  std::mt19937_64 rng(3);
  // 120 tokens x top-4 over 32 experts: 478 routed slots, 64 checked.
  const auto ids = kf::mxfp4_tune_routing(kf::RoutingArchetype::zipf2, 120, 32, 4, 9);
  const auto slots = kf::mxfp4_checked_slots(ids, 32, rng);
  REQUIRE(slots.size() == static_cast<size_t>(kf::kMxfp4CheckedSlots));
  CHECK(std::is_sorted(slots.begin(), slots.end()));
  CHECK(std::set<int64_t>(slots.begin(), slots.end()).size() == slots.size());
  for (int64_t sl : slots) CHECK((ids[sl] >= 0 && ids[sl] < 32));
  CHECK(slots.front() == 0);
  CHECK(slots.back() == 479);  // the last slot (slot 476, the last token's first choice, routes nowhere)
  const int32_t top = *std::max_element(ids.begin(), ids.end(), [](int32_t a, int32_t b) {
    return (a >= 32 ? -1 : a) < (b >= 32 ? -1 : b);
  });
  int64_t first_top = -1, last_top = -1;
  for (int64_t sl = 0; sl < static_cast<int64_t>(ids.size()); ++sl)
    if (ids[sl] == top) {
      if (first_top < 0) first_top = sl;
      last_top = sl;
    }
  CHECK(std::binary_search(slots.begin(), slots.end(), first_top));
  CHECK(std::binary_search(slots.begin(), slots.end(), last_top));
  std::mt19937_64 rng2(4);
  CHECK(kf::mxfp4_checked_slots(ids, 32, rng2) != slots);  // the rest drawn at random

  // The verdict, on a problem with more routed slots than are checked.
  const kf::Mxfp4MoeShape s{2, 8, 2, 32, 64, false};
  const kf::MoeRouting routing{"uniform", 70, kf::mxfp4_tune_routing(kf::RoutingArchetype::uniform, 70, 8, 2, 2)};
  const kf::Mxfp4TuneProblem p = kf::make_mxfp4_problem(s, routing, rng);
  const kf::Mxfp4CheckReference ref = kf::mxfp4_check_reference(p, kf::mxfp4_checked_slots(p.topk_ids, 8, rng), 2);
  CHECK(ref.sampled);
  REQUIRE(ref.slots.size() == 64);
  const std::vector<uint16_t> good_rows = output_of(p, ref);
  // A correct kernel writes the unchecked routed rows too.
  std::vector<int64_t> routed;
  for (int64_t sl = 0; sl < p.slots(); ++sl)
    if (p.topk_ids[sl] >= 0 && p.topk_ids[sl] < 8) routed.push_back(sl);
  const kf::Mxfp4CheckReference every = kf::mxfp4_check_reference(p, routed, 2);
  const std::vector<uint16_t> good = output_of(p, every);
  const int64_t n = 32, dropped = 69 * 2, over = 3;  // 3: token 1's last choice is E
  REQUIRE(p.topk_ids[dropped] == -1);
  REQUIRE(p.topk_ids[over] == 8);
  auto verdict = [&](const std::vector<uint16_t>& y) {
    kf::Measurement r;
    kf::judge_mxfp4_output(y, ref, p, r);
    return r;
  };
  CHECK(verdict(good).disposition.empty());
  // Only the checked rows written: the other routed rows read as unwritten.
  CHECK(contains(verdict(good_rows).message, "not fully written"));
  auto y = good;
  y[every.slots.back() * n + 5] = 0x7f80;  // +inf in a routed row, checked or not
  CHECK(contains(verdict(y).message, "not fully written or not finite (column 5)"));
  y = good;
  y[dropped * n + 1] = 0;
  CHECK(contains(verdict(y).message, "slot 138, which is routed nowhere (expert id -1)"));
  y = good;
  y[over * n] = 0;
  CHECK(contains(verdict(y).message, "routed nowhere (expert id 8)"));
  y = good;
  y[(p.slots() + kf::kGuardRows - 1) * n + 31] = 0;
  CHECK(contains(verdict(y).message, "past the last slot"));
  y = good;
  for (int64_t sl : ref.slots)
    for (int64_t c = 0; c < n; ++c)
      y[sl * n + c] = kf::float_to_half_bits(1.05f * kf::half_bits_to_float(good[sl * n + c], true), true);
  kf::Measurement off = verdict(y);
  CHECK(contains(off.message, "above tolerance"));
  CHECK(off.max_rel_err == doctest::Approx(0.05).epsilon(0.05));
  // The checked row of the smallest norm 6% off: within the total, beyond the per-row bound.
  y = good;
  int64_t bad = -1;
  double least = INFINITY;
  for (size_t i = 0; i < ref.slots.size(); ++i) {
    double r2 = 0;
    for (int64_t c = 0; c < n; ++c) r2 += ref.y[i * n + c] * ref.y[i * n + c];
    if (r2 < least) {
      least = r2;
      bad = ref.slots[i];
    }
  }
  for (int64_t c = 0; c < n; ++c)
    y[bad * n + c] = kf::float_to_half_bits(1.06f * kf::half_bits_to_float(good[bad * n + c], true), true);
  off = verdict(y);
  CHECK(off.max_rel_err < kf::kMxfp4Tolerance);
  CHECK(contains(off.message, "slot " + std::to_string(bad) + "'s row off by"));
}

TEST_CASE("MXFP4 device buffers: sized for the largest T and block_m") {
  const kf::PackKernel a = mx_row(kUp120, "bm16_bn96_bk64_w4_s3_ep1"), b = mx_row(kUp120, "bm128_bn96_bk64_w8_s2_ep2");
  const kf::Mxfp4ShapeBuffers s = kf::plan_mxfp4_buffers(kUp120, {{&a, 1024}, {&b, 4096}});
  CHECK(s.max_t == 4096);
  CHECK(s.slots == 16384);
  CHECK(s.x_elems == 4096 * 2880);
  CHECK(s.weight_bytes == 128LL * 5760 * 1440);  // 1.06 GB
  CHECK(s.scale_bytes == 128LL * 90 * 5760);
  CHECK(s.bias_floats == 128 * 5760);
  CHECK(s.y_elems == (16384 + kf::kGuardRows) * 2880);  // the SwiGLU output: N / 2
  CHECK(s.sorted_ids == 16384 + 128 * 127);              // bm128 at T = 4096: every expert padded
  CHECK(s.expert_ids == (16384 + 128 * 15) / 16);        // bm16: up to 15 padding slots per expert
}

}  // TEST_SUITE
