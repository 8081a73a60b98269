// Float64 host reference for MXFP4 (OCP Microscaling FP4) weights and the MoE GEMMs
// that use them (gpt-oss style experts). No GPU API: the CPU tests check it, and
// future kernels and the tuner compare against it.
//
// Layout of one MXFP4 weight matrix W [N, K] (K along the reduction):
//   packed [N, K/2] bytes: element k of a row is the low nibble of byte k/2 when k is
//                          even, the high nibble when odd (gpt-oss checkpoints' order);
//   scales [N, K/32] e8m0: one byte per 32 consecutive k, shared exponent 2^(s - 127);
//   W[n, k] = e2m1(code) * 2^(scales[n, k/32] - 127).
#pragma once
#include <cstdint>
#include <vector>

namespace kf {

constexpr int64_t kMxfp4Block = 32;  // values per e8m0 scale

// e2m1: bit 3 sign, bits 2..1 exponent (bias 1), bit 0 mantissa; codes 0..7 are
// 0, 0.5, 1, 1.5, 2, 3, 4, 6 and 8..15 their negatives (8 is -0). Only the low 4 bits count.
double e2m1_value(uint8_t code);
// 2^(s - 127) exactly (2^-127 .. 2^127); NaN for 0xFF.
double e8m0_value(uint8_t s);

// Codes [.., K] (0..15, an even count) <-> packed bytes, two per byte, low nibble first.
std::vector<uint8_t> mxfp4_pack(const std::vector<uint8_t>& codes);
std::vector<uint8_t> mxfp4_unpack(const std::vector<uint8_t>& packed);

// W [N, K] row-major in float64. Throws kf::Error when K is not a multiple of 32 or a
// buffer's size does not match N and K.
std::vector<double> mxfp4_dequantize(const std::vector<uint8_t>& packed, const std::vector<uint8_t>& scales,
                                     int64_t n, int64_t k);

// gpt-oss's clamped SwiGLU, on columns interleaved as [gate0, up0, gate1, up1, ...]:
//   gate' = min(gate, limit)              (no lower clamp)
//   up'   = clamp(up, -limit, limit)
//   out   = (up' + 1) * gate' * sigmoid(alpha * gate')
// This is the formula and the interleaved layout of openai/gpt-oss's torch reference
// (gpt_oss/torch/model.py, swiglu(): x[..., ::2] gate, x[..., 1::2] linear, alpha 1.702,
// limit from the config's swiglu_limit, 7.0), applied after the gemm1 bias as there.
double gpt_oss_swiglu(double gate, double up, double alpha, double limit);

// A gather-matmul-scatter MoE GEMM over T tokens routed to top_k of E MXFP4 experts;
// slot s = t * top_k + j goes to expert topk_ids[s]. Expert ids outside [0, E) (e.g. -1
// for an expert on another rank) route nowhere, as in the w4a16 MoE family
// (templates/w4a16_moe/args.h): no error, the slot contributes nothing.
struct Mxfp4MoeProblem {
  int gemm = 1;  // 1: gate_up, x [T, K] per token; 2: down, x [T * top_k, K] per slot
  int64_t experts = 0, top_k = 0, t = 0;
  int64_t n = 0, k = 0;                // per expert W [N, K]
  std::vector<uint8_t> weight;         // [E, N, K/2] packed e2m1
  std::vector<uint8_t> scales;         // [E, N, K/32] e8m0
  std::vector<float> bias;             // [E, N], or empty for none
  std::vector<uint16_t> x;             // bf16 bits
  std::vector<int32_t> topk_ids;       // [T, top_k]
  std::vector<float> topk_weights;     // [T, top_k]; gemm2 only
  bool swiglu = false;                 // gemm1 only: the epilogue above, N even
  double swiglu_alpha = 1.702, swiglu_limit = 7.0;
};

// gemm1: y [T * top_k, N] (N / 2 with swiglu), row s = x[s / top_k] . W[e]^T + b[e]
//        (then swiglu); rows of slots routed nowhere are 0.
// gemm2: y [T, N], y[t] = sum over routed j of topk_weights[t, j] * (x[s] . W[e]^T + b[e]):
//        the bias inside the weighting, as gpt-oss adds mlp2_bias before the weighted sum.
// Throws kf::Error naming the bad value: K not a multiple of 32, sizes that do not match,
// swiglu on gemm2 or with an odd N, gemm not 1 or 2.
std::vector<double> mxfp4_moe_reference(const Mxfp4MoeProblem& p);

}  // namespace kf
