// autotune's CUDA and HIP measurers on the MoE GEMMs, on the CPU stand-ins for libcuda.so.1
// and libamdhip64 (tuner/testing/fake_moe.h: moe_align and the GEMMs computed on the host,
// every buffer and the launch grid checked): sorting on the "GPU" checked against the host,
// verification against the float64 reference (all slots, and a sample of experts above
// kMoeCheckedSlots), padding rows, split-K counters, a wrong sort, cold timing; fused
// SiLU gemm1 kernels judged on silu(gate) * up, and moe_silu_mul timed with gemm1.
#include <doctest/doctest.h>

#include <filesystem>

#include "linear_reference.h"
#include "moe_reference.h"
#include "test_tuner_util.h"

#ifdef KF_FAKE_LIBCUDA_DIR

namespace {

using namespace kf_tuner_test;

const std::string kTinyMoe = std::string(KF_TEST_DATA_DIR) + "/data/tiny_qwen3_moe.json";
const kf::MoeShape kGemm1{1, 16, 4, 256, 256, 128, true, false};
const kf::MoeShape kGemm2{2, 16, 4, 256, 128, 128, true, false};

// The stand-in of one vendor: its measurer, its device's arch and wave size, its code
// objects' tag, the environment that loads it.
struct Vendor {
  std::string measurer, arch, image;
  int wave;
  std::vector<std::pair<std::string, std::string>> env;
};
const Vendor kCuda{"cuda", "sm_90a", "FAKECUBIN", 32, {{"LD_LIBRARY_PATH", KF_FAKE_LIBCUDA_DIR}, {"CUDA_VISIBLE_DEVICES", "0"}}};
std::string fake_hip_dir() { return std::filesystem::path(KF_AUTOTUNE_EXE).parent_path().string() + "/fake_hip"; }
Vendor hip_vendor() { return {"hip", "gfx942", "FAKEHSACO", 64, {{"LD_LIBRARY_PATH", fake_hip_dir()}, {"CUDA_VISIBLE_DEVICES", ""}}}; }

// A helper kernel's row with a stand-in code object of `v`.
kf::PackKernel helper_row(kf::PackKernel k, double us, const std::string& behave, const Vendor& v = kCuda) {
  k.arch = v.arch;
  const std::string text = v.image + " name=" + k.name + " us=" + std::to_string(us) + " behave=" + behave;
  k.code_object.assign(text.begin(), text.end());
  k.code_object.push_back(0);
  return k;
}

kf::PackKernel image_row(const kf::MoeShape& s, const std::string& kind, const std::string& config, double us,
                         const std::string& behave, const Vendor& v = kCuda) {
  const kf::LinearConfig c = kf::parse_linear_config(kind, config);
  kf::PackKernel k = util_row();
  k.name = kf::moe_kernel_name(s, c);
  k.op = s.op();
  k.kind = kind;
  k.shape = s.key();
  k.config = config;
  k.threads = c.warps * v.wave;
  return helper_row(k, us, behave, v);
}

std::map<std::string, std::string> write_pack(const std::string& path, const std::string& align_behave,
                                              const Vendor& v = kCuda) {
  std::map<std::string, std::string> role;
  kf::Pack pack = kf::Pack::open(path, true);
  pack.begin();
  auto put = [&](const std::string& r, const kf::PackKernel& k) {
    pack.put_kernel(k);
    role[r] = k.name;
  };
  put("decode", image_row(kGemm1, "decode", "bm4_bn64_bk32_w4_sk1_s1", 10, "ok", v));
  put("splitk", image_row(kGemm1, "decode", "bm8_bn128_bk32_w4_sk2_s1", 9, "ok", v));
  put("wrong", image_row(kGemm1, "decode", "bm2_bn64_bk32_w4_sk1_s1", 1, "wrong", v));
  put("padding", image_row(kGemm1, "prefill", "bm32_bn64_bk32_w4_sk1_s1", 1, "padding", v));
  put("prefill", image_row(kGemm1, "prefill", "bm16_bn64_bk32_w4_sk1_s2", 20, "ok", v));
  put("counters", image_row(kGemm1, "prefill", "bm64_bn64_bk32_w4_sk2_s1", 1, "counters", v));
  put("down", image_row(kGemm2, "prefill", "bm16_bn128_bk32_w4_sk1_s2", 15, "ok", v));
  pack.put_kernel(helper_row(util_row(), 100, "flush", v));
  pack.put_kernel(helper_row(align_row(), 2, align_behave, v));
  pack.commit();
  return role;
}

std::vector<std::string> args(const std::string& db, const std::string& ts, const Vendor& v = kCuda) {
  return {"--measurer", v.measurer, "--config", kTinyMoe, "--ops", "w4a16_moe", "--db", db, "--no-generate", "--m", ts,
          "--reps", "3", "--seed", "5", "--jobs", "2", "--archetypes", "uniform,zipf2", "-q"};
}

// Align on the "GPU", verification (all slots at small T, a sample of experts above
// kMoeCheckedSlots), padding rows, split-K counters and cold timing, through vendor v's
// measurer.
void check_measurer(const Vendor& v) {
  TempDir dir("tuner-" + v.measurer + "-moe");
  const std::string db = dir.sub("kforge.sqlite");
  const auto role = write_pack(db, "ok", v);
  // T = 1100: 4400 slots, above kMoeCheckedSlots: a sample of experts is checked.
  const Child c = spawn_autotune(args(db, "1,8,1100", v), dir.path.string(), "moe", v.env);
  const int status = c.wait_status();
  const std::string err = c.err();
  INFO(err << c.out());
  REQUIRE(status == 0);
  auto disp = [&](const std::string& r, int64_t t, const std::string& a) {
    return text_of(db, "SELECT disposition FROM results WHERE kernel = '" + role.at(r) + "' AND m = " +
                           std::to_string(t) + " AND routing = '" + a + "'");
  };
  auto msg = [&](const std::string& r, int64_t t, const std::string& a) {
    return text_of(db, "SELECT message FROM results WHERE kernel = '" + role.at(r) + "' AND m = " +
                           std::to_string(t) + " AND routing = '" + a + "'");
  };
  for (const std::string a : {"uniform", "zipf2"}) {
    for (int64_t t : {1, 8}) {
      CAPTURE(t);
      CHECK(disp("decode", t, a) == "passed");
      CHECK(disp("splitk", t, a) == "passed");
      CHECK(disp("wrong", t, a) == "incorrect");
      CHECK(contains(msg("wrong", t, a), "above tolerance"));
    }
    for (int64_t t : {1, 8, 1100}) {
      CAPTURE(t);
      CHECK(disp("prefill", t, a) == "passed");
      CHECK(disp("down", t, a) == "passed");
      CHECK(disp("padding", t, a) == "incorrect");
      CHECK(contains(msg("padding", t, a), "padding rows must not be written"));
      if (t <= kf::kSplitPrefillMaxM) {
        CHECK(disp("counters", t, a) == "incorrect");
        CHECK(contains(msg("counters", t, a), "split-K counters"));
      } else {
        CHECK(disp("counters", t, a) == "pruned");  // split-K prefill: small T only
      }
    }
    CHECK(disp("decode", 1100, a) == "pruned");
  }
  // Cold every time: the stand-in charges the full cost only after a flush.
  CHECK(scalar(db, "SELECT median_us FROM results WHERE kernel = '" + role.at("prefill") + "' AND m = 1100") ==
        doctest::Approx(20).epsilon(1e-4));
  CHECK(scalar(db, "SELECT max(max_rel_err) FROM results WHERE disposition = 'passed'") < kf::linear_tolerance(true));
  CHECK(scalar(db, "SELECT min(max_rel_err) FROM results WHERE disposition = 'passed'") > 0);
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "grid is not"));
  CHECK(!contains(err, "non-zero split-K counters"));
  CHECK(!contains(err, "illegal address"));
  CHECK(scalar(db, "SELECT count(*) FROM winners WHERE routing = ''") >= 2);
}

// A fused-epilogue case: the GEMM rows (role, row) and the helper kernel the fused ones
// replace (moe_silu_mul for gemm1, moe_sum for gemm2; 3 us), with the flush and the
// align kernel, tuned through the stand-in driver at T = 1, 8, 300.
struct FusedRun {
  std::string db, err;
  std::map<std::string, std::string> role;  // role -> kernel name
  // The disposition of role `r`'s kernel at T = `t` under routing `a`.
  std::string disp(const std::string& r, int64_t t, const std::string& a) const {
    return text_of(db, "SELECT disposition FROM results WHERE kernel = '" + role.at(r) + "' AND m = " +
                           std::to_string(t) + " AND routing = '" + a + "'");
  }
};

FusedRun run_fused(const TempDir& dir, const std::vector<std::pair<std::string, kf::PackKernel>>& gemms,
                   const std::string& helper_op, const std::string& helper_kind, const std::string& tag) {
  FusedRun r;
  r.db = dir.sub("kforge.sqlite");
  {
    kf::Pack pack = kf::Pack::open(r.db, true);
    pack.begin();
    for (const auto& [role, k] : gemms) {
      pack.put_kernel(k);
      r.role[role] = k.name;
    }
    kf::PackKernel helper = util_row();
    helper.name = helper_op + "_any_bf16";
    helper.op = helper_op;
    helper.kind = helper_kind;
    helper.shape = "any_bf16";
    helper.config = "t256";
    pack.put_kernel(helper_row(helper, 3, "ok"));
    r.role[helper_kind] = helper.name;
    kf::PackKernel u = util_row();
    u.name = "kf_util_stream_read";
    pack.put_kernel(helper_row(u, 100, "flush"));
    pack.put_kernel(helper_row(align_row(), 2, "ok"));
    pack.commit();
  }
  const Child c = spawn_autotune(args(r.db, "1,8,300"), dir.path.string(), tag,
                                 {{"LD_LIBRARY_PATH", KF_FAKE_LIBCUDA_DIR}, {"CUDA_VISIBLE_DEVICES", "0"}});
  const int status = c.wait_status();
  r.err = c.err();
  INFO(r.err << c.out());
  REQUIRE(status == 0);
  return r;
}

}  // namespace

TEST_SUITE("tuner") {

TEST_CASE("cuda measurer (stand-in driver), MoE: fused SiLU gemm1 verified on h, moe_silu_mul timed with gemm1") {
  TempDir dir("tuner-cuda-moe");
  const FusedRun r = run_fused(dir,
                               {{"decode", image_row(kGemm1, "decode", "bm4_bn64_bk32_w4_sk1_s1", 10, "ok")},
                                {"fused", image_row(kGemm1, "decode", "bm4_bn64_bk32_w4_sk1_s1_silu", 8, "ok")},
                                {"fused_split", image_row(kGemm1, "prefill", "bm16_bn128_bk64_w4_sk2_s2_silu", 30, "ok")},
                                {"fused_wrong", image_row(kGemm1, "decode", "bm2_bn64_bk32_w4_sk1_s1_silu", 1, "wrong")},
                                {"down", image_row(kGemm2, "prefill", "bm16_bn128_bk32_w4_sk1_s2", 15, "ok")}},
                               "moe_silu_mul", "silu_mul", "fused");
  const std::string& db = r.db;
  const std::string& err = r.err;
  auto disp = [&](const std::string& role, int64_t t, const std::string& a) { return r.disp(role, t, a); };
  for (const std::string a : {"uniform", "zipf2"})
    for (int64_t t : {1, 8, 300}) {
      CAPTURE(t);
      CHECK(disp("silu_mul", t, a) == "passed");
      if (t <= 8) {
        CHECK(disp("fused", t, a) == "passed");
        CHECK(disp("fused_wrong", t, a) == "incorrect");
        CHECK(disp("fused_split", t, a) == "passed");
      } else {
        CHECK(disp("fused_split", t, a) == "pruned");  // split-K prefill: small T only
      }
    }
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_silu_mul_any_bf16' AND op = 'w4a16_moe_gemm1'"
                   " AND median_us BETWEEN 2.99 AND 3.01") == 6);
  CHECK(scalar(db, "SELECT max(max_rel_err) FROM results WHERE disposition = 'passed'") < kf::linear_tolerance(true));
  // T = 1: fused 8 us against the unfused 10 + moe_silu_mul's 3. (At T = 300 every GEMM
  // candidate here is pruned: moe_silu_mul alone runs, and never wins.)
  CHECK(text_of(db, "SELECT kernel FROM winners WHERE op = 'w4a16_moe_gemm1' AND routing = '' AND m_lo = 1") ==
        r.role.at("fused"));
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "grid is not"));
  CHECK(!contains(err, "illegal address"));
}

TEST_CASE("cuda measurer (stand-in driver), MoE: _red gemm2 verified on token rows after a zeroing align, moe_sum timed with gemm2") {
  TempDir dir("tuner-cuda-moe");
  const FusedRun r = run_fused(dir,
                               {{"up", image_row(kGemm1, "prefill", "bm16_bn128_bk32_w4_sk1_s2", 15, "ok")},
                                {"plain", image_row(kGemm2, "decode", "bm4_bn64_bk32_w4_sk1_s1", 10, "ok")},
                                {"red", image_row(kGemm2, "decode", "bm4_bn64_bk32_w4_sk1_s1_red", 8, "ok")},
                                {"red_split", image_row(kGemm2, "prefill", "bm16_bn128_bk64_w4_sk2_s2_red", 30, "ok")},
                                {"red_wrong", image_row(kGemm2, "decode", "bm2_bn64_bk32_w4_sk1_s1_red", 1, "wrong")}},
                               "moe_sum", "sum", "reduced");
  const std::string& db = r.db;
  const std::string& err = r.err;
  auto disp = [&](const std::string& role, int64_t t, const std::string& a) { return r.disp(role, t, a); };
  for (const std::string a : {"uniform", "zipf2"})
    for (int64_t t : {1, 8, 300}) {
      CAPTURE(t);
      CHECK(disp("sum", t, a) == "passed");
      if (t <= 8) {
        CHECK(disp("red", t, a) == "passed");
        CHECK(disp("red_wrong", t, a) == "incorrect");
        CHECK(disp("red_split", t, a) == "passed");
      }
    }
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_sum_any_bf16' AND op = 'w4a16_moe_gemm2'"
                   " AND median_us BETWEEN 2.99 AND 3.01") == 6);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE kernel = 'moe_sum_any_bf16' AND op != 'w4a16_moe_gemm2'") == 0);
  CHECK(scalar(db, "SELECT max(max_rel_err) FROM results WHERE disposition = 'passed'") <
        kf::reduced_tolerance(true, kGemm2.top_k));
  // T = 1: the _red kernel's 8 us against the plain 10 + moe_sum's 3.
  CHECK(text_of(db, "SELECT kernel FROM winners WHERE op = 'w4a16_moe_gemm2' AND routing = '' AND m_lo = 1") ==
        r.role.at("red"));
  CHECK(!contains(err, "too small"));
  CHECK(!contains(err, "grid is not"));
  CHECK(!contains(err, "bad moe_align_any launch"));
  CHECK(!contains(err, "illegal address"));
}

TEST_CASE("cuda measurer (stand-in driver), MoE: align on the device, verification, padding rows, counters") {
  check_measurer(kCuda);
}

// The HIP measurer runs the same MoE steps as the CUDA one (tuner/moe_measure.h) over
// its own vendor layer: the same method on a wave64 gfx942 stand-in.
TEST_CASE("hip measurer (stand-in libamdhip64), MoE: the CUDA method step for step") {
  REQUIRE(std::filesystem::exists(fake_hip_dir() + "/libamdhip64.so.6"));
  check_measurer(hip_vendor());
}

TEST_CASE("cuda measurer (stand-in driver), MoE: a wrong moe_align fails every GEMM, naming it") {
  TempDir dir("tuner-cuda-moe");
  const std::string db = dir.sub("kforge.sqlite");
  write_pack(db, "wrong");
  const Child c = spawn_autotune(args(db, "4"), dir.path.string(), "bad-align",
                                 {{"LD_LIBRARY_PATH", KF_FAKE_LIBCUDA_DIR}, {"CUDA_VISIBLE_DEVICES", "0"}});
  INFO(c.err());
  CHECK(c.wait_status() == 1);  // nothing passed
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'passed'") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM results WHERE disposition = 'failed' AND message LIKE"
                   " 'moe_align_any (block_m %) sorted the slots wrongly: num_padded %'") == 2 * 7);
}

}  // TEST_SUITE

#endif  // KF_FAKE_LIBCUDA_DIR
