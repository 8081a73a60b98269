// Runtime selection: exact shape + M range, the contiguous-range rules (gaps, below the
// first, above the last), device and cold-L2 preference, arch separation, per-channel
// keys, the generic fallback (flag, one stderr line per shape), unsupported shapes and
// bad M. Packs hold fake code objects: nothing here needs a GPU.
#include <doctest/doctest.h>

#include <string>

#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;

const char* kShapeA = "n2048_k4096_g128_bf16_sym";
const char* kShapeGaps = "n1024_k2048_g128_bf16_sym";
const char* kShapeDevices = "n9216_k2048_g128_bf16_sym";
const char* kShapeOtherDevice = "n12288_k2048_g128_bf16_sym";
const char* kShapeChannel = "n2048_k512_gch_bf16_sym";

struct SelectionPack {
  TempDir dir{"rt-select"};
  std::string path = dir.file("kforge.sqlite");
  std::string a1, a2, a3, a4, gap_low, gap_high, dev_sxm_cold, dev_sxm_warm, dev_pcie_cold, dev_gh200_warm, other,
      channel, a_gfx, generic_bf16, generic_bf16_asym, generic_fp16;

  SelectionPack() {
    TestPackBuilder b;
    a1 = b.add_kernel("decode", kShapeA, "bm1_bn64_bk32_w4_sk1_s1");
    a2 = b.add_kernel("decode", kShapeA, "bm4_bn128_bk64_w4_sk2_s1");
    a3 = b.add_kernel("decode", kShapeA, "bm16_bn128_bk64_w8_sk1_s1");
    a4 = b.add_kernel("prefill", kShapeA, "bm64_bn128_bk64_w4_sk1_s2");
    b.add_winner(kShapeA, a1, 1, 1);
    b.add_winner(kShapeA, a2, 2, 8);
    b.add_winner(kShapeA, a3, 9, 48);
    b.add_winner(kShapeA, a4, 49, 4096);

    gap_low = b.add_kernel("decode", kShapeGaps, "bm4_bn64_bk32_w4_sk1_s1");
    gap_high = b.add_kernel("prefill", kShapeGaps, "bm32_bn64_bk32_w4_sk1_s1");
    b.add_winner(kShapeGaps, gap_low, 4, 8);
    b.add_winner(kShapeGaps, gap_high, 32, 64);

    dev_sxm_cold = b.add_kernel("decode", kShapeDevices, "bm1_bn64_bk32_w4_sk1_s1");
    dev_sxm_warm = b.add_kernel("decode", kShapeDevices, "bm1_bn128_bk32_w4_sk1_s1");
    dev_pcie_cold = b.add_kernel("decode", kShapeDevices, "bm1_bn256_bk32_w4_sk1_s1");
    dev_gh200_warm = b.add_kernel("decode", kShapeDevices, "bm2_bn64_bk32_w4_sk1_s1");
    b.add_winner(kShapeDevices, dev_sxm_cold, 1, 4096, kTestDevice, 1);
    b.add_winner(kShapeDevices, dev_sxm_warm, 1, 4096, kTestDevice, 0);
    b.add_winner(kShapeDevices, dev_pcie_cold, 1, 4096, "NVIDIA H100 PCIe", 1);
    b.add_winner(kShapeDevices, dev_gh200_warm, 1, 4096, "NVIDIA GH200 480GB", 0);

    other = b.add_kernel("decode", kShapeOtherDevice, "bm1_bn64_bk64_w4_sk1_s1");
    b.add_winner(kShapeOtherDevice, other, 1, 4096, "NVIDIA H100 PCIe", 0);

    channel = b.add_kernel("decode", kShapeChannel, "bm1_bn64_bk32_w4_sk1_s1");
    b.add_winner(kShapeChannel, channel, 1, 64);

    // The same shape tuned for another arch must not leak into sm_90a.
    a_gfx = b.add_kernel("decode", kShapeA, "bm2_bn64_bk32_w4_sk1_s1", "gfx1151", 64);
    b.add_winner(kShapeA, a_gfx, 1, 4096, "AMD Radeon 8060S", 1, "gfx1151");

    generic_bf16 = b.add_generic(true, false);
    generic_bf16_asym = b.add_generic(true, true);
    generic_fp16 = b.add_generic(false, false);
    b.add_generic(true, false, "gfx1151");
    b.write(path);
  }
};

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("the winners row whose M range covers m, at both ends, between tuned Ms and above the largest") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  CHECK(pick(db.get(), 2048, 4096, 1) == p.a1);
  CHECK(pick(db.get(), 2048, 4096, 2) == p.a2);   // m_lo
  CHECK(pick(db.get(), 2048, 4096, 8) == p.a2);   // m_hi
  CHECK(pick(db.get(), 2048, 4096, 9) == p.a3);
  CHECK(pick(db.get(), 2048, 4096, 30) == p.a3);  // between tuned Ms
  CHECK(pick(db.get(), 2048, 4096, 48) == p.a3);
  CHECK(pick(db.get(), 2048, 4096, 49) == p.a4);
  CHECK(pick(db.get(), 2048, 4096, 4096) == p.a4);
  CHECK(pick(db.get(), 2048, 4096, 100000) == p.a4);             // above the largest
  CHECK(pick(db.get(), 2048, 4096, INT64_MAX) == p.a4);

  const kf_kernel* k = nullptr;
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 5, &k) == KF_OK);
  CHECK(kf_kernel_is_fallback(k) == 0);
}

TEST_CASE("kf_select by key returns the very handle kf_select_linear returns") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  for (int64_t m : {1, 2, 8, 9, 48, 49, 5000}) {
    const kf_kernel* by_key = nullptr;
    const kf_kernel* by_numbers = nullptr;
    REQUIRE(kf_select(db.get(), "w4a16_linear", kShapeA, m, &by_key) == KF_OK);
    REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, m, &by_numbers) == KF_OK);
    CHECK(by_key == by_numbers);
  }
}

TEST_CASE("M below every range takes the first; a gap between ranges takes the range below") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  CHECK(pick(db.get(), 1024, 2048, 1) == p.gap_low);
  CHECK(pick(db.get(), 1024, 2048, 4) == p.gap_low);
  CHECK(pick(db.get(), 1024, 2048, 20) == p.gap_low);
  CHECK(pick(db.get(), 1024, 2048, 31) == p.gap_low);
  CHECK(pick(db.get(), 1024, 2048, 32) == p.gap_high);
  CHECK(pick(db.get(), 1024, 2048, 9999) == p.gap_high);
}

TEST_CASE("winners of this device first, cold-L2 rows before warm, else any device of the arch") {
  SelectionPack p;
  SUBCASE("this device: cold L2 preferred") {
    DbPtr db = open_for_arch(p.path, "sm_90a", kTestDevice);
    CHECK(pick(db.get(), 9216, 2048, 16) == p.dev_sxm_cold);
  }
  SUBCASE("this device's warm rows beat another device's cold ones") {
    DbPtr db = open_for_arch(p.path, "sm_90a", "NVIDIA GH200 480GB");
    CHECK(pick(db.get(), 9216, 2048, 16) == p.dev_gh200_warm);
  }
  SUBCASE("another device name") {
    DbPtr db = open_for_arch(p.path, "sm_90a", "NVIDIA H100 PCIe");
    CHECK(pick(db.get(), 9216, 2048, 16) == p.dev_pcie_cold);
  }
  SUBCASE("an untuned device: cold rows of any device, alphabetically first device") {
    DbPtr db = open_for_arch(p.path, "sm_90a", "NVIDIA H200");
    CHECK(pick(db.get(), 9216, 2048, 16) == p.dev_sxm_cold);
    DbPtr no_name = open_for_arch(p.path, "sm_90a", nullptr);
    CHECK(pick(no_name.get(), 9216, 2048, 16) == p.dev_sxm_cold);
    CHECK(std::string(kf_db_device_name(no_name.get())).empty());
  }
  SUBCASE("a shape tuned only on another device is still tuned") {
    DbPtr db = open_for_arch(p.path, "sm_90a", kTestDevice);
    const kf_kernel* k = nullptr;
    REQUIRE(kf_select_linear(db.get(), 12288, 2048, 128, 1, 0, 3, &k) == KF_OK);
    CHECK(kf_kernel_name(k) == p.other);
    CHECK(kf_kernel_is_fallback(k) == 0);
  }
}

TEST_CASE("opening says once which shapes are served from another card's tuning") {
  SelectionPack p;
  auto opened_as = [&](const char* device) {
    CaptureStderr err(p.dir);
    DbPtr db = open_for_arch(p.path, "sm_90a", device);
    REQUIRE(db);
    return err.text();
  };
  const std::string own = std::string("timed on '") + kTestDevice + "'";
  SUBCASE("this device: only the shape tuned on another card") {
    const std::string text = opened_as(kTestDevice);
    CHECK(contains(text, "1 tuned shape of sm_90a has no winners " + own + "; serving those timed on 'NVIDIA H100 PCIe'"));
    CHECK(contains(text, "run autotune on this device"));
  }
  SUBCASE("an untuned card: every shape, one line per card served from") {
    const std::string text = opened_as("NVIDIA H200");
    CHECK(contains(text, "4 tuned shapes of sm_90a have no winners timed on 'NVIDIA H200'; serving those " + own));
    CHECK(contains(text, "1 tuned shape of sm_90a has no winners timed on 'NVIDIA H200'; serving those timed on "
                         "'NVIDIA H100 PCIe'"));
  }
  SUBCASE("no device name: nothing to compare with, nothing said") {
    CHECK_FALSE(contains(opened_as(nullptr), "no winners timed on"));
  }
}

TEST_CASE("each arch sees only its own kernels and winners") {
  SelectionPack p;
  DbPtr gfx = open_for_arch(p.path, "gfx1151", "AMD Radeon 8060S");
  CHECK(std::string(kf_db_arch(gfx.get())) == "gfx1151");
  CHECK(pick(gfx.get(), 2048, 4096, 1) == p.a_gfx);
  CHECK(pick(gfx.get(), 2048, 4096, 4000) == p.a_gfx);
  DbPtr sm = open_for_arch(p.path);
  CHECK(pick(sm.get(), 2048, 4096, 4000) == p.a4);
}

TEST_CASE("per-channel shapes: group 0 and group == K both find the gch key") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  CHECK(pick(db.get(), 2048, 512, 7, 0) == p.channel);
  CHECK(pick(db.get(), 2048, 512, 7, 512) == p.channel);
  const kf_kernel* k = nullptr;
  REQUIRE(kf_select(db.get(), "w4a16_linear", kShapeChannel, 7, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == p.channel);
}

TEST_CASE("a shape never tuned gets the generic kernel of its dtype/quant, flagged, reported once per shape") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  CaptureStderr err(p.dir);
  const kf_kernel* k = nullptr;
  for (int64_t m : {1, 7, 300}) {
    REQUIRE(kf_select_linear(db.get(), 4096, 4096, 128, 1, 0, m, &k) == KF_OK);
    CHECK(kf_kernel_name(k) == p.generic_bf16);
    CHECK(kf_kernel_is_fallback(k) == 1);
  }
  REQUIRE(kf_select(db.get(), "w4a16_linear", "n4096_k4096_g128_bf16_sym", 3, &k) == KF_OK);
  CHECK(kf_kernel_is_fallback(k) == 1);
  REQUIRE(kf_select_linear(db.get(), 4096, 4096, 128, 1, 1, 3, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == p.generic_bf16_asym);
  REQUIRE(kf_select_linear(db.get(), 4096, 4096, 64, 0, 0, 3, &k) == KF_OK);
  CHECK(kf_kernel_name(k) == p.generic_fp16);
  // A tuned kernel's handle is never flagged, even when the same kernel is the fallback.
  REQUIRE(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 3, &k) == KF_OK);
  CHECK(kf_kernel_is_fallback(k) == 0);

  const std::string log = err.text();
  CHECK(count_of(log, "kforge: no tuned kernel for w4a16_linear n4096_k4096_g128_bf16_sym on sm_90a; using the "
                      "generic kernel " + p.generic_bf16) == 1);
  CHECK(count_of(log, "n4096_k4096_g128_bf16_asym") == 1);
  CHECK(count_of(log, "n4096_k4096_g64_fp16_sym") == 1);
  CHECK(count_of(log, "\n") == 3);
}

TEST_CASE("a shape the generic kernel cannot do, or without a generic kernel, is unsupported, named") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  const kf_kernel* k = nullptr;
  CHECK(kf_select_linear(db.get(), 100, 4096, 128, 1, 0, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "n100_k4096_g128_bf16_sym"));
  CHECK(contains(kf_last_error(), "N = 100"));
  CHECK(kf_select_linear(db.get(), 2048, 4100, 0, 1, 0, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "n2048_k4100_gch_bf16_sym"));
  CHECK(kf_select_linear(db.get(), 2048, 4096, 48, 1, 0, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "group = 48"));
  CHECK(kf_select_linear(db.get(), 2048, 4096, 128, 0, 1, 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
  CHECK(contains(kf_last_error(), "no generic fp16 asym kernel"));
  CHECK(kf_select(db.get(), "w4a16_linear", "n2048_k4096_g128_fp16_asym", 1, &k) == KF_ERR_UNSUPPORTED_SHAPE);
}

TEST_CASE("bad arguments: m < 1, negative sizes, unknown op, malformed key, NULLs") {
  SelectionPack p;
  DbPtr db = open_for_arch(p.path);
  const kf_kernel* k = nullptr;
  CHECK(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "m = 0"));
  CHECK(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, -3, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "m = -3"));
  CHECK(kf_select(db.get(), "w4a16_linear", kShapeA, 0, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_linear(db.get(), -8, 4096, 128, 1, 0, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_linear(db.get(), 2048, 4096, -1, 1, 0, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select(db.get(), "w8a8_linear", kShapeA, 1, &k) == KF_ERR_NOT_FOUND);
  CHECK(contains(kf_last_error(), "w8a8_linear"));
  CHECK(kf_select(db.get(), "w4a16_linear", "n2048_k4096", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "'n2048_k4096'"));
  CHECK(kf_select(db.get(), "w4a16_linear", "n2048_k4096_g128_bf16_sym_extra", 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select(nullptr, "w4a16_linear", kShapeA, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(contains(kf_last_error(), "db is NULL"));
  CHECK(kf_select(db.get(), nullptr, kShapeA, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select(db.get(), "w4a16_linear", nullptr, 1, &k) == KF_ERR_INVALID_ARGUMENT);
  CHECK(kf_select_linear(db.get(), 2048, 4096, 128, 1, 0, 1, nullptr) == KF_ERR_INVALID_ARGUMENT);
  CHECK(std::string(kf_kernel_name(nullptr)).empty());
  CHECK(kf_kernel_is_fallback(nullptr) == 0);
}

}  // TEST_SUITE
