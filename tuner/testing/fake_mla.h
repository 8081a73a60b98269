// The sparse MLA kernels of the CPU stand-ins for the GPU libraries (fake_libcuda.cpp,
// fake_libamdhip64.cpp): a launch's grid and every buffer it touches checked against
// templates/sparse_mla (launch.h's grids, args.h's sizes), and on a verification run
// (its output still poisoned) o and lse, or a split kernel's partials, computed in float
// from the slots; the combine's arithmetic is combine.h's (a NaN partial gives NaN).
// Behaviours (the code object's behave=): wrong (outputs off by 0.25), nan (decode: the
// last query's last head left unwritten), overrun (decode: also writes the query after
// the last), fault (illegal address). The caller charges the time.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fake_kernel.h"
#include "sparse_mla/args.h"

namespace fake_mla {

constexpr int64_t kDim = 576, kOut = 512;

using fake_kernel::Outcome;

using fake_kernel::Env;

using fake_kernel::config_value;

inline bool poisoned(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u == 0xffffffffu;
}

inline char* unused_buffer() {  // stands in for a buffer a launch does not use (non-null, never touched)
  static char none[16];
  return none;
}

inline Outcome decode(const std::string& name, const std::string& behave, const kf_mla_decode_args& a, unsigned gx,
                      unsigned gy, unsigned gz, unsigned threads, unsigned wave, const Env& env) {
  const bool bf16 = name.find("_bf16_") != std::string::npos;
  const int bh = config_value(name, "bh"), sp = config_value(name, "sp"), warps = config_value(name, "w");
  const int64_t nq = a.queries, heads = a.heads, topk = a.topk, s = a.kv_rows;
  if (nq < 1 || heads < 1 || topk < 1 || s < 1 || heads % bh) return {Outcome::invalid, ""};
  if (gx != heads / bh || gy != nq || gz != static_cast<unsigned>(sp) || threads != static_cast<unsigned>(warps) * wave)
    return {Outcome::fault, name + ": grid is not sparse_mla/launch.h's"};
  const int64_t over = behave == "overrun";
  const bool extras = a.extra_count != nullptr;
  char* none = unused_buffer();
  auto* q = reinterpret_cast<const uint16_t*>(env.live(a.q, nq * heads * kDim * 2));
  auto* kv = reinterpret_cast<const uint16_t*>(env.live(a.kv, s * kDim * 2));
  auto* idx = reinterpret_cast<const int32_t*>(env.live(a.indices, nq * topk * 4));
  auto* xs = reinterpret_cast<const int32_t*>(extras ? env.live(a.extra_start, nq * 4) : none);
  auto* xc = reinterpret_cast<const int32_t*>(extras ? env.live(a.extra_count, nq * 4) : none);
  auto* o = reinterpret_cast<uint16_t*>(sp == 1 ? env.live(a.o, (nq + over) * heads * kOut * 2) : none);
  auto* lse = reinterpret_cast<float*>(sp == 1 && a.lse ? env.live(a.lse, nq * heads * 4) : none);
  auto* po = reinterpret_cast<float*>(sp > 1 ? env.live(a.part_o, sp * nq * heads * kOut * 4) : none);
  auto* pl = reinterpret_cast<float*>(sp > 1 ? env.live(a.part_lse, sp * nq * heads * 4) : none);
  if (!q || !kv || !idx || !xs || !xc || !o || !lse || !po || !pl)
    return {Outcome::fault, name + ": an MLA buffer too small"};
  if (behave == "fault") return {Outcome::fault, name + ": injected"};
  if (!(sp == 1 ? o[0] == 0xffff : poisoned(pl[0]))) return {};  // a timed run: only time passes
  std::vector<float> logit, acc(kOut);
  std::vector<int64_t> rows;
  for (int64_t qi = 0; qi < nq; ++qi)
    for (int split = 0; split < sp; ++split) {
      const int64_t slots = topk + (extras && xc[qi] > 0 ? xc[qi] : 0);
      rows.clear();
      for (int64_t pos = slots * split / sp; pos < slots * (split + 1) / sp; ++pos) {
        const int64_t r = pos < topk ? idx[qi * topk + pos] : xs[qi] + (pos - topk);
        if (r >= 0 && r < s) rows.push_back(r);
      }
      for (int64_t h = 0; h < heads; ++h) {
        if (behave == "nan" && qi == nq - 1 && h == heads - 1) continue;
        const uint16_t* qh = q + (qi * heads + h) * kDim;
        logit.assign(rows.size(), 0.f);
        float mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < rows.size(); ++j) {
          for (int64_t d = 0; d < kDim; ++d)
            logit[j] += env.to_float(qh[d], bf16) * env.to_float(kv[rows[j] * kDim + d], bf16);
          logit[j] *= a.softmax_scale;
          mx = std::fmax(mx, logit[j]);
        }
        std::fill(acc.begin(), acc.end(), 0.f);
        for (size_t j = 0; j < rows.size(); ++j) {
          const float w = std::exp(logit[j] - mx);
          sum += w;
          for (int64_t d = 0; d < kOut; ++d) acc[d] += w * env.to_float(kv[rows[j] * kDim + d], bf16);
        }
        const float off = behave == "wrong" ? 0.25f : 0.f;
        const int64_t row = qi * heads + h, prow = (split * nq + qi) * heads + h;
        for (int64_t d = 0; d < kOut; ++d) {
          const float v = (sum > 0 ? acc[d] / sum : 0.f) + off;
          if (sp == 1)
            o[row * kOut + d] = env.to_half(v, bf16);
          else
            po[prow * kOut + d] = v;
        }
        const float l = sum > 0 ? mx + std::log(sum) : -INFINITY;
        if (sp == 1 && a.lse) lse[row] = l;
        if (sp > 1) pl[prow] = l;
      }
    }
  if (over) o[nq * heads * kOut] = 0;
  return {};
}

inline Outcome combine(const std::string& name, const std::string& behave, const kf_mla_combine_args& a, unsigned gx,
                       unsigned threads, const Env& env) {
  const bool bf16 = name.find("_bf16") != std::string::npos;
  const int64_t rows = static_cast<int64_t>(a.queries) * a.heads, sp = a.splits;
  if (rows < 1 || sp < 2) return {Outcome::invalid, ""};
  if (threads != 256 || gx != static_cast<unsigned>((rows + 7) / 8))
    return {Outcome::fault, name + ": grid is not sparse_mla/launch.h's"};
  auto* po = reinterpret_cast<const float*>(env.live(a.part_o, sp * rows * kOut * 4));
  auto* pl = reinterpret_cast<const float*>(env.live(a.part_lse, sp * rows * 4));
  auto* o = reinterpret_cast<uint16_t*>(env.live(a.o, rows * kOut * 2));
  auto* lse = reinterpret_cast<float*>(a.lse ? env.live(a.lse, rows * 4) : unused_buffer());
  if (!po || !pl || !o || !lse) return {Outcome::fault, name + ": an MLA combine buffer too small"};
  if (behave == "fault") return {Outcome::fault, name + ": injected"};
  if (o[0] != 0xffff) return {};  // a timed run
  for (int64_t r = 0; r < rows; ++r) {
    float mx = -INFINITY, total = 0;
    for (int64_t i = 0; i < sp; ++i) mx = mx > pl[i * rows + r] ? mx : pl[i * rows + r];
    for (int64_t d = 0; d < kOut; ++d) {
      float acc = 0;
      total = 0;
      for (int64_t i = 0; i < sp && mx != -INFINITY; ++i) {
        const float w = std::exp(pl[i * rows + r] - mx);
        total += w;
        if (w != 0) acc += w * po[(i * rows + r) * kOut + d];
      }
      const float inv = total > 0 ? 1 / total : 0.f;
      o[r * kOut + d] = env.to_half(acc * inv + (behave == "wrong" ? 0.25f : 0.f), bf16);
    }
    if (a.lse) lse[r] = total > 0 ? mx + std::log(total) : -INFINITY;
  }
  return {};
}

}  // namespace fake_mla
