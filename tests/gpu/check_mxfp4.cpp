// kforge_check_mxfp4: checks every mxfp4_moe_gemm1/2 kernel of a pack on an NVIDIA GPU
// against the float64 host reference (tuner/mxfp4_reference.h) on fresh random data:
//   weights   every e2m1 code; e8m0 scales mostly 2^-9 .. 2^-3, with blocks at the low
//             end of the range (0 and 1: 2^-127, 2^-126) and high ones (2^5);
//   routing   tuner/moe_check_reference.h's edge routing (a token on the last expert,
//             ids outside [0, E) that route nowhere, a token with no expert from T 16,
//             experts with no token), aligned on the host for the kernel's block_m;
//   bias      random, per expert; gemm2's routing weights random in [0.1, 1].
// gemm1 is compared per slot (with the SwiGLU epilogue when the shape has it); gemm2 per
// slot too (its rows before moe_sum: the reference run with one slot per token).
// Outputs are poisoned (NaN) first: rows of slots routed nowhere and the guard rows past
// the end must stay poisoned. Tolerance: ||y - ref|| / ||ref|| <= 1e-2 over the case and
// every row within 4x that of its own norm.
// A line per check, then "N passed, N failed"; exit 1 on any failure or when nothing
// was checked, 77 without a GPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gpu_check_util.h"
#include "linear_reference.h"
#include "moe_check_reference.h"
#include "mxfp4_family.h"
#include "mxfp4_moe/args.h"
#include "mxfp4_moe/tiling.h"
#include "mxfp4_reference.h"
#include "w4a16_moe/launch.h"

namespace {

using namespace kf;

using gpu_check::Buf;
using gpu_check::cu;
using gpu_check::KernelRow;

constexpr double kTolerance = 1e-2;
constexpr int64_t kGuardRows = 4;




// Random expert weights in the checkpoint layout: packed [E, N, K/2], scales [E, N, K/32].
struct Weights {
  std::vector<uint8_t> packed, scales;
  std::vector<float> bias;
};

Weights make_weights(const Mxfp4MoeShape& s, uint64_t seed) {
  Weights w;
  std::mt19937_64 rng(seed);
  w.packed.resize(s.experts * s.n * s.k / 2);
  for (size_t i = 0; i < w.packed.size(); i += 8) {
    const uint64_t r = rng();
    for (size_t b = 0; b < 8 && i + b < w.packed.size(); ++b) w.packed[i + b] = static_cast<uint8_t>(r >> (8 * b));
  }
  w.scales.resize(s.experts * s.n * s.k / kMxfp4Block);
  for (size_t i = 0; i < w.scales.size(); ++i) {
    const uint64_t r = rng();
    // Mostly 2^-9 .. 2^-3 (weights ~ 1 / sqrt(K)); one block in 64 at the low end of the
    // range, one in 64 high.
    const int pick = static_cast<int>(r % 64);
    w.scales[i] = pick == 0 ? static_cast<uint8_t>(r >> 8 & 1) : pick == 1 ? 132 : static_cast<uint8_t>(118 + (r >> 8) % 7);
  }
  w.bias.resize(s.experts * s.n);
  std::uniform_real_distribution<float> b(-0.5f, 0.5f);
  for (auto& v : w.bias) v = b(rng);
  return w;
}

// [E, N, K/32] -> [E, K/32, N]: kforge's scale layout (args.h).
std::vector<uint8_t> scales_k_major(const std::vector<uint8_t>& sc, int64_t e, int64_t n, int64_t kb) {
  std::vector<uint8_t> out(sc.size());
  for (int64_t x = 0; x < e; ++x)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < kb; ++c) out[(x * kb + c) * n + r] = sc[(x * n + r) * kb + c];
  return out;
}


}  // namespace

int main(int argc, char** argv) {
  const gpu_check::Options opt =
      gpu_check::parse_options(argc, argv, "kforge_check_mxfp4: every mxfp4_moe GEMM of a pack against the float64 reference", "t", "token counts", {1, 5, 33});
  const std::string &pack = opt.pack, &arch = opt.arch, &filter = opt.filter;
  const std::vector<int64_t>& ts = opt.sizes;
  const uint64_t seed = opt.seed;
  std::string device;
  gpu_check::start_device(&device);
  CUdevice dev0;
  int sms = 0;  // persistent configs launch a few blocks per SM
  CU_CHECK(cu->cuDeviceGet(&dev0, 0));
  CU_CHECK(cu->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev0));

  const std::regex re(filter);
  std::map<std::pair<std::string, std::string>, std::vector<KernelRow>> by_shape;
  for (auto& k : gpu_check::read_kernels_or_exit(pack, arch, {"mxfp4_moe_gemm1", "mxfp4_moe_gemm2"}))
    if (std::regex_search(k.name, re)) by_shape[{k.op, k.shape}].push_back(std::move(k));
  size_t kernels = 0;
  for (auto& [key, list] : by_shape) kernels += list.size();
  std::printf("device: %s   pack: %s   arch: %s   mxfp4_moe kernels: %zu in %zu shapes   seed: %llu\n", device.c_str(),
              pack.c_str(), arch.c_str(), kernels, by_shape.size(), static_cast<unsigned long long>(seed));
  if (kernels == 0) {
    std::printf("FAIL pack: no mxfp4_moe_gemm1/2 kernel with status ok for %s\n", arch.c_str());
    return 1;
  }
  int passed = 0, failed = 0;

  for (auto& [key, list] : by_shape) {
    const Mxfp4MoeShape s = parse_mxfp4_shape(key.first, key.second);
    const Weights w = make_weights(s, seed ^ std::hash<std::string>()(key.first + key.second));
    const int64_t kb = s.k / kMxfp4Block;
    Buf weight(w.packed.size()), scales(w.scales.size()), bias(w.bias.size() * 4);
    weight.up(w.packed);
    scales.up(scales_k_major(w.scales, s.experts, s.n, kb));
    bias.up(w.bias);
    const int64_t n_out = s.swiglu ? s.n / 2 : s.n;
    for (int64_t t : ts) {
      const int top_k = static_cast<int>(s.top_k), experts = static_cast<int>(s.experts);
      const int64_t slots = t * top_k;
      std::mt19937_64 rng(seed + t);
      const std::vector<int32_t> ids = edge_routing(RoutingArchetype::uniform, t, experts, top_k, seed + t);
      Mxfp4MoeProblem p;
      p.gemm = s.gemm;
      p.experts = s.experts;
      p.top_k = s.top_k;
      p.n = s.n;
      p.k = s.k;
      p.weight = w.packed;
      p.scales = w.scales;
      p.bias = w.bias;
      p.swiglu = s.swiglu;
      // gemm2 per slot: one slot per "token", so y row s is slot s's weighted row.
      p.t = s.gemm == 1 ? t : slots;
      if (s.gemm == 2) p.top_k = 1;
      p.topk_ids = ids;
      p.x = random_half((s.gemm == 1 ? t : slots) * s.k, -1.0, 1.0, true, rng);
      std::vector<float> weights(slots);
      std::uniform_real_distribution<float> u(0.1f, 1.f);
      for (auto& v : weights) v = u(rng);
      if (s.gemm == 2) p.topk_weights = weights;
      const std::vector<double> ref = mxfp4_moe_reference(p);

      Buf x(p.x.size() * 2), wts(slots * 4), y((slots + kGuardRows) * n_out * 2);
      x.up(p.x);
      wts.up(weights);
      for (const KernelRow& k : list) {
        const Mxfp4Config cfg = parse_mxfp4_config(k.config, k.kind);
        const std::string what = k.name + " T=" + std::to_string(t);
        const AlignRef al = align_reference(ids, t, top_k, experts, cfg.block_m);
        std::vector<int32_t> sorted, blocks;
        align_buffers(al, t, top_k, experts, cfg.block_m, static_cast<int32_t>(slots), 0, sorted, blocks);
        Buf sorted_d(sorted.size() * 4), blocks_d(blocks.size() * 4), padded_d(4);
        sorted_d.up(sorted);
        blocks_d.up(blocks);
        padded_d.up(std::vector<int32_t>{static_cast<int32_t>(al.num_padded)});
        CU_CHECK(cu->cuMemsetD16(y.ptr, 0xffff, y.bytes / 2));
        CUmodule mod;
        CUfunction fn;
        CU_CHECK(cu->cuModuleLoadData(&mod, k.code_object.data()));
        CU_CHECK(cu->cuModuleGetFunction(&fn, mod, k.name.c_str()));
        const int64_t capacity = moe::sorted_capacity(t, top_k, experts, cfg.block_m);
        const LaunchGrid g = mxfp4_grid(s, cfg, capacity, sms);
        if (g.shared > 0)  // the wgmma kind's ring
          CU_CHECK(cu->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(g.shared)));
        kf_mxfp4_moe_gemm_args a{};
        a.x = x.p();
        a.weight = weight.p<uint8_t>();
        a.scales = scales.p<uint8_t>();
        a.bias = bias.p<float>();
        a.topk_weights = wts.p<float>();
        a.sorted_ids = sorted_d.p<int32_t>();
        a.expert_ids = blocks_d.p<int32_t>();
        a.num_padded = padded_d.p<int32_t>();
        a.y = y.p();
        a.t = static_cast<int>(t);
        a.top_k = top_k;
        a.experts = experts;
        a.n = static_cast<int>(s.n);
        a.k = static_cast<int>(s.k);
        a.swiglu_alpha = 1.702f;
        a.swiglu_limit = 7.0f;
        void* params[] = {&a};
        CU_CHECK(cu->cuLaunchKernel(fn, g.x, g.y, g.z, k.threads, 1, 1, g.shared, nullptr, params, nullptr));
        CU_CHECK(cu->cuCtxSynchronize());
        const std::vector<uint16_t> got = y.down<uint16_t>((slots + kGuardRows) * n_out);
        CU_CHECK(cu->cuModuleUnload(mod));
        std::string bad;
        double d2 = 0, r2 = 0;
        for (int64_t sl = 0; sl < slots + kGuardRows && bad.empty(); ++sl) {
          const bool routed = sl < slots && ids[sl] >= 0 && ids[sl] < experts;
          double rd = 0, rr = 0;
          for (int64_t c = 0; c < n_out; ++c) {
            const uint16_t bits = got[sl * n_out + c];
            if (!routed) {
              if (bits != 0xffff) bad = "wrote row " + std::to_string(sl) + (sl < slots ? " of a slot routed nowhere" : " past the end");
              continue;
            }
            const double v = half_bits_to_float(bits, true), want = ref[sl * n_out + c];
            if (!std::isfinite(v)) {
              bad = "row " + std::to_string(sl) + " col " + std::to_string(c) + " unwritten or not finite";
              break;
            }
            rd += (v - want) * (v - want);
            rr += want * want;
          }
          if (bad.empty() && routed && rr > 0 && std::sqrt(rd / rr) > 4 * kTolerance)
            bad = "row " + std::to_string(sl) + " off by " + std::to_string(std::sqrt(rd / rr)) + " of its norm";
          d2 += rd;
          r2 += rr;
        }
        const double err = r2 > 0 ? std::sqrt(d2 / r2) : 0;
        if (bad.empty() && !(err <= kTolerance)) bad = "error above tolerance";
        (bad.empty() ? passed : failed)++;
        std::printf("%s %s err=%.3g tol=%.3g%s%s\n", bad.empty() ? "PASS" : "FAIL", what.c_str(), err, kTolerance,
                    bad.empty() ? "" : ": ", bad.c_str());
        std::fflush(stdout);
      }
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed || passed == 0 ? 1 : 0;
}
