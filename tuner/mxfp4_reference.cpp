#include "mxfp4_reference.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "error.h"
#include "linear_reference.h"

namespace kf {

namespace {

void expect_size(const char* what, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want)
    throw Error(std::string(what) + " has " + std::to_string(got) + " elements, expected " + std::to_string(want));
}

void check_k(int64_t k) {
  if (k <= 0 || k % kMxfp4Block != 0)
    throw Error("K " + std::to_string(k) + " is not a positive multiple of 32 (one e8m0 scale per 32 values)");
}

}  // namespace

double e2m1_value(uint8_t code) {
  // Decoded from the bit fields rather than a table, so the tests' literal table checks it.
  const int e = (code >> 1) & 3, m = code & 1;
  const double mag = e == 0 ? 0.5 * m : std::ldexp(1.0 + 0.5 * m, e - 1);
  return (code & 8) ? -mag : mag;
}

double e8m0_value(uint8_t s) { return s == 0xFF ? NAN : std::ldexp(1.0, static_cast<int>(s) - 127); }

std::vector<uint8_t> mxfp4_pack(const std::vector<uint8_t>& codes) {
  if (codes.size() % 2) throw Error("mxfp4_pack: " + std::to_string(codes.size()) + " codes, expected an even count");
  std::vector<uint8_t> out(codes.size() / 2);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] > 15) throw Error("mxfp4_pack: code " + std::to_string(codes[i]) + " at " + std::to_string(i) +
                                   " does not fit 4 bits");
    out[i / 2] |= static_cast<uint8_t>(codes[i] << (4 * (i % 2)));
  }
  return out;
}

std::vector<uint8_t> mxfp4_unpack(const std::vector<uint8_t>& packed) {
  std::vector<uint8_t> out(packed.size() * 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = (packed[i / 2] >> (4 * (i % 2))) & 15;
  return out;
}

std::vector<double> mxfp4_dequantize(const std::vector<uint8_t>& packed, const std::vector<uint8_t>& scales,
                                     int64_t n, int64_t k) {
  check_k(k);
  if (n < 0) throw Error("N " + std::to_string(n) + " is negative");
  expect_size("packed weight", packed.size(), n * k / 2);
  expect_size("scales", scales.size(), n * k / kMxfp4Block);
  std::vector<double> w(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      w[r * k + c] = e2m1_value(packed[(r * k + c) / 2] >> (4 * (c % 2))) *
                     e8m0_value(scales[r * (k / kMxfp4Block) + c / kMxfp4Block]);
  return w;
}

double gpt_oss_swiglu(double gate, double up, double alpha, double limit) {
  const double g = std::min(gate, limit), u = std::max(-limit, std::min(up, limit));
  return (u + 1.0) * g / (1.0 + std::exp(-alpha * g));
}

std::vector<double> mxfp4_moe_reference(const Mxfp4MoeProblem& p) {
  if (p.gemm != 1 && p.gemm != 2)
    throw Error("gemm " + std::to_string(p.gemm) + " is neither 1 (gate_up) nor 2 (down)");
  check_k(p.k);
  if (p.experts < 1 || p.top_k < 1 || p.t < 0 || p.n < 1)
    throw Error("MoE sizes E " + std::to_string(p.experts) + ", top_k " + std::to_string(p.top_k) + ", T " +
                std::to_string(p.t) + ", N " + std::to_string(p.n) +
                ": E, top_k and N must be positive, T not negative");
  if (p.swiglu && p.gemm != 1) throw Error("swiglu is gemm1's epilogue, not gemm2's");
  if (p.swiglu && p.n % 2)
    throw Error("swiglu needs interleaved gate/up columns, N " + std::to_string(p.n) + " is odd");
  const int64_t slots = p.t * p.top_k;
  expect_size("weight", p.weight.size(), p.experts * p.n * p.k / 2);
  expect_size("scales", p.scales.size(), p.experts * p.n * p.k / kMxfp4Block);
  if (!p.bias.empty()) expect_size("bias", p.bias.size(), p.experts * p.n);
  expect_size("x", p.x.size(), (p.gemm == 1 ? p.t : slots) * p.k);
  expect_size("topk_ids", p.topk_ids.size(), slots);
  if (p.gemm == 2) expect_size("topk_weights", p.topk_weights.size(), slots);

  // One pre-activation row [N] per slot; each used expert is dequantised once.
  std::vector<double> h(slots * p.n, 0.0);
  const int64_t wbytes = p.n * p.k / 2, sbytes = p.n * p.k / kMxfp4Block;
  for (int64_t e = 0; e < p.experts; ++e) {
    std::vector<int64_t> mine;
    for (int64_t s = 0; s < slots; ++s)
      if (p.topk_ids[s] == e) mine.push_back(s);
    if (mine.empty()) continue;
    const std::vector<uint8_t> we(p.weight.begin() + e * wbytes, p.weight.begin() + (e + 1) * wbytes);
    const std::vector<uint8_t> se(p.scales.begin() + e * sbytes, p.scales.begin() + (e + 1) * sbytes);
    const std::vector<double> w = mxfp4_dequantize(we, se, p.n, p.k);
    std::vector<double> xr(p.k);
    for (int64_t s : mine) {
      const int64_t row = p.gemm == 1 ? s / p.top_k : s;
      for (int64_t c = 0; c < p.k; ++c) xr[c] = half_bits_to_float(p.x[row * p.k + c], true);
      for (int64_t r = 0; r < p.n; ++r) {
        double acc = p.bias.empty() ? 0.0 : static_cast<double>(p.bias[e * p.n + r]);
        for (int64_t c = 0; c < p.k; ++c) acc += xr[c] * w[r * p.k + c];
        h[s * p.n + r] = acc;
      }
    }
  }
  if (p.gemm == 1 && !p.swiglu) return h;
  if (p.gemm == 1) {
    const int64_t half = p.n / 2;
    std::vector<double> y(slots * half, 0.0);
    for (int64_t s = 0; s < slots; ++s) {
      if (p.topk_ids[s] < 0 || p.topk_ids[s] >= p.experts) continue;  // routed nowhere: stays 0
      for (int64_t i = 0; i < half; ++i)
        y[s * half + i] = gpt_oss_swiglu(h[s * p.n + 2 * i], h[s * p.n + 2 * i + 1], p.swiglu_alpha, p.swiglu_limit);
    }
    return y;
  }
  std::vector<double> y(p.t * p.n, 0.0);
  for (int64_t s = 0; s < slots; ++s) {
    if (p.topk_ids[s] < 0 || p.topk_ids[s] >= p.experts) continue;
    for (int64_t r = 0; r < p.n; ++r)
      y[(s / p.top_k) * p.n + r] += static_cast<double>(p.topk_weights[s]) * h[s * p.n + r];
  }
  return y;
}

}  // namespace kf
