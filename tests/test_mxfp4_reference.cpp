// The MXFP4 float64 reference (tuner/mxfp4_reference.h): e2m1 and e8m0 decoding against
// the format's literal values, packing, dequantisation, and the MoE GEMMs against a
// naive computation written here from the format's definition, not from the reference.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "linear_reference.h"
#include "mxfp4_reference.h"
#include "test_util.h"

namespace {

using kf_test::contains;
using kf_test::error_of;

// OCP MX spec, table of FP4 E2M1 values, codes 0..15.
const double kE2m1[16] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0};

// A fresh seed per run (never 0), printed so that a failure can be replayed.
uint64_t fresh_seed() {
  std::random_device rd;
  const char* fixed = std::getenv("KF_TEST_SEED");
  const uint64_t s = fixed ? std::strtoull(fixed, nullptr, 10) : (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;
  MESSAGE("seed " << s << " (KF_TEST_SEED=" << s << " replays it)");
  return s;
}

uint8_t nibble(const std::vector<uint8_t>& packed, int64_t i) { return (packed[i / 2] >> (i % 2 ? 4 : 0)) & 0xF; }

// Naive W[e][n][k] straight from the spec: table value times 2^(scale - 127).
double naive_w(const kf::Mxfp4MoeProblem& p, int64_t e, int64_t n, int64_t k) {
  const double v = kE2m1[nibble(p.weight, (e * p.n + n) * p.k + k)];
  return v * std::pow(2.0, static_cast<int>(p.scales[(e * p.n + n) * (p.k / 32) + k / 32]) - 127);
}

// Random problem: codes over all 16 values, scales 2^-4 .. 2^1, x ~ U(-1, 1) in bf16.
kf::Mxfp4MoeProblem random_problem(int gemm, int64_t e, int64_t top_k, int64_t t, int64_t n, int64_t k,
                                   std::mt19937_64& rng) {
  kf::Mxfp4MoeProblem p;
  p.gemm = gemm;
  p.experts = e, p.top_k = top_k, p.t = t, p.n = n, p.k = k;
  p.weight.resize(e * n * k / 2);
  for (auto& b : p.weight) b = static_cast<uint8_t>(rng());
  p.scales.resize(e * n * k / 32);
  for (auto& s : p.scales) s = static_cast<uint8_t>(123 + rng() % 6);
  std::uniform_real_distribution<float> u(-1.f, 1.f), uw(0.1f, 1.f);
  p.bias.resize(e * n);
  for (auto& b : p.bias) b = u(rng);
  p.x.resize((gemm == 1 ? t : t * top_k) * k);
  for (auto& v : p.x) v = kf::float_to_half_bits(u(rng), true);
  p.topk_ids.resize(t * top_k);
  for (auto& id : p.topk_ids) id = static_cast<int32_t>(rng() % e);
  p.topk_weights.resize(t * top_k);
  for (auto& w : p.topk_weights) w = uw(rng);
  return p;
}

double dot_row(const kf::Mxfp4MoeProblem& p, int64_t row, int64_t e, int64_t n) {
  double acc = p.bias[e * p.n + n];
  for (int64_t k = 0; k < p.k; ++k) acc += kf::half_bits_to_float(p.x[row * p.k + k], true) * naive_w(p, e, n, k);
  return acc;
}

}  // namespace

TEST_SUITE("mxfp4 reference") {

TEST_CASE("e2m1: all 16 codes, -0 keeps its sign; only the low nibble counts") {
  for (int c = 0; c < 16; ++c) {
    CAPTURE(c);
    CHECK(kf::e2m1_value(static_cast<uint8_t>(c)) == kE2m1[c]);
    CHECK(std::signbit(kf::e2m1_value(static_cast<uint8_t>(c))) == (c >= 8));
    CHECK(kf::e2m1_value(static_cast<uint8_t>(0xA0 | c)) == kE2m1[c]);
  }
}

TEST_CASE("e8m0: exact powers of two from 2^-127 to 2^127, NaN for 0xFF") {
  CHECK(kf::e8m0_value(0x00) == 5.877471754111438e-39);  // 2^-127
  CHECK(kf::e8m0_value(0x7F) == 1.0);
  CHECK(kf::e8m0_value(0x80) == 2.0);
  CHECK(kf::e8m0_value(0xFE) == 1.7014118346046923e38);  // 2^127
  CHECK(std::isnan(kf::e8m0_value(0xFF)));
  for (int s = 0; s < 255; ++s) {
    CAPTURE(s);
    CHECK(kf::e8m0_value(static_cast<uint8_t>(s)) == std::pow(2.0, s - 127));
  }
}

TEST_CASE("pack: low nibble is the even element; random codes round-trip") {
  CHECK(kf::mxfp4_pack({0x1, 0x2, 0xF, 0x0}) == std::vector<uint8_t>{0x21, 0x0F});
  CHECK(kf::mxfp4_unpack({0x21, 0x0F}) == std::vector<uint8_t>{0x1, 0x2, 0xF, 0x0});
  std::mt19937_64 rng(fresh_seed());
  std::vector<uint8_t> codes(4096);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % 16);
  codes[0] = 0xF;  // never an all-zero buffer, whatever the draw
  const auto packed = kf::mxfp4_pack(codes);
  REQUIRE(packed.size() == 2048);
  for (size_t i = 0; i < codes.size(); ++i) REQUIRE(nibble(packed, static_cast<int64_t>(i)) == codes[i]);
  CHECK(kf::mxfp4_unpack(packed) == codes);
  std::vector<uint8_t> bytes(1024);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  bytes[0] = 0xA5;
  CHECK(kf::mxfp4_pack(kf::mxfp4_unpack(bytes)) == bytes);
  CHECK(contains(error_of([] { kf::mxfp4_pack({1, 2, 3}); }), "3 codes"));
  CHECK(contains(error_of([] { kf::mxfp4_pack({1, 16}); }), "code 16"));
}

TEST_CASE("dequantize: each value times its block's scale; K and sizes checked") {
  std::mt19937_64 rng(fresh_seed());
  const int64_t n = 3, k = 96;
  std::vector<uint8_t> packed(n * k / 2), scales(n * k / 32);
  for (auto& b : packed) b = static_cast<uint8_t>(rng() | 0x11);  // no all-zero byte
  for (auto& s : scales) s = static_cast<uint8_t>(rng() % 255);
  scales[0] = 0x00, scales[1] = 0xFE;  // the extremes
  const auto w = kf::mxfp4_dequantize(packed, scales, n, k);
  REQUIRE(w.size() == static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const double want = kE2m1[nibble(packed, r * k + c)] * std::ldexp(1.0, scales[r * 3 + c / 32] - 127);
      REQUIRE(w[r * k + c] == want);
    }
  scales[2] = 0xFF;
  CHECK(std::isnan(kf::mxfp4_dequantize(packed, scales, n, k)[64]));
  CHECK(contains(error_of([&] { kf::mxfp4_dequantize(packed, scales, n, 48); }), "K 48"));
  CHECK(contains(error_of([&] { kf::mxfp4_dequantize(packed, scales, 4, k); }), "packed weight has 144"));
  scales.pop_back();
  CHECK(contains(error_of([&] { kf::mxfp4_dequantize(packed, scales, n, k); }), "scales has 8"));
}

TEST_CASE("MoE gemm1 and gemm2 against a naive loop: idle expert, last expert, ids routed nowhere") {
  std::mt19937_64 rng(fresh_seed());
  const int64_t e = 4, top_k = 2, t = 5, n = 16, k = 64;
  for (int gemm : {1, 2}) {
    CAPTURE(gemm);
    kf::Mxfp4MoeProblem p = random_problem(gemm, e, top_k, t, n, k, rng);
    for (auto& id : p.topk_ids)
      if (id == 1) id = 2;  // expert 1 gets no token
    p.topk_ids[(t - 1) * top_k + 1] = static_cast<int32_t>(e - 1);  // the last token to the last expert
    p.topk_ids[1] = -1;                                              // another rank's expert
    p.topk_ids[2] = static_cast<int32_t>(e);                         // just past the last expert
    const auto y = kf::mxfp4_moe_reference(p);
    if (gemm == 1) {
      REQUIRE(y.size() == static_cast<size_t>(t * top_k * n));
      for (int64_t s = 0; s < t * top_k; ++s)
        for (int64_t c = 0; c < n; ++c) {
          const int32_t id = p.topk_ids[s];
          const double want = id < 0 || id >= e ? 0.0 : dot_row(p, s / top_k, id, c);
          REQUIRE(y[s * n + c] == doctest::Approx(want).epsilon(1e-12));
        }
    } else {
      REQUIRE(y.size() == static_cast<size_t>(t * n));
      for (int64_t tok = 0; tok < t; ++tok)
        for (int64_t c = 0; c < n; ++c) {
          double want = 0;
          for (int64_t j = 0; j < top_k; ++j) {
            const int32_t id = p.topk_ids[tok * top_k + j];
            if (id >= 0 && id < e) want += p.topk_weights[tok * top_k + j] * dot_row(p, tok * top_k + j, id, c);
          }
          REQUIRE(y[tok * n + c] == doctest::Approx(want).epsilon(1e-12));
        }
    }
  }
}

TEST_CASE("MoE gemm1 SwiGLU: interleaved gate/up, gate clamped above only, up clamped both ways") {
  std::mt19937_64 rng(fresh_seed());
  kf::Mxfp4MoeProblem p = random_problem(1, 2, 1, 1, 8, 32, rng);
  std::fill(p.weight.begin(), p.weight.end(), 0);  // W = 0: the pre-activations are the bias
  p.topk_ids = {1};
  p.swiglu = true;
  // Expert 1's columns: (gate, up) pairs beyond and within the limit 7.
  const float pairs[4][2] = {{10.f, 9.f}, {10.f, -9.f}, {-20.f, 30.f}, {0.5f, -0.25f}};
  for (int i = 0; i < 4; ++i) p.bias[8 + 2 * i] = pairs[i][0], p.bias[8 + 2 * i + 1] = pairs[i][1];
  const auto y = kf::mxfp4_moe_reference(p);
  REQUIRE(y.size() == 4);
  CHECK(y[0] == doctest::Approx(8.0 * 7.0 / (1.0 + std::exp(-1.702 * 7.0))).epsilon(1e-14));   // (7 + 1) * 7 * sig
  CHECK(y[1] == doctest::Approx(-6.0 * 7.0 / (1.0 + std::exp(-1.702 * 7.0))).epsilon(1e-14));  // (-7 + 1) * 7 * sig
  CHECK(y[2] == doctest::Approx(8.0 * -20.0 / (1.0 + std::exp(1.702 * 20.0))).epsilon(1e-12));
  CHECK(y[2] < 0);  // the gate is not clamped below: -20 stays -20
  CHECK(y[3] == doctest::Approx(0.75 * 0.5 / (1.0 + std::exp(-0.851))).epsilon(1e-14));
  p.swiglu_limit = 100;  // no clamp: (9 + 1) * 10 * sig(17.02)
  CHECK(kf::mxfp4_moe_reference(p)[0] == doctest::Approx(100.0 / (1.0 + std::exp(-17.02))).epsilon(1e-14));
}

TEST_CASE("MoE errors name the bad value") {
  std::mt19937_64 rng(fresh_seed());
  const kf::Mxfp4MoeProblem good = random_problem(1, 4, 2, 3, 8, 64, rng);
  auto p = good;
  p.k = 48;
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "K 48"));
  p = good;
  p.scales.pop_back();
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "scales has 63"));
  p = good;
  p.topk_ids.push_back(0);
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "topk_ids has 7"));
  p = good;
  p.x.resize(6 * 64);  // gemm2-sized x for gemm1
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "x has 384"));
  p = good;
  p.bias.resize(5);
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "bias has 5"));
  p = good;
  p.gemm = 2;
  p.x.resize(6 * 64);
  p.topk_weights.clear();
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "topk_weights has 0"));
  p.topk_weights.assign(6, 1.f);
  p.swiglu = true;
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "not gemm2"));
  p = good;
  p.swiglu = true;
  p.n = 9;
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "N 9 is odd"));
  p = good;
  p.gemm = 3;
  CHECK(contains(error_of([&] { kf::mxfp4_moe_reference(p); }), "gemm 3"));
  p = good;
  p.bias.clear();  // no bias is allowed
  CHECK(error_of([&] { kf::mxfp4_moe_reference(p); }).empty());
}

}  // TEST_SUITE
