#include "linear_reference.h"

#include <cmath>
#include <cstring>
#include <thread>

namespace kf {

float half_bits_to_float(uint16_t h, bool bf16) {
  if (bf16) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 31, mant = h & 1023;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mant | 1024), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

uint16_t float_to_half_bits(float f, bool bf16) {
  if (bf16) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  // fp16 through the compiler's conversion (round to nearest even).
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

LinearProblem make_linear_problem(const LinearShape& s, int64_t m, std::mt19937_64& rng) {
  LinearProblem p;
  p.shape = s;
  p.m = m;
  const int64_t g = s.effective_group();
  std::uniform_real_distribution<float> ux(-1.f, 1.f);
  std::uniform_real_distribution<float> us(0.5f, 1.5f);
  std::uniform_int_distribution<uint32_t> u32;
  const float scale_norm = 1.f / (2.f * std::sqrt(static_cast<float>(s.k)));
  p.x.resize(m * s.k);
  for (auto& v : p.x) v = float_to_half_bits(ux(rng), s.bf16);
  p.qweight.resize(s.k / 8 * s.n);
  for (auto& v : p.qweight) v = u32(rng);
  p.scales.resize(s.k / g * s.n);
  for (auto& v : p.scales) v = float_to_half_bits(us(rng) * scale_norm, s.bf16);
  if (s.asym) {
    p.qzeros.resize(s.k / g * s.n / 8);
    for (auto& v : p.qzeros) v = u32(rng);
  }
  return p;
}

double dequant_weight(const LinearProblem& p, int64_t n, int64_t k) {
  const LinearShape& s = p.shape;
  const int64_t grp = k / s.effective_group();
  const uint32_t q = (p.qweight[(k / 8) * s.n + n] >> (4 * (k % 8))) & 15u;
  const uint32_t z = s.asym ? (p.qzeros[grp * (s.n / 8) + n / 8] >> (4 * (n % 8))) & 15u : 8u;
  const double scale = half_bits_to_float(p.scales[grp * s.n + n], s.bf16);
  return (static_cast<double>(q) - static_cast<double>(z)) * scale;
}

std::vector<double> linear_reference(const LinearProblem& p, int threads) {
  const LinearShape& s = p.shape;
  std::vector<double> y(p.m * s.n, 0.0);
  std::vector<double> xd(p.m * s.k);
  for (size_t i = 0; i < xd.size(); ++i) xd[i] = half_bits_to_float(p.x[i], s.bf16);
  // Each thread owns a slice of N and dequantises its weights once.
  auto work = [&](int64_t n_begin, int64_t n_end) {
    std::vector<double> w(s.k);
    for (int64_t n = n_begin; n < n_end; ++n) {
      for (int64_t k = 0; k < s.k; ++k) w[k] = dequant_weight(p, n, k);
      for (int64_t r = 0; r < p.m; ++r) {
        const double* xr = &xd[r * s.k];
        double acc = 0;
        for (int64_t k = 0; k < s.k; ++k) acc += xr[k] * w[k];
        y[r * s.n + n] = acc;
      }
    }
  };
  std::vector<std::thread> pool;
  const int64_t chunk = (s.n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(work, std::min(s.n, t * chunk), std::min(s.n, (t + 1) * chunk));
  for (auto& t : pool) t.join();
  return y;
}

double normalised_error(const std::vector<uint16_t>& y, const std::vector<double>& ref, int64_t m, int64_t n,
                        bool bf16) {
  double err = 0, norm = 0;
  for (int64_t i = 0; i < m * n; ++i) {
    const double v = half_bits_to_float(y[i], bf16);
    if (!std::isfinite(v)) return INFINITY;
    err += (v - ref[i]) * (v - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(err / (norm > 0 ? norm : 1));
}

}  // namespace kf
