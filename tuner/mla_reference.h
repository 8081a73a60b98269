// Float64 host reference of DeepSeek-V3.2-style sparse MLA decode, and the split-KV
// partials and combine a split kernel computes. No GPU API: the CPU tests check it, and
// future kernels and the tuner compare against it.
//
// Per query row q and head h, over the keys K(q) that q attends:
//   logit_j = scale * (q[q, h, :576] . kv[j, :576])
//   o[q, h] = sum_j softmax(logit)_j * kv[j, :512]     (v = the latent part of the row)
//   lse[q, h] = log(sum_j exp(logit_j))                 (natural log)
// K(q) is the key list, in this order: indices[q, 0 .. topk) then, when given, the extra
// rows extra_start[q] .. extra_start[q] + extra_count[q) (always attended, e.g. a sliding
// window). Defined behaviour:
//   - index -1 is an unused slot and contributes nothing; topk may exceed the number of
//     valid rows (the tail is -1), and may exceed S;
//   - a row listed twice (duplicate indices, or an extra row also in indices) is two keys:
//     gather-based kernels load each slot and count it, so the reference does too;
//   - a query with no key at all: o = 0, lse = -inf (no NaN from 0/0);
//   - an index >= S or < -1, or an extra range outside [0, S): kf::Error naming it.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace kf {

constexpr int64_t kMlaLatentDim = 512;  // the value / latent part of a KV row
constexpr int64_t kMlaRopeDim = 64;
constexpr int64_t kMlaHeadDim = kMlaLatentDim + kMlaRopeDim;  // 576: q and k rows

struct MlaDecodeProblem {
  int64_t queries = 0, heads = 0, kv_rows = 0, topk = 0;  // Q, H, S, topk
  std::vector<uint16_t> q;        // [Q, H, 576] 16-bit bits (bf16, or fp16 when !bf16)
  std::vector<uint16_t> kv;       // [S, 576] 16-bit bits, shared by all heads
  std::vector<int32_t> indices;   // [Q, topk], -1 = unused
  double softmax_scale = 0;
  std::vector<int32_t> extra_start, extra_count;  // [Q] each, or both empty for none
  bool bf16 = true;  // q and kv hold bf16 bits, else fp16
};

struct MlaDecodeResult {
  std::vector<double> o;    // [Q, H, 512]
  std::vector<double> lse;  // [Q, H]; -inf where no key
};

// Throws kf::Error naming the first bad size, index or extra range.
void check_mla_problem(const MlaDecodeProblem& p);

// The KV rows query q attends, in key-list order, duplicates kept, -1 slots dropped.
std::vector<int64_t> mla_keys(const MlaDecodeProblem& p, int64_t q);

MlaDecodeResult mla_decode_reference(const MlaDecodeProblem& p);

// Split-KV: query q's slot list (its topk index slots, -1 ones included, then its extra
// rows; length topk + extra_count[q]) is cut into `splits` contiguous parts, part i
// covering positions [floor(i * L / splits), floor((i + 1) * L / splits)). A part with
// no valid key is o = 0, lse = -inf. splits may exceed L (some parts are empty).
std::pair<int64_t, int64_t> mla_split_range(int64_t slots, int split, int splits);
MlaDecodeResult mla_decode_split(const MlaDecodeProblem& p, int split, int splits);

// The exact combine of partials of one problem: lse = log(sum_i exp(lse_i)),
// o = sum_i exp(lse_i - lse) * o_i; all parts empty -> o = 0, lse = -inf.
// Throws kf::Error when there are no parts or their sizes differ.
MlaDecodeResult mla_combine(const std::vector<MlaDecodeResult>& parts);

}  // namespace kf
