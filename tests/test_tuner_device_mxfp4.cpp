// autotune's device measurers on mxfp4_moe, on the CPU stand-ins for libcuda.so.1 and
// libamdhip64 (tuner/testing/fake_mxfp4.h: the GEMMs computed on the host from the MXFP4
// weights, their grids and buffers checked): gpt-oss-20b's gate_up (fused SwiGLU) and down
// kernels verified against the float64 reference after moe_align on the "GPU", each kind
// of wrong output (values, a column unwritten, the padding row, a slot routed nowhere), a
// fault and the reset after it, block_m pruning, timing of the GEMM alone, the sampled
// reference above 64 slots, and a wrong moe_align.
#include <doctest/doctest.h>

#include <filesystem>

#include "mxfp4_problem.h"
#include "test_tuner_util.h"

namespace {

using namespace kf_tuner_test;

const kf::Mxfp4MoeShape kUp{1, 32, 4, 5760, 2880, true};
const kf::Mxfp4MoeShape kDown{2, 32, 4, 2880, 2880, false};

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

kf::PackKernel mx_image(const Vendor& v, const kf::Mxfp4MoeShape& s, const std::string& config, double us,
                        const std::string& behave) {
  const kf::Mxfp4Config c = kf::parse_mxfp4_config(config);
  kf::PackKernel k = image_row(v, kf::mxfp4_kernel_name(s, c), us, behave);
  k.op = s.op();
  k.kind = "mma";
  k.shape = s.key();
  k.config = config;
  k.threads = c.warps * v.wave;
  return k;
}

std::map<std::string, std::string> write_pack(const Vendor& v, const std::string& path,
                                              const std::string& align_behave = "ok") {
  std::map<std::string, std::string> role;
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  auto put = [&](const std::string& r, const kf::PackKernel& k) {
    pack.put_kernel(k);
    role[r] = k.name;
  };
  put("fault", mx_image(v, kUp, "bm128_bn96_bk64_w8_s2_ep2", 1, "fault"));  // pruned at T = 1: the first at 512
  put("fault16", mx_image(v, kUp, "bm16_bn192_bk32_w4_s2_ep1", 1, "fault"));  // first by name at T = 1
  put("plain", mx_image(v, kUp, "bm16_bn96_bk64_w4_s3_ep1", 10, "ok"));
  put("plain32", mx_image(v, kUp, "bm32_bn96_bk64_w4_s3_ep1", 12, "ok"));
  put("wrong", mx_image(v, kUp, "bm16_bn192_bk64_w8_s2_ep1", 1, "wrong"));
  put("nan", mx_image(v, kUp, "bm16_bn64_bk64_w4_s3_ep1", 1, "nan"));
  put("padding", mx_image(v, kUp, "bm32_bn64_bk64_w4_s2_ep1", 1, "padding"));
  put("down", mx_image(v, kDown, "bm16_bn96_bk64_w4_s3_ep1", 6, "ok"));
  put("dropped", mx_image(v, kDown, "bm16_bn64_bk64_w4_s3_ep1", 1, "dropped"));
  pack.put_kernel(image_row(v, "kf_util_stream_read", 100, "flush"));
  kf::PackKernel align = image_row(v, "moe_align_any", 2, align_behave);
  align.op = "moe_align";
  align.kind = "align";
  align.shape = "any";
  align.config = "t1024";
  align.threads = 1024;
  pack.put_kernel(align);
  pack.commit();
  return role;
}

std::vector<std::string> args(const Vendor& v, const std::string& db, const std::string& ts,
                              const std::string& filter = ".") {
  return {"--measurer", v.measurer, "--model", "gpt-oss-20b", "--ops", "mxfp4_moe", "--db", db, "--no-generate",
          "--m", ts, "--archetypes", "uniform", "--reps", "3", "--seed", "5", "--jobs", "2", "--filter", filter, "-q"};
}

std::string fake_hip_dir() { return std::filesystem::path(KF_AUTOTUNE_EXE).parent_path().string() + "/fake_hip"; }

// Both vendors, T = 1: every kind of output on both GEMMs. Returns the run's stderr.
std::string check_common(const Vendor& v, const std::string& db, const std::map<std::string, std::string>& role) {
  TempDir logs("tuner-device-mxfp4");
  const Child c = spawn_autotune(args(v, db, "1"), logs.path.string(), "mxfp4", v.env);
  const int status = c.wait_status();
  const std::string err = c.err();
  INFO(err << c.out());
  REQUIRE(status == 0);
  auto col = [&](const std::string& what, const std::string& r) {
    return text_of(db, "SELECT " + what + " FROM results WHERE kernel = '" + role.at(r) + "' AND m = 1");
  };
  CHECK(col("disposition", "plain") == "passed");
  CHECK(col("disposition", "plain32") == "passed");
  CHECK(col("disposition", "down") == "passed");
  CHECK(col("disposition", "wrong") == "incorrect");
  CHECK(contains(col("message", "wrong"), "above tolerance"));
  CHECK(col("disposition", "nan") == "incorrect");
  CHECK(contains(col("message", "nan"), "not fully written or not finite (column 2879)"));
  CHECK(col("disposition", "padding") == "incorrect");
  CHECK(contains(col("message", "padding"), "past the last slot"));
  CHECK(col("disposition", "dropped") == "incorrect");  // at T = 1 it zeroes slot 0, a routed one
  CHECK(col("disposition", "fault16") == "failed");
  CHECK(contains(col("message", "fault16"), "reset"));
  CHECK(col("disposition", "fault") == "pruned");
  CHECK(contains(col("message", "fault"), "block_m 128"));
  // Cold every time, the GEMM alone between the events (align ran before).
  CHECK(std::stod(col("median_us", "plain")) == doctest::Approx(10).epsilon(1e-4));
  CHECK(std::stod(col("median_us", "down")) == doctest::Approx(6).epsilon(1e-4));
  CHECK(scalar(db, "SELECT max(max_rel_err) FROM results WHERE disposition = 'passed'") < kf::kMxfp4Tolerance);
  CHECK(scalar(db, "SELECT min(max_rel_err) FROM results WHERE disposition = 'passed'") > 0);
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "grid is not"));
  // The only illegal address is the injected fault.
  size_t faults = 0;
  for (size_t at = err.find("illegal address"); at != std::string::npos; at = err.find("illegal address", at + 1)) {
    ++faults;
    CHECK(err.compare(err.find(": ", at) + 2, role.at("fault16").size(), role.at("fault16")) == 0);
  }
  CHECK(faults == 1);
  CHECK(text_of(db, "SELECT kernel FROM winners WHERE op = 'mxfp4_moe_gemm1' AND routing = '' AND m_lo = 1") ==
        role.at("plain"));
  return err;
}

// T = 17 (68 slots, slot 64 routed nowhere): the down GEMMs only (the cheaper ones on the
// stand-in), against a sample of 64 of the 67 routed slots.
void check_sampled(const Vendor& v, const std::string& db, const std::map<std::string, std::string>& role) {
  TempDir logs("tuner-device-mxfp4");
  const Child c = spawn_autotune(args(v, db, "17", "gemm2_"), logs.path.string(), "mxfp4-17", v.env);
  INFO(c.err() << c.out());
  REQUIRE(c.wait_status() == 0);
  auto col = [&](const std::string& what, const std::string& r) {
    return text_of(db, "SELECT " + what + " FROM results WHERE kernel = '" + role.at(r) + "' AND m = 17");
  };
  CHECK(col("disposition", "down") == "passed");
  CHECK(col("disposition", "dropped") == "incorrect");
  CHECK(contains(col("message", "dropped"), "wrote the row of slot 64, which is routed nowhere (expert id -1)"));
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE m = 17 AND op = 'mxfp4_moe_gemm1'") == 0);
}

}  // namespace

TEST_SUITE("tuner mxfp4") {

#ifdef KF_FAKE_LIBCUDA_DIR

const Vendor kCuda{
    "cuda", "sm_90a", "FAKECUBIN", 32, {{"LD_LIBRARY_PATH", KF_FAKE_LIBCUDA_DIR}, {"CUDA_VISIBLE_DEVICES", "0"}}};

TEST_CASE("cuda measurer (stand-in driver), MXFP4: align on the GPU, verification, pruning, timing, sampling") {
  TempDir dir("tuner-cuda-mxfp4");
  const std::string db = dir.sub("kforge.sqlite");
  const auto role = write_pack(kCuda, db);
  check_common(kCuda, db, role);
  check_sampled(kCuda, db, role);
}

TEST_CASE("cuda measurer (stand-in driver), MXFP4: a wrong moe_align fails every GEMM, naming it") {
  TempDir dir("tuner-cuda-mxfp4");
  const std::string db = dir.sub("kforge.sqlite");
  write_pack(kCuda, db, "wrong");
  const Child c = spawn_autotune(args(kCuda, db, "1"), dir.path.string(), "bad-align", kCuda.env);
  INFO(c.err());
  CHECK(c.wait_status() == 1);  // nothing passed
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'failed' AND message LIKE"
                   " 'moe_align_any (block_m %) sorted the slots wrongly: num_padded%'") == 8);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'passed'") == 0);
}

#endif  // KF_FAKE_LIBCUDA_DIR

TEST_CASE("hip measurer (stand-in libamdhip64), MXFP4: the CUDA method step for step") {
  const Vendor hip{
      "hip", "gfx942", "FAKEHSACO", 64, {{"LD_LIBRARY_PATH", fake_hip_dir()}, {"CUDA_VISIBLE_DEVICES", ""}}};
  REQUIRE(std::filesystem::exists(fake_hip_dir() + "/libamdhip64.so.6"));
  TempDir dir("tuner-hip-mxfp4");
  const std::string db = dir.sub("kforge.sqlite");
  const auto role = write_pack(hip, db);
  check_common(hip, db, role);
}

}  // TEST_SUITE
