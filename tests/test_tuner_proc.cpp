// The autotune executable in child processes: resuming after kill -9, two processes on
// one DB, SIGINT, and the exit codes for a foreign DB, an unknown arch and no GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <csignal>
#include <filesystem>
#include <thread>

#include "test_tuner_util.h"
#include "winners.h"

namespace {

using namespace kf_tuner_test;
namespace fs = std::filesystem;

// Rows that cost a measurement (not pruned, not a compile error).
const char* kMeasuredRows =
    "SELECT count(*) FROM results WHERE NOT (disposition = 'pruned' OR message LIKE 'did not compile%')";

void check_no_duplicates(const std::string& db) {
  CHECK(scalar(db, "SELECT count(*) FROM results") ==
        scalar(db, "SELECT count(*) FROM (SELECT DISTINCT arch, device, op, shape, m, kernel, cold_l2 FROM results)"));
}

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("autotune: resumes after kill -9, measuring exactly what is missing") {
  TempDir dir("tuner-proc");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  auto args = cli_args(db);
  // 6 generic measurements of the first shape (one committed batch per M), then 5 of the
  // 7 in the first batch of kShape: that batch dies uncommitted.
  args.insert(args.end(), {"--fake-die-after", "11"});
  const Child killed = spawn_autotune(args, dir.path.string(), "killed");
  REQUIRE(killed.wait_status() == 137);
  const int measured_before = static_cast<int>(scalar(db, kMeasuredRows));
  CHECK(measured_before == 6);
  CHECK(scalar(db, "SELECT count(*) FROM results") == 6);
  CHECK(scalar(db, "SELECT count(*) FROM winners") == 1);  // the first shape's, committed with its rows

  kf::FakeMeasurer fm({});
  const InProcess r = run_in_process(options(db), fm);
  CHECK(fm.measurements() == full_run_measurements() - measured_before);
  CHECK(r.stats.skipped == 6);
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
  CHECK(scalar(db, kMeasuredRows) == full_run_measurements());
  check_no_duplicates(db);
  CHECK(scalar(db, "SELECT count(DISTINCT shape) FROM winners") == 4);
}

TEST_CASE("autotune: two processes measuring different Ms of one DB lose no rows") {
  TempDir dir("tuner-proc");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  auto a = cli_args(db, "1,16,128");
  auto b = cli_args(db, "4,64,1024");
  for (auto* v : {&a, &b}) v->insert(v->end(), {"--fake-delay-ms", "3"});
  const Child ca = spawn_autotune(a, dir.path.string(), "a");
  const Child cb = spawn_autotune(b, dir.path.string(), "b");
  const int sa = ca.wait_status(), sb = cb.wait_status();
  INFO(ca.err() << cb.err());
  CHECK(sa == 0);
  CHECK(sb == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
  CHECK(scalar(db, kMeasuredRows) == full_run_measurements());
  check_no_duplicates(db);
  // The last store of each shape saw both processes' rows: winners over all six Ms.
  const std::string shape = "'" + kShape.key() + "'";
  CHECK(scalar(db, "SELECT min(m_lo) FROM winners WHERE shape = " + shape) == 1);
  CHECK(scalar(db, "SELECT max(m_hi) FROM winners WHERE shape = " + shape) == kf::kMaxWinnerM);
  CHECK(scalar(db, "SELECT count(DISTINCT shape) FROM winners") == 4);
  CHECK(contains(ca.out(), "winners on kforge-fake-gpu"));
  // Nothing left for a third run.
  kf::FakeMeasurer fm({});
  run_in_process(options(db), fm);
  CHECK(fm.measurements() == 0);
}

TEST_CASE("autotune: SIGINT finishes the measurement, commits, exits 130 and says how to resume") {
  TempDir dir("tuner-proc");
  const std::string db = dir.sub("kforge.sqlite");
  write_fake_pack(db);
  auto args = cli_args(db);
  args.insert(args.end(), {"--fake-delay-ms", "40"});
  const Child c = spawn_autotune(args, dir.path.string(), "int");
  // Wait for the first committed batch: by then the handler is installed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (scalar(db, "SELECT count(*) FROM results") <= 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(kill(c.pid, SIGINT) == 0);
  CHECK(c.wait_status() == 130);
  CHECK(contains(c.err(), "Run the same command again to resume"));
  const int measured = static_cast<int>(scalar(db, kMeasuredRows));
  CHECK(measured > 0);
  CHECK(measured < full_run_measurements());
  kf::FakeMeasurer fm({});
  run_in_process(options(db), fm);
  CHECK(fm.measurements() == full_run_measurements() - measured);
  CHECK(scalar(db, "SELECT count(*) FROM results") == full_run_rows());
  check_no_duplicates(db);
}

TEST_CASE("autotune: a file that is not this kforge pack is refused and left untouched") {
  TempDir dir("tuner-proc");
  struct Case {
    const char* what;
    std::function<void(const std::string&)> make;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"garbage", [](const std::string& p) { std::ofstream(p) << std::string(4096, 'x'); }, "not a kforge pack"},
      {"foreign SQLite",
       [](const std::string& p) {
         sqlite3* d = nullptr;
         sqlite3_open(p.c_str(), &d);
         sqlite3_exec(d, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr);
         sqlite3_close(d);
       },
       "not a kforge pack"},
      {"future schema",
       [](const std::string& p) {
         sqlite3* d = nullptr;
         sqlite3_open(p.c_str(), &d);
         sqlite3_exec(d, "CREATE TABLE t (x); PRAGMA user_version = 7;", nullptr, nullptr, nullptr);
         sqlite3_close(d);
       },
       "schema version 7"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const std::string sub = dir.sub(std::string(c.what).substr(0, 3));
    fs::create_directories(sub);
    const std::string db = sub + "/kforge.sqlite";
    c.make(db);
    const std::string before = file_text(db);
    auto args = cli_args(db);
    args.erase(std::find(args.begin(), args.end(), "--no-generate"));  // the generating path checks first too
    const Child child = spawn_autotune(args, sub, "run");
    CHECK(child.wait_status() == 2);
    CHECK(contains(child.err(), c.message));
    CHECK(contains(child.err(), db));
    CHECK(file_text(db) == before);
    CHECK(std::distance(fs::directory_iterator(sub), fs::directory_iterator()) == 3);  // db, run.out, run.err
  }
}

TEST_CASE("autotune: unknown --arch is an error; --measurer cuda without a GPU exits 77") {
  TempDir dir("tuner-proc");
  const std::string db = dir.sub("new/kforge.sqlite");
  const Child bad = spawn_autotune({"--arch", "sm_99", "--db", db}, dir.path.string(), "arch");
  CHECK(bad.wait_status() == 2);
  CHECK(contains(bad.err(), "unknown arch 'sm_99'"));
  CHECK(contains(bad.err(), "sm_90a"));
  // Hide every GPU, so the check holds on GPU machines too.
  const Child nogpu = spawn_autotune({"--measurer", "cuda", "--db", db}, dir.path.string(), "nogpu",
                                     {{"CUDA_VISIBLE_DEVICES", ""}});
  CHECK(nogpu.wait_status() == 77);
  CHECK(contains(nogpu.err(), "no GPU"));
  CHECK(!fs::exists(dir.sub("new")));  // nothing created
}

}  // TEST_SUITE
