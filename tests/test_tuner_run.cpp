// autotune in-process on a fake pack with the fake measurer: a row for every candidate
// at every M with its disposition, provenance on every row, the stored winners equal to
// what the stored results say, resuming, time budget, warm timing, and generation of
// what the pack lacks (clang, gfx1151) including a DB under another file name.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "results_db.h"
#include "test_tuner_util.h"

namespace {

using namespace kf_tuner_test;
namespace fs = std::filesystem;

std::string q(const std::string& s) { return "'" + s + "'"; }

std::string disposition(const std::string& db, const std::string& kernel, int64_t m) {
  return text_of(db, "SELECT disposition FROM results WHERE kernel = " + q(kernel) + " AND m = " + std::to_string(m) +
                         " AND shape = " + q(kShape.key()));
}

// The winners stored for kShape equal compute_winners over the stored passed rows, and
// tile [1, max].
void check_winners_consistent(const std::string& db, const std::string& device, bool cold = true) {
  kf::ResultsDb r = kf::ResultsDb::open(db);
  const kf::Provenance p{"sm_90a", device, "", "", ""};
  const kf::TuneKey key{"w4a16_linear", kShape.key(), cold, ""};
  const auto stored = r.winners(p, key);
  const auto expect = kf::compute_winners(r.passed(p, key));
  REQUIRE(stored.size() == expect.size());
  REQUIRE(!stored.empty());
  for (size_t i = 0; i < stored.size(); ++i) {
    CHECK(stored[i].kernel == expect[i].kernel);
    CHECK(stored[i].m_lo == expect[i].m_lo);
    CHECK(stored[i].m_hi == expect[i].m_hi);
    CHECK(stored[i].m_tuned == expect[i].m_tuned);
  }
  CHECK(stored.front().m_lo == 1);
  CHECK(stored.back().m_hi == kf::kMaxWinnerM);
}

// A fake pack tuned in-process with decode_bm1 at 10 + M us, prefill_bm64 at 40 flat and
// every other kernel at 1000: decode wins small M, prefill large.
FakePack tune_decode_then_prefill(const std::string& db) {
  const FakePack f = write_fake_pack(db);
  kf::FakeOptions fo;
  fo.time_us = [&](const kf::PackKernel& k, const kf::LinearShape&, int64_t m, bool) {
    if (k.name == f.decode_bm1) return 10.0 + m;
    if (k.name == f.prefill_bm64) return 40.0;
    return 1000.0;
  };
  kf::FakeMeasurer fm(fo);
  run_in_process(options(db), fm);
  return f;
}

// autotune generating gfx1151 kernels with clang into DIR/tuned/kforge.sqlite: a decode
// and a prefill config of one shape plus the generic kernels, at M 1 and 256.
kf::AutotuneOptions generating_options(const TempDir& dir) {
  kf::AutotuneOptions o = options(dir.sub("tuned/kforge.sqlite"));
  o.generate = true;
  o.arch = "gfx1151";
  o.ms = {1, 256};
  o.jobs = 2;
  o.cache_dir = dir.sub("cache");
  o.filter = "n256_k256_.*(bm1_bn64_bk32_w4_sk1|bm16_bn64_bk32_w4_sk1_s2)|generic";
  return o;
}

// The fake measurer's options for those runs.
kf::FakeOptions gfx1151_measurer() {
  kf::FakeOptions fo;
  fo.arch = "gfx1151";
  return fo;
}

// A gfx1151 tune (generating_options) over a copy of the templates, which a test then
// changes: the run's options and how many kernels its first run generated.
struct OwnTemplatesTune {
  kf::AutotuneOptions options;
  int generated;
};
// A change to the decode body that changes the code of the kernels including it (the
// decode and generic kinds), and the query of the decode kernel's build key.
const char* const kDecodeCodeChange = "__attribute__((device, used)) int kf_test_changed_decode = 1;\n";
const char* const kDecodeBuildKey = "SELECT source_hash FROM kernels WHERE kind = 'decode' AND arch = 'gfx1151'";

OwnTemplatesTune tune_with_own_templates(const TempDir& dir) {
  OwnTemplatesTune t{generating_options(dir), 0};
  t.options.templates_dir = dir.sub("templates");
  fs::copy(KF_TEMPLATE_DIR, t.options.templates_dir, fs::copy_options::recursive);
  kf::FakeMeasurer first(gfx1151_measurer());
  t.generated = static_cast<int>(run_in_process(t.options, first).stats.generated);
  return t;
}

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("autotune: every candidate's disposition at every M, with provenance") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  const FakePack f = write_fake_pack(db);
  kf::FakeOptions fo;
  fo.incorrect = "bm2_bn64";
  fo.failed = "prefill.*bm32_bn64";
  kf::FakeMeasurer fm(fo);
  const InProcess r = run_in_process(options(db), fm);
  CHECK(fm.measurements() == full_run_measurements());
  CHECK(r.stats.measured == full_run_measurements());
  CHECK(r.stats.stored == full_run_rows());
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE shape = " + q(kShape.key())) == 9 * kMs.size());

  for (int64_t m : kMs) {
    CAPTURE(m);
    CHECK(disposition(db, f.decode_bm1, m) == (m <= 64 ? "passed" : "pruned"));
    CHECK(disposition(db, f.decode_bm2_sk2, m) == (m <= 64 ? "incorrect" : "pruned"));
    CHECK(disposition(db, f.prefill_bm32, m) == "failed");
    CHECK(disposition(db, f.prefill_bm64, m) == "passed");
    CHECK(disposition(db, f.spilled, m) == "pruned");
    CHECK(disposition(db, f.broken, m) == "failed");
    CHECK(disposition(db, f.generic, m) == "passed");
  }
  CHECK(scalar(db, "SELECT max_rel_err FROM results WHERE disposition = 'incorrect' LIMIT 1") == 0.5);
  CHECK(contains(text_of(db, "SELECT message FROM results WHERE kernel = " + q(f.decode_bm1) + " AND m = 128"),
                 "M <= 64"));
  CHECK(contains(text_of(db, "SELECT message FROM results WHERE kernel = " + q(f.spilled) + " LIMIT 1"), "spills"));
  CHECK(contains(text_of(db, "SELECT message FROM results WHERE kernel = " + q(f.prefill_bm32) + " LIMIT 1"),
                 "injected"));
  // Passed rows carry times and reps; the others none.
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'passed' AND (median_us <= 0 OR min_us <= 0"
                   " OR min_us > median_us OR reps != 7)") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition != 'passed' AND (median_us IS NOT NULL"
                   " OR reps != 0)") == 0);
  // Provenance on every row.
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE arch = 'sm_90a' AND device = 'kforge-fake-gpu' AND"
                   " driver = '0' AND runtime = 'kforge-fake-measurer 1' AND compiler = 'fake nvcc 13.0' AND"
                   " kforge_version = '" KF_VERSION "' AND cold_l2 = 1 AND measured_at LIKE '20%T%Z'") ==
        full_run_rows());
  check_winners_consistent(db, "kforge-fake-gpu");
  CHECK(scalar(db, "SELECT count(DISTINCT shape) FROM winners") == 4);
  CHECK(contains(r.out, "winners on kforge-fake-gpu"));
  CHECK(contains(r.out, kShape.key()));
}

TEST_CASE("autotune: winners follow the measured times (crossover between tuned Ms)") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  // Decode wins M 1..16, prefill from 64 on; both timed at 16 and 64: 26 vs 40 at 16,
  // 74 vs 40 at 64 -> crossover at 16 + 48 * 14 / 48 = 30.
  const FakePack f = tune_decode_then_prefill(db);
  kf::ResultsDb r = kf::ResultsDb::open(db);
  const auto w = r.winners({"sm_90a", "kforge-fake-gpu", "", "", ""}, {"w4a16_linear", kShape.key(), true, ""});
  REQUIRE(w.size() == 2);
  CHECK(w[0].kernel == f.decode_bm1);
  CHECK(w[0].m_lo == 1);
  CHECK(w[0].m_hi == 30);
  CHECK(w[0].m_tuned == 1);
  CHECK(w[0].median_us == 11);
  CHECK(w[1].kernel == f.prefill_bm64);
  CHECK(w[1].m_lo == 31);
  CHECK(w[1].m_tuned == 64);
  CHECK(w[1].m_hi == kf::kMaxWinnerM);
}

TEST_CASE("autotune: only a kernel whose code object the DB holds can win; --recompute-winners") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  const FakePack f = tune_decode_then_prefill(db);
  // The fastest kernel at small M loses its code object (as tools/slim_db.py does to
  // non-winners, or a kernel that left the candidate space).
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, ("UPDATE kernels SET code_object = NULL, status = 'pruned:not_a_winner' WHERE name = " + q(f.decode_bm1)).c_str(), nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(h);
  kf::ResultsDb r = kf::ResultsDb::open(db);
  const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
  const kf::TuneKey key{"w4a16_linear", kShape.key(), true, ""};
  CHECK(r.winners(p, key).front().kernel == f.decode_bm1);  // stored before: stale now
  // The command line recomputes them (no GPU, nothing measured) and says so.
  const Child c = spawn_autotune({"--db", db, "--recompute-winners"}, dir.path.string(), "rewin");
  INFO(c.err());
  REQUIRE(c.wait_status() == 0);
  CHECK(c.out().find("recomputed the winners of") != std::string::npos);
  const auto w = r.winners(p, key);
  REQUIRE(w.size() == 1);
  CHECK(w[0].kernel == f.prefill_bm64);
  CHECK(w[0].m_lo == 1);
  CHECK(w[0].m_hi == kf::kMaxWinnerM);
  // Its measurements stay, as history; a store() of new rows keeps it out as well.
  CHECK(text_of(db, "SELECT count(*) FROM results WHERE disposition = 'passed' AND kernel = " + q(f.decode_bm1)) !=
        "0");
  kf::ResultRow row;
  row.kernel = f.prefill_bm64;
  row.disposition = "passed";
  row.m = 3;
  row.median_us = row.min_us = 40;
  row.reps = 50;
  const auto after = r.store(p, key, {row});
  REQUIRE(after.size() == 1);
  CHECK(after[0].kernel == f.prefill_bm64);
  CHECK(r.recompute_winners().keys >= 1);
}

TEST_CASE("--recompute-winners keeps winners that can run but lost their own measurements, and says so") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  const FakePack f = tune_decode_then_prefill(db);
  const kf::Provenance p{"sm_90a", "kforge-fake-gpu", "", "", ""};
  const kf::TuneKey key{"w4a16_linear", kShape.key(), true, ""};
  const auto before = kf::ResultsDb::open(db).winners(p, key);
  REQUIRE(before.size() == 2);
  REQUIRE(before[0].kernel == f.decode_bm1);
  // A rebuild of the decode kernel dropped its measurements; it kept its code object (a
  // winner's), as the shipped DB's earlier devices' winners do.
  kf_test::sql(db, "DELETE FROM results WHERE kernel = " + q(f.decode_bm1));
  const Child c = spawn_autotune({"--db", db, "--recompute-winners"}, dir.path.string(), "rewin");
  INFO(c.err());
  REQUIRE(c.wait_status() == 0);
  CHECK(c.out().find("kept the winners of 1 keys as they were") != std::string::npos);
  const auto kept = kf::ResultsDb::open(db).winners(p, key);
  REQUIRE(kept.size() == before.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    CHECK(kept[i].kernel == before[i].kernel);
    CHECK(kept[i].m_lo == before[i].m_lo);
    CHECK(kept[i].m_hi == before[i].m_hi);
  }
  // Once that winner cannot run either, the key is taken again from what is left.
  kf_test::sql(db, "UPDATE kernels SET code_object = NULL, status = 'pruned:not_a_winner' WHERE name = " +
                       q(f.decode_bm1));
  const kf::ResultsDb::Recomputed done = kf::ResultsDb::open(db).recompute_winners();
  CHECK(done.kept == 0);
  CHECK(done.keys >= 1);
  const auto after = kf::ResultsDb::open(db).winners(p, key);
  REQUIRE(after.size() == 1);
  CHECK(after[0].kernel == f.prefill_bm64);
}

TEST_CASE("autotune: a rerun skips what is stored; --max-candidates; --warm is stored apart") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  kf::AutotuneOptions o = options(db);
  o.max_candidates = 1;
  kf::FakeMeasurer a({});
  run_in_process(o, a);
  // One own kernel (the first by name: decode bm16, M <= 64 only) + generic on kShape,
  // generic on the three other shapes.
  CHECK(a.measurements() == 4 * (1 + 1 + 3) + 2 * (1 + 3));
  kf::FakeMeasurer b({});
  const auto second = run_in_process(options(db), b);
  CHECK(b.measurements() == full_run_measurements() - a.measurements());
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
  kf::FakeMeasurer c({});
  CHECK(run_in_process(options(db), c).stats.measured == 0);
  CHECK(c.measurements() == 0);
  CHECK(c.shapes_begun() == 0);  // nothing to do: no device buffers either

  o = options(db);
  o.warm = true;
  kf::FakeMeasurer w({});
  run_in_process(o, w);
  CHECK(w.measurements() == full_run_measurements());
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE cold_l2 = 0") == full_run_rows());
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE cold_l2 = 0") > 0);
  check_winners_consistent(db, "kforge-fake-gpu", false);
}

TEST_CASE("autotune: --plan lists what a run would measure and measures nothing") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  kf::AutotuneOptions o = options(db);
  o.plan_only = true;
  kf::FakeMeasurer a({});
  const auto plan = run_in_process(o, a);
  CHECK(a.measurements() == 0);
  CHECK(a.shapes_begun() == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results") == 0);
  CHECK(plan.stats.remaining == full_run_measurements());
  CHECK(kf_test::contains(plan.out, std::to_string(full_run_measurements()) + " measurements to make"));
  CHECK(kf_test::contains(plan.out, "w4a16_linear " + kShape.key() + " decode: M=1 x"));

  // After a run at two Ms, the plan for three lists only the third: the holes a partial
  // retune leaves (bench/NOTES.md linear v43c).
  o = options(db);
  o.ms = {1, 4};
  kf::FakeMeasurer b({});
  run_in_process(o, b);
  o.ms = {1, 4, 16};
  o.plan_only = true;
  kf::FakeMeasurer c({});
  const auto holes = run_in_process(o, c);
  CHECK(c.measurements() == 0);
  CHECK(holes.stats.remaining > 0);
  CHECK(kf_test::contains(holes.out, "M=16 x"));
  CHECK_FALSE(kf_test::contains(holes.out, "M=1 x"));
  CHECK_FALSE(kf_test::contains(holes.out, "M=4 x"));
}

TEST_CASE("autotune: the time budget stops between measurements; a rerun finishes") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  kf::AutotuneOptions o = options(db);
  o.time_budget_s = 0.15;
  kf::FakeOptions fo;
  fo.delay_ms = 20;
  kf::FakeMeasurer slow(fo);
  const auto first = run_in_process(o, slow);
  CHECK(first.stats.out_of_time);
  CHECK(first.stats.remaining == full_run_measurements() - slow.measurements());
  CHECK(first.stats.remaining > 0);
  CHECK(contains(first.err, "Run the same command again to resume"));
  const int stored_measured = static_cast<int>(scalar(
      db, "SELECT count(*) FROM results WHERE NOT (disposition = 'pruned' OR message LIKE 'did not compile%')"));
  CHECK(stored_measured == slow.measurements());  // a stop commits what was measured
  kf::FakeMeasurer rest({});
  run_in_process(options(db), rest);
  CHECK(rest.measurements() == full_run_measurements() - slow.measurements());
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
}

TEST_CASE("autotune: bad input is refused before measuring") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  kf::FakeMeasurer fm({});
  auto err = [&](kf::AutotuneOptions o) { return kf_test::error_of([&] { run_in_process(o, fm); }); };
  kf::AutotuneOptions o = options(db);
  o.ops = {"moe"};
  CHECK(contains(err(o), "unknown op 'moe'"));
  o = options(db);
  o.ms = {0};
  CHECK(contains(err(o), "--m value 0"));
  o = options(db);
  o.arch = "gfx1151";  // the fake device is sm_90a
  CHECK(contains(err(o), "does not match"));
  o = options(db);
  o.filter = "(";
  CHECK(contains(err(o), "bad --filter"));
  o = options(dir.sub("absent.sqlite"));
  CHECK(contains(err(o), "no pack at"));
  CHECK(!fs::exists(dir.sub("absent.sqlite")));
  CHECK(fm.measurements() == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results") == 0);
}

TEST_CASE("autotune: no L2 flush kernel in the pack: cold timing refused, warm allowed") {
  TempDir dir("tuner");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db, false);
  kf::FakeMeasurer fm({});
  CHECK(contains(kf_test::error_of([&] { run_in_process(options(db), fm); }), "kf_util_stream_read"));
  kf::AutotuneOptions o = options(db);
  o.warm = true;
  CHECK(run_in_process(o, fm).stats.passed > 0);
}

TEST_CASE("autotune: generates what the pack lacks (gfx1151, clang), also into a DB of another name") {
  TempDir dir("tuner");
  kf::AutotuneOptions o = generating_options(dir);
  const kf::FakeOptions fo = gfx1151_measurer();
  kf::FakeMeasurer fm(fo);
  const auto r = run_in_process(o, fm);
  CHECK(r.stats.generated == 4);  // decode, prefill, generic, util
  const std::string db = o.db;
  CHECK(scalar(db, "SELECT count(*) FROM kernels WHERE arch = 'gfx1151' AND status = 'ok'") == 4);
  CHECK(fs::exists(dir.sub("tuned/src/gfx1151")));
  // decode + prefill + generic at M 1; prefill + generic at 256; generic on 3 more shapes.
  CHECK(fm.measurements() == 3 + 2 + 3 * 2);
  kf::FakeMeasurer again(fo);
  CHECK(run_in_process(o, again).stats.generated == 0);
  // Without the compiler a complete DB is still tuned, with a warning.
  kf::AutotuneOptions no_clang = o;
  no_clang.tools.clang = "/nonexistent/clang++-19";
  kf::FakeMeasurer bare(fo);
  const auto nc = run_in_process(no_clang, bare);
  CHECK(nc.stats.generated == 0);
  CHECK(contains(nc.err, "cannot tell whether the DB's kernels are built from these templates"));
  CHECK(contains(nc.err, "/nonexistent/clang++-19"));

  // A shipped DB keeps code objects of winners only (tools/slim_db.py): a kernel slimmed
  // out is built again, and what it measured before stays measured.
  kf_test::sql(db, "UPDATE kernels SET code_object = NULL, status = 'pruned:not_a_winner' WHERE kind = 'decode'");
  kf::FakeMeasurer slimmed(fo);
  CHECK(run_in_process(o, slimmed).stats.generated == 1);
  CHECK(scalar(db, "SELECT count(*) FROM kernels WHERE arch = 'gfx1151' AND status = 'ok'") == 4);
  CHECK(slimmed.measurements() == 0);

  o.db = dir.sub("tuned/h100-run.sqlite");
  kf::FakeMeasurer other(fo);
  const auto r2 = run_in_process(o, other);
  CHECK(r2.stats.generated == 4);
  CHECK(scalar(o.db, "SELECT count(*) FROM kernels WHERE arch = 'gfx1151'") == 4);
  CHECK(scalar(o.db, "SELECT count(*) FROM results") == scalar(db, "SELECT count(*) FROM results"));
  CHECK(fs::exists(dir.sub("tuned/h100-run.genkernels/kforge.sqlite")));
}

TEST_CASE("autotune: kernels the templates no longer generate are removed, and no winner comes from them") {
  TempDir dir("tuner");
  kf::AutotuneOptions o = generating_options(dir);
  const kf::FakeOptions fo = gfx1151_measurer();
  kf::FakeMeasurer first(fo);
  CHECK(run_in_process(o, first).stats.dropped == 0);
  const std::string db = o.db;

  // A DB tuned with older templates: a decode config the candidate space has since
  // retired (split-K 7) still holds a code object and the fastest time at M = 1, so it
  // wins there; and one of a shape outside this selection.
  const std::string decode = text_of(db, "SELECT name FROM kernels WHERE kind = 'decode' AND arch = 'gfx1151'");
  REQUIRE(contains(decode, "_sk1_"));
  std::string retired = decode;
  retired.replace(retired.find("_sk1_"), 5, "_sk7_");
  const std::string elsewhere = "w4a16_linear_decode_n999_k256_g128_bf16_sym_bm1_bn64_bk32_w4_sk1_s1";
  for (const auto& [name, shape] : {std::pair{retired, std::string()}, std::pair{elsewhere, std::string("n999_k256_g128_bf16_sym")}}) {
    const std::string shape_sql = shape.empty() ? "shape" : q(shape);
    kf_test::sql(db, "INSERT INTO kernels (name, arch, op, kind, shape, config, code_object, vgprs_or_regs, sgprs, agprs,"
                     " lds_bytes, scratch_bytes, spills, occupancy, threads, mma_count, status, compiler, source_hash, log)"
                     " SELECT " + q(name) + ", arch, op, kind, " + shape_sql + ", config, code_object, vgprs_or_regs,"
                     " sgprs, agprs, lds_bytes, scratch_bytes, spills, occupancy, threads, mma_count, status, compiler,"
                     " source_hash, log FROM kernels WHERE name = " + q(decode) + " AND arch = 'gfx1151'");
  }
  kf_test::sql(db, "INSERT INTO results (arch, device, op, shape, cold_l2, routing, m, kernel, disposition, median_us,"
                   " min_us, reps, max_rel_err, message, driver, runtime, compiler, kforge_version)"
                   " SELECT arch, device, op, shape, cold_l2, routing, m, " + q(retired) + ", disposition, 0.5, 0.5,"
                   " reps, max_rel_err, message, driver, runtime, compiler, kforge_version FROM results"
                   " WHERE kernel = " + q(decode) + " AND m = 1");
  CHECK(kf::ResultsDb::open(db).recompute_winners().keys > 0);
  REQUIRE(scalar(db, "SELECT count(*) FROM winners WHERE kernel = " + q(retired)) == 1);

  // Without generation the DB is tuned as it is.
  kf::AutotuneOptions as_is = o;
  as_is.generate = false;
  kf::FakeMeasurer bare(fo);
  CHECK(run_in_process(as_is, bare).stats.dropped == 0);
  CHECK(scalar(db, "SELECT count(*) FROM kernels WHERE name = " + q(retired)) == 1);

  kf::FakeMeasurer again(fo);
  const auto r = run_in_process(o, again);
  CHECK(r.stats.dropped == 1);
  CHECK(contains(r.err, "removed 1 kernel of this selection that the templates no longer generate"));
  CHECK(scalar(db, "SELECT count(*) FROM kernels WHERE name = " + q(retired)) == 0);
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE kernel = " + q(retired)) == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = " + q(retired)) == 1);  // history
  CHECK(text_of(db, "SELECT kernel FROM winners WHERE op = 'w4a16_linear' AND shape = " + q(kShape.key()) +
                        " AND m_lo = 1 AND arch = 'gfx1151'") == decode);
  CHECK(scalar(db, "SELECT count(*) FROM kernels WHERE name = " + q(elsewhere)) == 1);  // not this selection's
  CHECK(again.measurements() == 0);
  kf::FakeMeasurer settled(fo);
  CHECK(run_in_process(o, settled).stats.dropped == 0);
}

TEST_CASE("autotune: --plan --no-generate leaves the DB as it is; --plan alone rebuilds as a run does") {
  TempDir dir("tuner");
  const kf::AutotuneOptions o = tune_with_own_templates(dir).options;
  const std::string templates = o.templates_dir;
  const kf::FakeOptions fo = gfx1151_measurer();
  const int64_t rows = scalar(o.db, "SELECT count(*) FROM results");
  REQUIRE(rows > 0);
  // A code change to the decode body: the decode and generic kernels' measurements no
  // longer describe what the templates build.
  std::ofstream(templates + "/w4a16_linear/decode.h", std::ios::app) << kDecodeCodeChange;
  const std::string hash_before = text_of(o.db, kDecodeBuildKey);
  const int64_t changed_rows = scalar(o.db, "SELECT count(*) FROM results WHERE kernel IN (SELECT name FROM kernels"
                                            " WHERE kind IN ('decode', 'generic') AND arch = 'gfx1151')");
  REQUIRE(changed_rows > 0);

  kf::AutotuneOptions look = o;
  look.plan_only = true;
  look.generate = false;
  kf::FakeMeasurer none(fo);
  const auto quiet = run_in_process(look, none);
  CHECK(quiet.stats.generated == 0);
  CHECK(none.measurements() == 0);
  CHECK(scalar(o.db, "SELECT count(*) FROM results") == rows);
  CHECK(text_of(o.db, kDecodeBuildKey) == hash_before);
  CHECK(quiet.stats.remaining == 0);  // the stored rows still count as measured

  look.generate = true;
  kf::FakeMeasurer none_again(fo);
  const auto rebuilt = run_in_process(look, none_again);
  CHECK(none_again.measurements() == 0);
  CHECK(rebuilt.stats.generated == 2);
  CHECK(text_of(o.db, kDecodeBuildKey) != hash_before);
  // Every row of the rebuilt kernels goes; the plan lists what must be measured again
  // (decode at M 1, generic at M 1 and 256 on the four shapes).
  CHECK(scalar(o.db, "SELECT count(*) FROM results") == rows - changed_rows);
  CHECK(rebuilt.stats.remaining == 1 + 4 * 2);
}

TEST_CASE("autotune: a template change rebuilds the kernels that include it, and measures again those whose code changed") {
  TempDir dir("tuner");
  const OwnTemplatesTune tuned = tune_with_own_templates(dir);
  CHECK(tuned.generated == 4);
  const kf::AutotuneOptions o = tuned.options;
  const std::string templates = o.templates_dir;
  const kf::FakeOptions fo = gfx1151_measurer();
  kf::AutotuneOptions side = o;
  side.db = dir.sub("tuned/other.sqlite");  // generated beside, then imported
  kf::FakeMeasurer side_first(fo);
  CHECK(run_in_process(side, side_first).stats.generated == 4);

  // The decode body changes: the decode and generic kernels include it, the prefill
  // kernel and the utility kernel do not. First a comment (rebuilt to the same code
  // objects: the measurements stand), then code (the kernels' objects gain a variable).
  for (const std::string change : {"// changed\n", kDecodeCodeChange}) {
    const bool same_code = change[0] == '/';
    std::ofstream(templates + "/w4a16_linear/decode.h", std::ios::app) << change;
    for (const auto& db : {o.db, side.db}) {
      INFO(db << ", " << (same_code ? std::string("a comment") : std::string("code")));
      kf::AutotuneOptions a = o;
      a.db = db;
      const std::string before = text_of(db, kDecodeBuildKey);
      kf::FakeMeasurer again(fo);
      const auto r = run_in_process(a, again);
      CHECK(r.stats.generated == 2);
      CHECK(text_of(db, kDecodeBuildKey) != before);
      // Changed code: decode at M 1, generic at M 1 and 256 on the four shapes measured again.
      CHECK(again.measurements() == (same_code ? 0 : 1 + 4 * 2));
      kf::FakeMeasurer settled(fo);
      CHECK(run_in_process(a, settled).stats.generated == 0);
      CHECK(settled.measurements() == 0);
    }
  }
}

}  // TEST_SUITE

TEST_SUITE("tuner") {

TEST_CASE("autotune: close contenders are timed again, and a lucky first timing does not win") {
  // decode_bm1 times 10.0 us the first time and 10.6 after; prefill_bm64 10.2 every time;
  // everything else 1000. Within 3%, both are close contenders at every M.
  auto tune = [](const std::string& db, int rounds) {
    const FakePack f = write_fake_pack(db);
    auto calls = std::make_shared<std::map<std::pair<std::string, int64_t>, int>>();
    kf::FakeOptions fo;
    fo.time_us = [f, calls](const kf::PackKernel& k, const kf::LinearShape&, int64_t m, bool) {
      const int n = (*calls)[{k.name, m}]++;
      if (k.name == f.decode_bm1) return n == 0 ? 10.0 : 10.6;
      if (k.name == f.prefill_bm64) return 10.2;
      return 1000.0;
    };
    kf::FakeMeasurer fm(fo);
    kf::AutotuneOptions o = options(db);
    o.ms = {16, 64};
    o.confirm_rounds = rounds;
    o.confirm_within = 0.03;
    const InProcess r = run_in_process(o, fm);
    return std::make_pair(f, r);
  };
  auto winner_at = [](const std::string& db, int64_t m) {
    return text_of(db, "SELECT kernel FROM winners WHERE shape = '" + kShape.key() + "' AND m_lo <= " +
                           std::to_string(m) + " AND m_hi >= " + std::to_string(m));
  };
  TempDir dir("tuner-confirm");

  // Without re-timing the lucky first timing wins.
  const std::string plain = dir.sub("plain.sqlite");
  const auto [f0, r0] = tune(plain, 0);
  CHECK(r0.stats.retimed == 0);
  CHECK(winner_at(plain, 16) == f0.decode_bm1);

  // With two more rounds each contender stores the median of three timings, its reps
  // summed; the others keep one timing.
  const std::string db = dir.sub("confirmed.sqlite");
  const auto [f, r] = tune(db, 2);
  CHECK(r.stats.retimed == 2 * 2 * 2);  // rounds x contenders x Ms
  CHECK(contains(r.out, "8 extra timings of close contenders"));
  for (int64_t m : {16, 64}) {
    INFO("M " << m);
    CHECK(winner_at(db, m) == f.prefill_bm64);
    const std::string at = " AND m = " + std::to_string(m) + " AND shape = '" + kShape.key() + "'";
    CHECK(scalar(db, "SELECT median_us FROM results WHERE kernel = '" + f.decode_bm1 + "'" + at) == doctest::Approx(10.6));
    // The least of the minima: the lucky first timing's (the fake's minimum is 0.98 of its median).
    CHECK(scalar(db, "SELECT min_us FROM results WHERE kernel = '" + f.decode_bm1 + "'" + at) == doctest::Approx(0.98 * 10.0));
    CHECK(scalar(db, "SELECT reps FROM results WHERE kernel = '" + f.decode_bm1 + "'" + at) == 21);
    CHECK(scalar(db, "SELECT reps FROM results WHERE kernel = '" + f.prefill_bm64 + "'" + at) == 21);
    CHECK(scalar(db, "SELECT reps FROM results WHERE kernel = '" + f.prefill_bm16 + "'" + at) == 7);
  }
}

TEST_CASE("autotune: --retime-before times again what was measured before it, and a rerun resumes") {
  TempDir dir("tuner-retime");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  kf::FakeMeasurer first({});
  run_in_process(options(db), first);
  REQUIRE(first.measurements() == full_run_measurements());
  // Half the shape's rows as if from an earlier run.
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, "UPDATE results SET measured_at = '2026-01-01T00:00:00Z' WHERE m <= 4", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  sqlite3_close(h);
  const double old_rows = scalar(db, "SELECT count(*) FROM results WHERE measured_at < '2026-06-01T00:00:00Z'");
  REQUIRE(old_rows > 0);
  kf::AutotuneOptions o = options(db);
  o.retime_before = "2026-06-01T00:00:00Z";
  // The plan (and the progress bar's count) counts the old rows as to do.
  o.plan_only = true;
  kf::FakeMeasurer planned({});
  CHECK(run_in_process(o, planned).stats.remaining == full_run_measurements({1, 4}));
  CHECK(planned.measurements() == 0);
  o.plan_only = false;
  kf::FakeMeasurer again({});
  const InProcess r = run_in_process(o, again);
  CHECK(again.measurements() == full_run_measurements({1, 4}));  // exactly the old rows' measurements
  CHECK(r.stats.skipped == scalar(db, "SELECT count(*) FROM results WHERE m > 4 AND disposition != 'pruned'"));
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE measured_at < '2026-06-01T00:00:00Z'") == 0);  // replaced
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
  // The same time again: everything is from after it now, so nothing is redone.
  kf::FakeMeasurer resumed({});
  CHECK(run_in_process(o, resumed).stats.measured == 0);
  CHECK(resumed.measurements() == 0);
  check_winners_consistent(db, "kforge-fake-gpu", true);
  // Not a time: refused before measuring, naming the value.
  o.retime_before = "yesterday";
  kf::FakeMeasurer bad({});
  CHECK_THROWS_WITH_AS(run_in_process(o, bad), doctest::Contains("--retime-before 'yesterday'"), kf::Error);
  CHECK(bad.measurements() == 0);
}

TEST_CASE("autotune: --confirm-rounds and --confirm-within are checked") {
  TempDir dir("tuner-confirm-bad");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  kf::FakeMeasurer fm(kf::FakeOptions{});
  kf::AutotuneOptions o = options(db);
  o.confirm_rounds = -1;
  CHECK_THROWS_WITH_AS(run_in_process(o, fm), doctest::Contains("--confirm-rounds"), kf::Error);
  o.confirm_rounds = 2;
  o.confirm_within = 1.5;
  CHECK_THROWS_WITH_AS(run_in_process(o, fm), doctest::Contains("--confirm-within"), kf::Error);
  CHECK(fm.measurements() == 0);
}

}  // TEST_SUITE
