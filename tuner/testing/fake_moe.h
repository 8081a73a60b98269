// The w4a16_moe GEMMs and moe_silu_mul of the CPU stand-ins for the GPU libraries
// (fake_libcuda.cpp, fake_libamdhip64.cpp): a launch's grid and every buffer it touches
// checked against templates/w4a16_moe/launch.h and args.h, and on a verification run (y[0]
// still poisoned) the rows of the sorted slots computed in float from the GPTQ weights
// (gemm2 scaled by the routing weight; a `_silu` gemm1 writes silu(gate) * up; a `_red`
// gemm2 adds each slot's row into its token's row, on every run since y is not poisoned
// then), as the templates do; moe_sum likewise. moe_align is fake_mxfp4.h's (both
// families route the same way).
// Behaviours (the code object's behave=): wrong (outputs + 0.25), padding (also writes the
// padding id's row T top_k), counters (leaves a split-K counter non-zero), fault (illegal
// address). A launch with non-zero split-K counters is reported in Outcome::complaint.
// The caller charges the time.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fake_mxfp4.h"
#include "w4a16_moe/args.h"

namespace fake_moe {

using fake_kernel::Env;

struct Outcome {
  fake_kernel::Outcome result;
  std::string complaint;  // something wrong the kernel would not notice (printed by the caller)
};

inline Outcome fail(const std::string& why) { return {{fake_kernel::Outcome::fault, why}, ""}; }

// moe_silu_mul_any_<dtype>: one thread per 8 outputs in blocks of 256.
inline Outcome silu_mul(const std::string& name, const std::string& behave, const kf_moe_silu_mul_args& a, unsigned gx,
                        unsigned threads, const Env& env) {
  const bool bf16 = name.find("_bf16") != std::string::npos;
  const int64_t rows = a.rows, n = a.n;
  if (rows < 1 || n < 8 || n % 8) return {{fake_kernel::Outcome::invalid, ""}, ""};
  if (threads != 256 || gx != static_cast<unsigned>((rows * n / 8 + 255) / 256))
    return fail(name + ": grid is not w4a16_moe/launch.h's");
  auto* x = reinterpret_cast<const uint16_t*>(env.live(a.x, rows * 2 * n * 2));
  auto* y = reinterpret_cast<uint16_t*>(env.live(a.y, rows * n * 2));
  if (!x || !y) return fail(name + ": x or y too small");
  if (y[0] == 0xffff)  // a verification run
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) {
        const float g = env.to_float(x[r * 2 * n + c], bf16), u = env.to_float(x[r * 2 * n + n + c], bf16);
        y[r * n + c] = env.to_half(g / (1.f + std::exp(-g)) * u + (behave == "wrong" ? 0.25f : 0.f), bf16);
      }
  return {};
}

// moe_sum_any_<dtype>: one thread per 8 outputs in blocks of 256; the routed slots of each
// token summed in j order.
inline Outcome sum(const std::string& name, const std::string& behave, const kf_moe_sum_args& a, unsigned gx,
                   unsigned threads, const Env& env) {
  const bool bf16 = name.find("_bf16") != std::string::npos;
  const int64_t t = a.t, top_k = a.top_k, n = a.n;
  if (t < 1 || top_k < 1 || n < 8 || n % 8) return {{fake_kernel::Outcome::invalid, ""}, ""};
  if (threads != 256 || gx != static_cast<unsigned>((t * n / 8 + 255) / 256))
    return fail(name + ": grid is not w4a16_moe/launch.h's");
  auto* x = reinterpret_cast<const uint16_t*>(env.live(a.x, t * top_k * n * 2));
  auto* ids = reinterpret_cast<const int32_t*>(env.live(a.topk_ids, t * top_k * 4));
  auto* y = reinterpret_cast<uint16_t*>(env.live(a.y, t * n * 2));
  if (!x || !ids || !y) return fail(name + ": x, topk_ids or y too small");
  if (y[0] == 0xffff)  // a verification run
    for (int64_t r = 0; r < t; ++r)
      for (int64_t c = 0; c < n; ++c) {
        float acc = behave == "wrong" ? 0.25f : 0.f;
        for (int64_t j = 0; j < top_k; ++j)
          if (ids[r * top_k + j] >= 0 && ids[r * top_k + j] < a.experts)
            acc += env.to_float(x[(r * top_k + j) * n + c], bf16);
        y[r * n + c] = env.to_half(acc, bf16);
      }
  return {};
}

// w4a16_moe_gemm1/2: the decode grid (N / bn, split_k, capacity / bm) or the prefill one
// (N / bn, capacity / bm, split_k).
inline Outcome gemm(const std::string& name, const std::string& behave, const kf_moe_gemm_args& a, unsigned gx,
                    unsigned gy, unsigned gz, const Env& env) {
  const bool bf16 = name.find("_bf16_") != std::string::npos, asym = name.find("_asym") != std::string::npos;
  const bool gemm1 = name.find("w4a16_moe_gemm1") == 0, prefill = name.find("_prefill_") != std::string::npos;
  const int64_t t = a.t, top_k = a.top_k, e_count = a.experts, n = a.n, k = a.k, g = a.group, slots = t * top_k;
  const int sk = fake_kernel::config_value(name, "sk"), bm = fake_kernel::config_value(name, "bm");
  const int bn = fake_kernel::config_value(name, "bn");
  if (t < 1 || n < 1 || k < 1 || g < 1 || k % g) return {{fake_kernel::Outcome::invalid, ""}, ""};
  const bool silu = name.size() > 5 && name.compare(name.size() - 5, 5, "_silu") == 0;
  const bool red = !gemm1 && name.size() > 4 && name.compare(name.size() - 4, 4, "_red") == 0;
  const int64_t cols = silu ? n / 2 : n;  // of y
  const int64_t y_rows = red ? t : slots + (behave == "padding");
  const int64_t cap = fake_mxfp4::capacity(t, top_k, e_count, bm);
  if (gx != n / bn || (prefill ? gy : gz) * bm != cap || (prefill ? gz : gy) != static_cast<unsigned>(sk))
    return fail(name + ": grid is not w4a16_moe/launch.h's");
  auto* x = reinterpret_cast<const uint16_t*>(env.live(a.x, (gemm1 ? t : slots) * k * 2));
  auto* qw = reinterpret_cast<const uint32_t*>(env.live(a.qweight, e_count * k / 8 * n * 4));
  auto* sc = reinterpret_cast<const uint16_t*>(env.live(a.scales, e_count * k / g * n * 2));
  const char* present = "";  // a non-null stand-in for buffers the kernel does not read
  auto* qz = reinterpret_cast<const uint32_t*>(asym ? env.live(a.qzeros, e_count * k / g * n / 8 * 4) : present);
  auto* tw = reinterpret_cast<const float*>(gemm1 ? present : env.live(a.topk_weights, slots * 4));
  auto* sorted = reinterpret_cast<const int32_t*>(env.live(a.sorted_ids, cap * 4));
  auto* eids = reinterpret_cast<const int32_t*>(env.live(a.expert_ids, cap / bm * 4));
  auto* npad = reinterpret_cast<const int32_t*>(env.live(a.num_padded, 4));
  auto* y = reinterpret_cast<uint16_t*>(env.live(a.y, y_rows * cols * 2));
  if (!x || !qw || !sc || !qz || !tw || !sorted || !eids || !npad || !y) return fail(name + ": a MoE buffer too small");
  Outcome out;
  int* counters = nullptr;
  if (sk > 1) {
    if (!env.live(a.workspace, sk * cap * n * 4)) return fail(name + ": split-K workspace too small");
    counters = reinterpret_cast<int*>(env.live(a.counters, (n / bn) * (cap / bm) * 4));
    if (!counters) return fail(name + ": split-K counters too small");
    for (int64_t i = 0; i < (n / bn) * (cap / bm); ++i)
      if (counters[i] != 0) out.complaint = name + ": launched with non-zero split-K counters";
  }
  if (behave == "fault") return fail(name + ": injected");
  if (*npad < 0 || *npad > cap) return fail(name + ": num_padded out of range");
  if (y[0] == 0xffff || red)  // a verification run (a _red kernel: every run)
    for (int64_t i = 0; i < *npad; ++i) {
      const int64_t slot = sorted[i], e = eids[i / bm];
      if (slot >= slots) {
        if (red) continue;
        if (behave == "padding")
          for (int64_t c = 0; c < cols; ++c) y[slots * cols + c] = 0;
        continue;
      }
      if (slot < 0 || e < 0 || e >= e_count) return fail(name + ": bad sorted slot or expert id");
      const int64_t row = gemm1 ? slot / top_k : slot;
      std::vector<float> h1(n);  // the product's row, for the fused SiLU epilogue
      for (int64_t c = 0; c < n; ++c) {
        float acc = 0;
        for (int64_t kk = 0; kk < k; ++kk) {
          const int64_t grp = kk / g;
          const uint32_t q = (qw[(e * (k / 8) + kk / 8) * n + c] >> (4 * (kk % 8))) & 15u;
          const uint32_t z = asym ? (qz[(e * (k / g) + grp) * (n / 8) + c / 8] >> (4 * (c % 8))) & 15u : 8u;
          acc += env.to_float(x[row * k + kk], bf16) * (static_cast<float>(q) - z) *
                 env.to_float(sc[(e * (k / g) + grp) * n + c], bf16);
        }
        if (!gemm1) acc *= tw[slot];
        h1[c] = acc;
        if (red)
          y[slot / top_k * n + c] =
              env.to_half(env.to_float(y[slot / top_k * n + c], bf16) + acc + (behave == "wrong" ? 0.25f : 0.f), bf16);
        else if (!silu)
          y[slot * n + c] = env.to_half(acc + (behave == "wrong" ? 0.25f : 0.f), bf16);
      }
      for (int64_t c = 0; silu && c < cols; ++c)
        y[slot * cols + c] = env.to_half(h1[c] / (1.f + std::exp(-h1[c])) * (h1[cols + c] + (behave == "wrong")), bf16);
    }
  if (behave == "counters" && counters) counters[0] = 1;
  return out;
}

}  // namespace fake_moe
