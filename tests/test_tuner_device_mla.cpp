// autotune's device measurers on sparse_mla_decode, on the CPU stand-ins for libcuda.so.1
// and libamdhip64 (tuner/testing/fake_mla.h: the decode and combine kernels computed on
// the host, their grids and buffers checked): unsplit and split kernels verified against
// the float64 reference (all queries at Q <= 4, a sample above), extras, each kind of
// wrong output, a fault and the reset after it, the split pruning against the device's
// SMs / CUs, a split kernel timed together with its combine, and a pack without the
// combine kernel.
#include <doctest/doctest.h>

#include <filesystem>

#include "mla_problem.h"
#include "test_tuner_util.h"

namespace {

using namespace kf_tuner_test;

const kf::MlaShape kH16{16, 2048, 0, true};
const kf::MlaShape kH16x{16, 2048, 128, true};

// The stand-in of one vendor: its device's arch and wave size, its code objects' tag.
struct Vendor {
  std::string measurer, arch, image;
  int wave;
  std::vector<std::pair<std::string, std::string>> env;
};

kf::PackKernel image_row(const Vendor& v, const std::string& name, double us, const std::string& behave) {
  kf::PackKernel k = util_row();
  k.arch = v.arch;
  k.name = name;
  const std::string text = v.image + " name=" + name + " us=" + std::to_string(us) + " behave=" + behave;
  k.code_object.assign(text.begin(), text.end() + 1);
  return k;
}

kf::PackKernel mla_image(const Vendor& v, const kf::MlaShape& s, const std::string& config, double us,
                         const std::string& behave) {
  const kf::MlaConfig c = kf::parse_mla_config(config);
  kf::PackKernel k = image_row(v, kf::mla_kernel_name(s, c), us, behave);
  k.op = kf::kMlaDecodeOp;
  k.kind = "decode";
  k.shape = s.key();
  k.config = config;
  k.threads = c.warps * v.wave;
  return k;
}

std::map<std::string, std::string> write_pack(const Vendor& v, const std::string& path, bool with_combine) {
  std::map<std::string, std::string> role;
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  auto put = [&](const std::string& r, const kf::PackKernel& k) {
    pack.put_kernel(k);
    role[r] = k.name;
  };
  put("fault", mla_image(v, kH16, "bh16_bk16_w16_sp1_s1", 1, "fault"));  // first by name: the rest run after the reset
  put("plain", mla_image(v, kH16, "bh16_bk16_w4_sp1_s1", 10, "ok"));
  put("split", mla_image(v, kH16, "bh16_bk16_w4_sp4_s2", 6, "ok"));
  put("split16", mla_image(v, kH16, "bh16_bk32_w4_sp16_s1", 20, "ok"));
  put("wrong", mla_image(v, kH16, "bh16_bk16_w8_sp1_s1", 1, "wrong"));
  put("nan", mla_image(v, kH16, "bh16_bk16_w8_sp1_s2", 1, "nan"));
  put("overrun", mla_image(v, kH16, "bh16_bk32_w4_sp1_s1", 1, "overrun"));
  put("split_nan", mla_image(v, kH16, "bh16_bk16_w8_sp2_s1", 1, "nan"));
  put("window", mla_image(v, kH16x, "bh16_bk16_w4_sp2_s1", 8, "ok"));
  put("window_plain", mla_image(v, kH16x, "bh16_bk16_w4_sp1_s1", 12, "ok"));
  pack.put_kernel(image_row(v, "kf_util_stream_read", 100, "flush"));
  if (with_combine) {
    const kf::Candidate c = kf::make_mla_combine_candidate(true, kf::arch_info(v.arch));
    kf::PackKernel k = image_row(v, c.name, 4, "ok");
    k.op = c.op;
    k.kind = c.kind;
    k.shape = c.shape;
    k.config = c.config;
    k.threads = c.threads;
    pack.put_kernel(k);
  }
  pack.commit();
  return role;
}

std::vector<std::string> args(const Vendor& v, const std::string& db, const std::string& qs) {
  return {"--measurer", v.measurer, "--model", "deepseek-v3.2", "--ops", "sparse_mla_decode", "--db", db,
          "--no-generate", "--m", qs, "--reps", "3", "--seed", "5", "--jobs", "2", "-q"};
}

std::string fake_hip_dir() { return std::filesystem::path(KF_AUTOTUNE_EXE).parent_path().string() + "/fake_hip"; }

// Both vendors: everything but the pruning and the timing, which depend on the device.
// Returns the run's stderr.
std::string check_common(const Vendor& v, const std::string& db, const std::map<std::string, std::string>& role) {
  TempDir logs("tuner-device-mla");
  // Q = 5: the reference of queries 0, 2 and 4 only; every query's output still checked.
  const Child c = spawn_autotune(args(v, db, "1,5"), logs.path.string(), "mla", v.env);
  const int status = c.wait_status();
  const std::string err = c.err();
  INFO(err << c.out());
  REQUIRE(status == 0);
  auto col = [&](const std::string& what, const std::string& r, int64_t qn) {
    return text_of(db, "SELECT " + what + " FROM results WHERE kernel = '" + role.at(r) + "' AND m = " +
                           std::to_string(qn));
  };
  for (int64_t qn : {1, 5}) {
    CAPTURE(qn);
    CHECK(col("disposition", "plain", qn) == "passed");
    CHECK(col("disposition", "window_plain", qn) == "passed");
    CHECK(col("disposition", "window", qn) == "passed");  // extras, split in 2
    CHECK(col("disposition", "wrong", qn) == "incorrect");
    CHECK(contains(col("message", "wrong", qn), "normalised error of o"));
    CHECK(col("disposition", "nan", qn) == "incorrect");
    CHECK(contains(col("message", "nan", qn), "o of query " + std::to_string(qn - 1) + ", head 15 not written"));
    CHECK(col("disposition", "overrun", qn) == "incorrect");
    CHECK(contains(col("message", "overrun", qn), "wrote o past the last query"));
    CHECK(col("disposition", "split_nan", qn) == "incorrect");  // the combine merged a poisoned partial
    CHECK(contains(col("message", "split_nan", qn), "not finite"));
    CHECK(col("disposition", "fault", qn) == "failed");
    CHECK(contains(col("message", "fault", qn), "reset"));
  }
  CHECK(col("disposition", "split", 1) == "passed");
  // Cold every time: the decode at full cost after the flush, a combine after it at half.
  CHECK(scalar(db, "SELECT median_us FROM results WHERE kernel = '" + role.at("plain") + "' AND m = 5") ==
        doctest::Approx(10).epsilon(1e-4));
  CHECK(scalar(db, "SELECT median_us FROM results WHERE kernel = '" + role.at("split") + "' AND m = 1") ==
        doctest::Approx(6 + 4 / 2.0).epsilon(1e-4));
  CHECK(scalar(db, "SELECT max(max_rel_err) FROM results WHERE disposition = 'passed'") < kf::mla_tolerance(true));
  CHECK(scalar(db, "SELECT min(max_rel_err) FROM results WHERE disposition = 'passed'") > 0);
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "grid is not"));
  // The only illegal addresses are the injected faults (one per Q).
  size_t faults = 0;
  for (size_t at = err.find("illegal address"); at != std::string::npos; at = err.find("illegal address", at + 1)) {
    ++faults;
    CHECK(err.compare(err.find(": ", at) + 2, role.at("fault").size(), role.at("fault")) == 0);
  }
  CHECK(faults == 2);
  CHECK(text_of(db, "SELECT kernel FROM winners WHERE shape = '" + kH16.key() + "' AND m_lo = 1") == role.at("split"));
  return err;
}

}  // namespace

TEST_SUITE("tuner mla") {

#ifdef KF_FAKE_LIBCUDA_DIR

const Vendor kCuda{
    "cuda", "sm_90a", "FAKECUBIN", 32, {{"LD_LIBRARY_PATH", KF_FAKE_LIBCUDA_DIR}, {"CUDA_VISIBLE_DEVICES", "0"}}};

TEST_CASE("cuda measurer (stand-in driver), MLA: verification, splits with the combine, pruning, timing") {
  TempDir dir("tuner-cuda-mla");
  const std::string db = dir.sub("kforge.sqlite");
  const auto role = write_pack(kCuda, db, true);
  check_common(kCuda, db, role);
  // 4 SMs (threshold 8 blocks): 16 splits of one block leave 8 with half of them; 4 splits
  // of 5 queries 10.
  auto disp = [&](const std::string& r, int64_t qn) {
    return text_of(db, "SELECT disposition FROM results WHERE kernel = '" + role.at(r) + "' AND m = " +
                           std::to_string(qn));
  };
  CHECK(disp("split16", 1) == "pruned");
  CHECK(disp("split16", 5) == "pruned");
  CHECK(disp("split", 5) == "pruned");
  CHECK(contains(text_of(db, "SELECT message FROM results WHERE kernel = '" + role.at("split") + "' AND m = 5"),
                 "more splits only add partials"));
}

TEST_CASE("cuda measurer (stand-in driver), MLA: without the combine kernel split kernels fail, naming it") {
  TempDir dir("tuner-cuda-mla");
  const std::string db = dir.sub("kforge.sqlite");
  const auto role = write_pack(kCuda, db, false);
  const Child c = spawn_autotune(args(kCuda, db, "1"), dir.path.string(), "no-combine", kCuda.env);
  INFO(c.err());
  CHECK(c.wait_status() == 0);  // the unsplit kernels pass
  CHECK(contains(c.err(), "no usable sparse_mla_combine_any_bf16"));
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'failed' AND message LIKE"
                   " 'the pack has no usable sparse_mla_combine_any_bf16%'") == 3);  // split, split_nan, window
  CHECK(text_of(db, "SELECT disposition FROM results WHERE kernel = '" + role.at("plain") + "'") == "passed");
}

#endif  // KF_FAKE_LIBCUDA_DIR

TEST_CASE("hip measurer (stand-in libamdhip64), MLA: the CUDA method step for step") {
  const Vendor hip{
      "hip", "gfx942", "FAKEHSACO", 64, {{"LD_LIBRARY_PATH", fake_hip_dir()}, {"CUDA_VISIBLE_DEVICES", ""}}};
  REQUIRE(std::filesystem::exists(fake_hip_dir() + "/libamdhip64.so.6"));
  TempDir dir("tuner-hip-mla");
  const std::string db = dir.sub("kforge.sqlite");
  const auto role = write_pack(hip, db, true);
  check_common(hip, db, role);
  // 6 CUs (threshold 12 blocks): 4 splits of 5 queries stay (10), 16 splits of one go (8 < 12 stays).
  auto disp = [&](const std::string& r, int64_t qn) {
    return text_of(db, "SELECT disposition FROM results WHERE kernel = '" + role.at(r) + "' AND m = " +
                           std::to_string(qn));
  };
  CHECK(disp("split", 5) == "passed");
  CHECK(disp("split16", 1) == "passed");
  CHECK(disp("split16", 5) == "pruned");
}

}  // TEST_SUITE
