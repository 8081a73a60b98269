// autotune's HIP measurer: its pure parts (gcnArchName -> kforge arch, the shared
// verdicts and flush launch), exit 77 without an AMD GPU, and end to end on a CPU
// stand-in for libamdhip64 (tuner/testing/fake_libamdhip64.cpp, the twin of
// fake_libcuda.cpp): verification, each kind of incorrect output, a refused launch, a
// fault and the reset after it, cold and warm timing.
#include <doctest/doctest.h>

#include <map>

#include "hip_measurer.h"
#include "linear_reference.h"
#include "measure_common.h"
#include "test_tuner_util.h"

namespace {

using namespace kf_tuner_test;
namespace fs = std::filesystem;

const std::string kHipArch = "gfx942";

kf::PackKernel hip_row(const std::string& kind, const std::string& config, double us, const std::string& behave) {
  kf::PackKernel k = row(kShape, kind, config);
  k.arch = kHipArch;
  k.threads = kf::parse_linear_config(kind, config).warps * 64;  // wave64
  k.compiler = "fake clang 19";
  const std::string text = "FAKEHSACO name=" + k.name + " us=" + std::to_string(us) + " behave=" + behave;
  k.code_object.assign(text.begin(), text.end());
  k.code_object.push_back(0);
  return k;
}

std::map<std::string, std::string> write_hip_pack(const std::string& path) {
  struct Spec {
    const char *role, *kind, *config;
    double us;
    const char* behave;
  };
  const std::vector<Spec> specs = {
      {"decode", "decode", "bm1_bn64_bk32_w4_sk1_s1", 10, "ok"},
      {"splitk", "decode", "bm2_bn64_bk64_w4_sk2_s1", 8, "ok"},
      {"wrong", "decode", "bm16_bn64_bk32_w8_sk1_s1", 1, "wrong"},
      {"counters", "decode", "bm4_bn64_bk32_w4_sk4_s1", 1, "counters"},
      {"nan", "decode", "bm8_bn64_bk32_w4_sk1_s1", 1, "nan"},
      {"prefill", "prefill", "bm16_bn64_bk32_w4_sk1_s2", 20, "ok"},
      {"overrun", "prefill", "bm32_bn64_bk32_w4_sk1_s1", 1, "overrun"},
      {"fault", "prefill", "bm64_bn64_bk64_w8_sk1_s2", 1, "fault"},
      {"refuse", "prefill", "bm128_bn64_bk32_w4_sk1_s1", 1, "refuse"},
  };
  std::map<std::string, std::string> by_role;
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  for (const auto& s : specs) {
    const kf::PackKernel k = hip_row(s.kind, s.config, s.us, s.behave);
    pack.put_kernel(k);
    by_role[s.role] = k.name;
  }
  const kf::Candidate c = kf::make_linear_generic_candidate(true, false, kf::arch_info(kHipArch));
  kf::PackKernel g = hip_row("generic", c.config, 30, "ok");
  g.name = c.name;
  g.shape = c.shape;
  g.threads = c.threads;
  const std::string text = "FAKEHSACO name=" + g.name + " us=30 behave=ok";
  g.code_object.assign(text.begin(), text.end() + 1);
  pack.put_kernel(g);
  by_role["generic"] = g.name;
  kf::PackKernel u = util_row();
  u.arch = kHipArch;
  const std::string flush = "FAKEHSACO name=kf_util_stream_read us=100 behave=flush";
  u.code_object.assign(flush.begin(), flush.end() + 1);
  pack.put_kernel(u);
  pack.commit();
  return by_role;
}

std::vector<std::string> hip_args(const std::string& db, const std::string& ms) {
  return {"--measurer", "hip", "--config", kTinyConfig, "--db", db, "--no-generate", "--m", ms, "--reps", "5",
          "--seed", "7", "--jobs", "2", "-q"};
}

// Hides every GPU from CUDA and HIP (an invalid HIP index ends the visible list), so
// the no-GPU checks hold on GPU machines too.
const std::vector<std::pair<std::string, std::string>> kNoGpuEnv = {
    {"CUDA_VISIBLE_DEVICES", ""}, {"HIP_VISIBLE_DEVICES", "-1"}, {"ROCR_VISIBLE_DEVICES", "-1"}};

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("hip measurer: gcnArchName to kforge arch") {
  CHECK(kf::hip_arch_name("gfx942:sramecc+:xnack-") == "gfx942");
  CHECK(kf::hip_arch_name("gfx90a:sramecc+:xnack-") == "gfx90a");
  CHECK(kf::hip_arch_name("gfx1151") == "gfx1151");
  CHECK(kf::hip_arch_name("gfx1100:xnack-") == "gfx1100");
  CHECK(kf::hip_arch_name("") == "");
}

TEST_CASE("device measurers' shared parts: verdicts, flush launch, rows checked") {
  using namespace kf::measure;
  const kf::LinearShape s = kShape;
  const int64_t m = 2, n = s.n;
  kf::ShapeBuffers b;
  b.max_m = 4;
  CHECK(checked_rows(2, b) == 2 + kf::kGuardRows);
  CHECK(checked_rows(4, b) == 4 + kf::kGuardRows);
  const int64_t rows = checked_rows(m, b);
  std::vector<double> ref(m * n);
  std::vector<uint16_t> y(rows * n, 0xffff);
  for (int64_t i = 0; i < m * n; ++i) {
    ref[i] = 0.5 + 0.001 * (i % 97);
    y[i] = kf::float_to_half_bits(static_cast<float>(ref[i]), true);
  }
  kf::Measurement ok;
  judge_output(y, ref, s, m, rows, ok);
  CHECK(ok.disposition.empty());
  CHECK(ok.max_rel_err < kf::linear_tolerance(true));
  auto past = y;
  past[m * n + 3] = 0;  // row M written
  kf::Measurement over;
  judge_output(past, ref, s, m, rows, over);
  CHECK(over.disposition == "incorrect");
  CHECK(contains(over.message, "wrote past row M (row 2)"));
  auto unwritten = y;
  unwritten[5] = 0xffff;
  kf::Measurement nan;
  judge_output(unwritten, ref, s, m, rows, nan);
  CHECK(contains(nan.message, "not fully written"));
  flag_incorrect(nan, "split-K counters left non-zero");  // the first reason stands
  CHECK(contains(nan.message, "not fully written"));
  CHECK(all_zero({0, 0}));
  CHECK(!all_zero({0, 1}));

  kf::Measurement t;
  record_timing({3, 1, 2, 10}, t);
  CHECK(t.disposition == "passed");
  CHECK(t.median_us == 2.5);
  CHECK(t.min_us == 1);
  CHECK(t.reps == 4);
  kf::Measurement zero;
  record_timing({0, 0}, zero);
  CHECK(zero.disposition == "failed");
  kf::Measurement f;
  f.max_rel_err = 0.25;
  mark_failed(f, "hipModuleLaunchKernel: refused");
  CHECK(f.disposition == "failed");
  CHECK(f.max_rel_err == 0.25);

  int sink = 0;
  const StreamReadArgs a = stream_read_args(&sink, 64 << 20, &sink, 104);
  CHECK(a.blocks == 104 * 8);
  CHECK(a.bytes == (64u << 20));
  CHECK(stream_read_args(&sink, 16, &sink, 0).blocks == 8);
}

TEST_CASE("autotune --measurer hip (and the default) without an AMD GPU exits 77 naming the reason") {
  TempDir dir("tuner-hip");
  const std::string db = dir.sub("new/kforge.sqlite");
  const Child hip = spawn_autotune({"--measurer", "hip", "--db", db}, dir.path.string(), "hip", kNoGpuEnv);
  CHECK(hip.wait_status() == 77);
  INFO(hip.err());
  CHECK(contains(hip.err(), "no GPU: HIP: "));
  // Either the library is missing or it found no device: both say so.
  CHECK((contains(hip.err(), "libamdhip64") || contains(hip.err(), "hipInit") || contains(hip.err(), "no AMD GPU")));
  const Child dflt = spawn_autotune({"--db", db}, dir.path.string(), "default", kNoGpuEnv);
  CHECK(dflt.wait_status() == 77);
  CHECK(contains(dflt.err(), "no GPU: CUDA: "));
  CHECK(contains(dflt.err(), "; HIP: "));
  CHECK(!fs::exists(dir.sub("new")));  // nothing created
}

// Built beside autotune (tuner/CMakeLists.txt), so found from its path.
std::string fake_hip_dir() { return fs::path(KF_AUTOTUNE_EXE).parent_path().string() + "/fake_hip"; }

TEST_CASE("hip measurer (stand-in libamdhip64): verification, incorrect outputs, faults, cold and warm timing") {
  TempDir dir("tuner-hip");
  const std::string db = dir.sub("kforge.sqlite");
  const auto roles = write_hip_pack(db);
  REQUIRE(fs::exists(fake_hip_dir() + "/libamdhip64.so.6"));
  const std::vector<std::pair<std::string, std::string>> env = {{"LD_LIBRARY_PATH", fake_hip_dir()},
                                                                {"CUDA_VISIBLE_DEVICES", ""}};
  // The default measurer: no CUDA GPU, so HIP.
  auto args = hip_args(db, "1,4,64,128");
  args.erase(args.begin(), args.begin() + 2);
  const Child c = spawn_autotune(args, dir.path.string(), "cold", env);
  const int status = c.wait_status();
  const std::string err = c.err();
  INFO(err);
  REQUIRE(status == 0);
  auto where = [&](const std::string& role, int64_t m) {
    return " FROM results WHERE kernel = '" + roles.at(role) + "' AND m = " + std::to_string(m) + " AND shape = '" +
           kShape.key() + "'";
  };
  auto disp = [&](const std::string& role, int64_t m) { return text_of(db, "SELECT disposition" + where(role, m)); };
  auto message = [&](const std::string& role, int64_t m) { return text_of(db, "SELECT message" + where(role, m)); };
  auto value = [&](const std::string& col, const std::string& role, int64_t m) {
    return scalar(db, "SELECT " + col + where(role, m));
  };
  for (int64_t m : {1, 4, 64}) {
    CAPTURE(m);
    CHECK(disp("decode", m) == "passed");
    CHECK(value("median_us", "decode", m) == doctest::Approx(10).epsilon(1e-4));  // every run cold
    CHECK(value("reps", "decode", m) == 5);
    CHECK(value("max_rel_err", "decode", m) < kf::linear_tolerance(true));
    CHECK(disp("splitk", m) == "passed");
    CHECK(disp("wrong", m) == "incorrect");
    CHECK(contains(message("wrong", m), "above tolerance"));
    CHECK(contains(message("counters", m), "split-K counters"));
    CHECK(contains(message("nan", m), "not fully written"));
  }
  for (int64_t m : {1, 4, 64, 128}) {
    CAPTURE(m);
    CHECK(disp("prefill", m) == "passed");
    CHECK(value("median_us", "prefill", m) == doctest::Approx(20).epsilon(1e-4));
    CHECK(disp("generic", m) == "passed");
    CHECK(contains(message("overrun", m), "wrote past row M"));
    CHECK(contains(message("refuse", m), "hipErrorLaunchOutOfResources"));
    CHECK(contains(message("fault", m), "hipErrorIllegalAddress"));
    CHECK(contains(message("fault", m), "GPU reset"));
  }
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE device = 'kforge fake HIP device' AND driver = '60241'"
                   " AND runtime = 'hip-module-api 60241' AND arch = 'gfx942'") ==
        scalar(db, "SELECT count(*) FROM results"));
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "non-zero split-K counters"));
  CHECK(!contains(err, "hipFree"));
  CHECK(!contains(err, "kf_util_stream_read"));

  const std::string warm_db = dir.sub("warm.sqlite");
  const auto warm_roles = write_hip_pack(warm_db);
  auto warm = hip_args(warm_db, "1");
  warm.push_back("--warm");
  const Child w = spawn_autotune(warm, dir.path.string(), "warm", env);
  REQUIRE(w.wait_status() == 0);
  CHECK(scalar(warm_db, "SELECT median_us FROM results WHERE cold_l2 = 0 AND m = 1 AND kernel = '" +
                            warm_roles.at("decode") + "'") == doctest::Approx(5).epsilon(1e-4));
}
}  // TEST_SUITE
