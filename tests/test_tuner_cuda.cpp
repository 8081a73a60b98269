// autotune's CUDA measurer end to end on a CPU stand-in for libcuda.so.1
// (tuner/testing/fake_libcuda.cpp, which computes the kernels on the host and checks
// every buffer a launch touches): verification against the float64 reference, each
// kind of incorrect output, launch failures, recovery from a faulting kernel, the L2
// flush before every timed run, and a hung kernel.
#include <doctest/doctest.h>

#include <map>

#include "linear_reference.h"
#include "test_tuner_util.h"

#ifdef KF_FAKE_LIBCUDA_DIR

namespace {

using namespace kf_tuner_test;

void set_image(kf::PackKernel& k, double us, const std::string& behave) {
  const std::string text = "FAKECUBIN name=" + k.name + " us=" + std::to_string(us) + " behave=" + behave;
  k.code_object.assign(text.begin(), text.end());
  k.code_object.push_back(0);
}

struct CudaPack {
  std::map<std::string, std::string> by_role;  // role -> kernel name
};

CudaPack write_cuda_pack(const std::string& path, bool with_hang = false) {
  struct Spec {
    const char* role;
    const char* kind;
    const char* config;
    double us;
    const char* behave;
  };
  std::vector<Spec> specs = {
      {"decode", "decode", "bm1_bn64_bk32_w4_sk1_s1", 10, "ok"},
      {"splitk", "decode", "bm2_bn64_bk64_w4_sk2_s1", 8, "ok"},
      {"wrong", "decode", "bm16_bn64_bk32_w8_sk1_s1", 1, "wrong"},
      {"counters", "decode", "bm4_bn64_bk32_w4_sk4_s1", 1, "counters"},
      {"nan", "decode", "bm8_bn64_bk32_w4_sk1_s1", 1, "nan"},
      {"prefill", "prefill", "bm16_bn64_bk32_w4_sk1_s2", 20, "ok"},
      // 8 warps x 8 slots: a 96 KiB ring in dynamic shared memory (the stand-in checks the
      // launch passes it and the kernel was allowed it; it does not run the template, so
      // the ring need not fit K = 256).
      {"dynamic", "skinny", "bm8_bn64_bk32_w8_sk1_s8", 6, "ok"},
      {"overrun", "prefill", "bm32_bn64_bk32_w4_sk1_s1", 1, "overrun"},
      {"fault", "prefill", "bm64_bn64_bk64_w8_sk1_s2", 1, "fault"},
      {"refuse", "prefill", "bm128_bn64_bk32_w4_sk1_s1", 1, "refuse"},
  };
  if (with_hang) specs.push_back({"hang", "decode", "bm1_bn128_bk32_w4_sk1_s1", 1, "hang"});
  CudaPack out;
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  for (const auto& s : specs) {
    kf::PackKernel k = row(kShape, s.kind, s.config);
    set_image(k, s.us, s.behave);
    pack.put_kernel(k);
    out.by_role[s.role] = k.name;
  }
  kf::PackKernel g = generic_row();
  set_image(g, 30, "ok");
  pack.put_kernel(g);
  out.by_role["generic"] = g.name;
  kf::PackKernel u = util_row();
  set_image(u, 100, "flush");
  pack.put_kernel(u);
  pack.commit();
  return out;
}

std::vector<std::pair<std::string, std::string>> fake_driver_env() {
  return {{"LD_LIBRARY_PATH", KF_FAKE_LIBCUDA_DIR}, {"CUDA_VISIBLE_DEVICES", "0"}};
}

std::vector<std::string> cuda_args(const std::string& db, const std::string& ms) {
  return {"--measurer", "cuda", "--config", kTinyConfig, "--db", db, "--no-generate", "--m", ms, "--reps", "5",
          "--seed", "7", "--jobs", "2", "-q"};
}

std::string where(const std::string& kernel, int64_t m) {
  return " FROM results WHERE kernel = '" + kernel + "' AND m = " + std::to_string(m) + " AND shape = '" +
         kShape.key() + "'";
}

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("cuda measurer (stand-in driver): verification, incorrect outputs, faults, cold and warm timing") {
  TempDir dir("tuner-cuda");
  const std::string db = dir.sub("kforge.sqlite");
  const CudaPack p = write_cuda_pack(db);
  const Child c = spawn_autotune(cuda_args(db, "1,4,64,128"), dir.path.string(), "cold", fake_driver_env());
  const int status = c.wait_status();
  const std::string err = c.err();
  INFO(err);
  REQUIRE(status == 0);
  auto disp = [&](const std::string& role, int64_t m) { return text_of(db, "SELECT disposition" + where(p.by_role.at(role), m)); };
  auto message = [&](const std::string& role, int64_t m) { return text_of(db, "SELECT message" + where(p.by_role.at(role), m)); };
  auto value = [&](const std::string& col, const std::string& role, int64_t m) {
    return scalar(db, "SELECT " + col + where(p.by_role.at(role), m));
  };
  for (int64_t m : {1, 4, 64}) {
    CAPTURE(m);
    CHECK(disp("decode", m) == "passed");
    // Every timed run cold (flushed first): the stand-in charges 10 us cold, 5 us warm.
    CHECK(value("median_us", "decode", m) == doctest::Approx(10).epsilon(1e-4));
    CHECK(value("min_us", "decode", m) == doctest::Approx(10).epsilon(1e-4));
    CHECK(value("reps", "decode", m) == 5);
    CHECK(value("max_rel_err", "decode", m) > 0);
    CHECK(value("max_rel_err", "decode", m) < kf::linear_tolerance(true));
    CHECK(disp("splitk", m) == "passed");
    CHECK(value("median_us", "splitk", m) == doctest::Approx(8).epsilon(1e-4));
    CHECK(disp("wrong", m) == "incorrect");
    CHECK(value("max_rel_err", "wrong", m) > kf::linear_tolerance(true));
    CHECK(contains(message("wrong", m), "above tolerance"));
    CHECK(disp("counters", m) == "incorrect");
    CHECK(contains(message("counters", m), "split-K counters"));
    CHECK(disp("nan", m) == "incorrect");
    CHECK(contains(message("nan", m), "not fully written"));
    CHECK(disp("dynamic", m) == "passed");
    CHECK(value("median_us", "dynamic", m) == doctest::Approx(6).epsilon(1e-4));
  }
  for (int64_t m : {1, 4, 64, 128}) {
    CAPTURE(m);
    CHECK(disp("prefill", m) == "passed");
    CHECK(value("median_us", "prefill", m) == doctest::Approx(20).epsilon(1e-4));
    CHECK(disp("generic", m) == "passed");
    CHECK(disp("overrun", m) == "incorrect");
    CHECK(contains(message("overrun", m), "wrote past row M"));
    CHECK(disp("refuse", m) == "failed");
    CHECK(contains(message("refuse", m), "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"));
    CHECK(disp("fault", m) == "failed");
    CHECK(contains(message("fault", m), "CUDA_ERROR_ILLEGAL_ADDRESS"));
    CHECK(contains(message("fault", m), "context reset"));
  }
  CHECK(disp("decode", 128) == "pruned");
  // Provenance from the driver.
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE device = 'kforge fake CUDA device' AND driver = '13000'"
                   " AND runtime LIKE 'cuda-driver-api %' AND arch = 'sm_90a'") ==
        scalar(db, "SELECT count(*) FROM results"));
  // The measurer stayed within its buffers, kept the split-K counters zero for every
  // launch, freed nothing twice, and flushed correctly: the only faults are the injected.
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "non-zero split-K counters"));
  CHECK(!contains(err, "cuMemFree"));
  CHECK(!contains(err, "kf_util_stream_read"));
  size_t faults = 0;
  for (size_t at = 0; (at = err.find("illegal address", at)) != std::string::npos; ++at) ++faults;
  CHECK(faults == 4);  // the faulting kernel, once per M

  // Warm: no flush, so every run after the first finds the stand-in's "cache" warm.
  const std::string warm_db = dir.sub("warm.sqlite");
  const CudaPack pw = write_cuda_pack(warm_db);
  auto args = cuda_args(warm_db, "1");
  args.push_back("--warm");
  const Child w = spawn_autotune(args, dir.path.string(), "warm", fake_driver_env());
  REQUIRE(w.wait_status() == 0);
  CHECK(scalar(warm_db, "SELECT median_us" + where(pw.by_role.at("decode"), 1) + " AND cold_l2 = 0") ==
        doctest::Approx(5).epsilon(1e-4));
}

TEST_CASE("cuda measurer (stand-in driver): a hung kernel is recorded, the run stops, a rerun goes on") {
  TempDir dir("tuner-cuda");
  const std::string db = dir.sub("kforge.sqlite");
  const CudaPack p = write_cuda_pack(db, true);
  auto args = cuda_args(db, "1");
  args.insert(args.end(), {"--hang-timeout", "0.2"});
  const Child first = spawn_autotune(args, dir.path.string(), "hang", fake_driver_env());
  CHECK(first.wait_status() == 1);
  CHECK(contains(first.err(), "hung"));
  CHECK(contains(first.err(), "Run the same command again to resume"));
  CHECK(text_of(db, "SELECT disposition" + where(p.by_role.at("hang"), 1)) == "failed");
  const Child second = spawn_autotune(args, dir.path.string(), "rerun", fake_driver_env());
  CHECK(second.wait_status() == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE shape = '" + kShape.key() + "'") == 12);  // 11 kernels and the generic
  CHECK(text_of(db, "SELECT disposition" + where(p.by_role.at("decode"), 1)) == "passed");
}

}  // TEST_SUITE

#endif  // KF_FAKE_LIBCUDA_DIR
