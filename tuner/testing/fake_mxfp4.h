// The mxfp4_moe kernels of the CPU stand-ins for the GPU libraries (fake_libcuda.cpp,
// fake_libamdhip64.cpp), and moe_align for the HIP one: a launch's grid and every buffer
// it touches checked against templates/mxfp4_moe (tiling.h's grid over w4a16_moe/launch.h's
// sorted capacity, args.h's sizes), and on a verification run (y[0] still poisoned) the
// rows of the sorted slots computed in float from the MXFP4 weights, bias, SwiGLU (gemm1
// _swiglu shapes) and routing weight (gemm2), as gemm.h does.
// Behaviours (the code object's behave=): wrong (outputs 1.25x), nan (the highest slot's
// last column left unwritten), padding (also writes the padding id's row T top_k),
// dropped (also writes row (T - 1) top_k: a slot the tuner's routing sends nowhere from
// T = 16), fault (illegal address). The caller charges the time.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fake_kernel.h"
#include "mxfp4_moe/args.h"
#include "w4a16_moe/args.h"

namespace fake_mxfp4 {

using fake_kernel::Outcome;

using fake_kernel::Env;

using fake_kernel::config_value;

inline int64_t capacity(int64_t t, int64_t top_k, int64_t experts, int64_t block_m) {  // w4a16_moe/launch.h
  const int64_t slots = t * top_k, hit = slots < experts ? slots : experts;
  return (slots + hit * (block_m - 1) + block_m - 1) / block_m * block_m;
}

// moe_align_any: each expert's slots (in descending order, so a caller must not assume
// one) padded with T top_k to whole blocks, and the optional zero_count values at zero
// set to 0 (grid: w4a16_moe/launch.h's align_blocks); behave wrong: num_padded one block
// too many.
inline Outcome align(const std::string& behave, const kf_moe_align_args& a, unsigned gx, unsigned threads,
                     const Env& env) {
  const int64_t slots = static_cast<int64_t>(a.t) * a.top_k, bm = a.block_m;
  const int64_t zero_count = a.zero ? a.zero_count : 0;
  const int64_t blocks = 1 + (zero_count + 32767) / 32768;
  if (gx != blocks || threads != 1024 || a.t < 1 || a.top_k < 1 || a.experts < 1 || bm < 1 || zero_count % 8)
    return {Outcome::fault, "bad moe_align_any launch"};
  if (zero_count > 0) {
    auto* z = reinterpret_cast<uint16_t*>(env.live(a.zero, zero_count * 2));
    if (!z) return {Outcome::fault, "moe_align_any: the buffer to zero too small"};
    for (int64_t i = 0; i < zero_count; ++i) z[i] = 0;
  }
  const int64_t cap = capacity(a.t, a.top_k, a.experts, bm);
  auto* ids = reinterpret_cast<const int32_t*>(env.live(a.topk_ids, slots * 4));
  auto* sorted = reinterpret_cast<int32_t*>(env.live(a.sorted_ids, cap * 4));
  auto* eids = reinterpret_cast<int32_t*>(env.live(a.expert_ids, cap / bm * 4));
  auto* npad = reinterpret_cast<int32_t*>(env.live(a.num_padded, 4));
  if (!ids || !sorted || !eids || !npad) return {Outcome::fault, "moe_align_any: a buffer too small"};
  int64_t pos = 0;
  for (int32_t e = 0; e < a.experts; ++e) {
    const int64_t start = pos;
    for (int64_t s = slots - 1; s >= 0; --s)
      if (ids[s] == e) sorted[pos++] = static_cast<int32_t>(s);
    while ((pos - start) % bm) sorted[pos++] = static_cast<int32_t>(slots);
    for (int64_t b = start / bm; b < pos / bm; ++b) eids[b] = e;
  }
  *npad = static_cast<int32_t>(pos + (behave == "wrong" ? bm : 0));
  return {};
}

inline float e2m1(uint32_t code) {
  static const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  return code & 8 ? -mag[code & 7] : mag[code & 7];
}

inline float swiglu(float gate, float up, float alpha, float limit) {
  const float g = std::min(gate, limit), u = std::max(-limit, std::min(up, limit));
  return (u + 1.f) * g / (1.f + std::exp(-alpha * g));
}

inline Outcome gemm(const std::string& name, const std::string& behave, const kf_mxfp4_moe_gemm_args& a, unsigned gx,
                    unsigned gy, unsigned gz, unsigned threads, unsigned wave, const Env& env) {
  const bool gemm1 = name.rfind("mxfp4_moe_gemm1", 0) == 0, swiglu_out = name.find("_swiglu_") != std::string::npos;
  const int bm = config_value(name, "bm"), bn = config_value(name, "bn"), warps = config_value(name, "w");
  const int64_t t = a.t, top_k = a.top_k, experts = a.experts, n = a.n, k = a.k, slots = t * top_k;
  if (t < 1 || top_k < 1 || experts < 1 || n < 1 || k < 32 || k % 32 || n % bn) return {Outcome::invalid, ""};
  const int64_t cols = swiglu_out ? n / 2 : n, cap = capacity(t, top_k, experts, bm);
  if (gx != n / bn || gy * bm != cap || gz != 1 || threads != static_cast<unsigned>(warps) * wave)
    return {Outcome::fault, name + ": grid is not mxfp4_moe/tiling.h's"};
  const int64_t extra_row = behave == "padding" ? 1 : 0;
  auto* x = reinterpret_cast<const uint16_t*>(env.live(a.x, (gemm1 ? t : slots) * k * 2));
  auto* w = reinterpret_cast<const uint8_t*>(env.live(a.weight, experts * n * k / 2));
  auto* sc = reinterpret_cast<const uint8_t*>(env.live(a.scales, experts * k / 32 * n));
  auto* bias = reinterpret_cast<const float*>(a.bias ? env.live(a.bias, experts * n * 4) : "");
  auto* tw = reinterpret_cast<const float*>(gemm1 ? "" : env.live(a.topk_weights, slots * 4));
  auto* sorted = reinterpret_cast<const int32_t*>(env.live(a.sorted_ids, cap * 4));
  auto* eids = reinterpret_cast<const int32_t*>(env.live(a.expert_ids, cap / bm * 4));
  auto* npad = reinterpret_cast<const int32_t*>(env.live(a.num_padded, 4));
  auto* y = reinterpret_cast<uint16_t*>(env.live(a.y, (slots + extra_row) * cols * 2));
  if (!x || !w || !sc || !bias || !tw || !sorted || !eids || !npad || !y)
    return {Outcome::fault, name + ": an MXFP4 buffer too small"};
  if (behave == "fault") return {Outcome::fault, name + ": injected"};
  if (*npad < 0 || *npad > cap) return {Outcome::fault, name + ": num_padded out of range"};
  if (y[0] != 0xffff) return {};  // a timed run: only the time counts
  int64_t highest = -1;
  // A decoded weight row, the block's x rows and its h, in float.
  std::vector<float> row(k), xb(static_cast<size_t>(bm) * k), hb(static_cast<size_t>(bm) * n);
  for (int64_t b = 0; b < *npad / bm; ++b) {
    const int64_t e = eids[b];
    if (e < 0 || e >= experts) return {Outcome::fault, name + ": bad expert id"};
    for (int64_t i = 0; i < bm; ++i) {
      const int64_t slot = sorted[b * bm + i];
      if (slot < 0 || slot > slots) return {Outcome::fault, name + ": bad sorted slot"};
      const int64_t xr = gemm1 ? slot / top_k : slot;
      for (int64_t kk = 0; kk < k && slot < slots; ++kk) xb[i * k + kk] = env.to_float(x[xr * k + kk], true);
    }
    for (int64_t c = 0; c < n; ++c) {  // each weight row decoded once per block
      for (int64_t kb = 0; kb < k / 32; ++kb) {
        const float scale = std::ldexp(1.f, static_cast<int>(sc[(e * (k / 32) + kb) * n + c]) - 127);
        for (int64_t kk = kb * 32; kk < kb * 32 + 32; ++kk)
          row[kk] = e2m1(w[(e * n + c) * (k / 2) + kk / 2] >> (4 * (kk % 2)) & 15u) * scale;
      }
      for (int64_t i = 0; i < bm; ++i) {
        const int64_t slot = sorted[b * bm + i];
        if (slot == slots) continue;  // padding
        float acc = 0.f;
        for (int64_t kk = 0; kk < k; ++kk) acc += xb[i * k + kk] * row[kk];
        hb[i * n + c] = acc + (a.bias ? bias[e * n + c] : 0.f);
      }
    }
    for (int64_t i = 0; i < bm; ++i) {
      const int64_t slot = sorted[b * bm + i];
      if (slot == slots) {
        if (behave == "padding") std::fill(y + slots * cols, y + (slots + 1) * cols, 0);
        continue;
      }
      for (int64_t c = 0; c < cols; ++c) {
        float v = swiglu_out ? swiglu(hb[i * n + 2 * c], hb[i * n + 2 * c + 1], a.swiglu_alpha, a.swiglu_limit)
                             : hb[i * n + c] * (gemm1 ? 1.f : tw[slot]);
        if (behave == "wrong") v *= 1.25f;
        y[slot * cols + c] = env.to_half(v, true);
      }
      highest = std::max(highest, slot);
    }
  }
  if (behave == "nan" && highest >= 0) y[highest * cols + cols - 1] = 0xffff;
  if (behave == "dropped") std::fill(y + (t - 1) * top_k * cols, y + ((t - 1) * top_k + 1) * cols, 0);
  return {};
}

}  // namespace fake_mxfp4
