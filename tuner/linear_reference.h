// Host side of the w4a16_linear checks: random GPTQ tensors and a float64 reference.
// Kept free of any GPU API so the CPU tests can check it too.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "linear_family.h"

namespace kf {

struct LinearProblem {
  LinearShape shape;
  int64_t m = 0;
  std::vector<uint16_t> x;        // [m, k] 16-bit (bf16 or fp16 bits)
  std::vector<uint32_t> qweight;  // [k/8, n]
  std::vector<uint16_t> scales;   // [k/g, n]
  std::vector<uint32_t> qzeros;   // [k/g, n/8] (asym only; empty otherwise)
};

float half_bits_to_float(uint16_t h, bool bf16);
uint16_t float_to_half_bits(float f, bool bf16);  // round to nearest even

// Fresh random tensors: x ~ U(-1, 1), q and zero points uniform over 0..15, scales
// ~ U(0.5, 1.5) / (2 sqrt(K)) so that outputs are O(1).
LinearProblem make_linear_problem(const LinearShape& shape, int64_t m, std::mt19937_64& rng);

// The dequantised weight W[n][k] = (q - z) * s, exactly (float64).
double dequant_weight(const LinearProblem& p, int64_t n, int64_t k);

// y[m, n] in float64, using `threads` host threads.
std::vector<double> linear_reference(const LinearProblem& p, int threads);

// ||y - ref|| / ||ref|| over the first m rows; NaN/Inf in y -> +Inf.
double normalised_error(const std::vector<uint16_t>& y, const std::vector<double>& ref, int64_t m, int64_t n,
                        bool bf16);

// Tolerance on normalised_error: fp32 accumulation with one rounding of the weights and
// one of the output to the 16-bit type (bf16: 8 mantissa bits, fp16: 11).
inline double linear_tolerance(bool bf16) { return bf16 ? 8e-3 : 2e-3; }

}  // namespace kf
