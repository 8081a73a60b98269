// What an inference engine does with kforge, in one file: open the pack for this GPU,
// put a random GPTQ linear layer (N = 2048, K = 4096, group 128, bf16, symmetric) on the
// GPU, then for M in {1, 4, 16, 64, 256} select and launch the kernel kforge picks and
// compare its output with a float64 CPU reference. Then the same for whole random
// mixture-of-experts layers through kf_run_moe (moe_layers below: the pack's tuned MoE
// shapes among a small one and the default model's; skipped, saying so, when the pack
// has none). Prints kernel / fallback / error per M and T; exits 1 on any failure, 77
// ("SKIPPED: no GPU") without an NVIDIA GPU.
//
//   kforge_example_engine PACK/kforge.sqlite
//
// GPU memory is handled with the CUDA driver API through kforge's loader (an engine
// would use its own allocator); the runtime uses the context made current here.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "cuda_driver.h"
#include "kforge/kforge.h"
#include "linear_reference.h"
#include "moe_check_reference.h"

namespace {

const kf::cuda::Driver* cu = nullptr;

bool ok(CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return true;
  const char* text = nullptr;
  cu->cuGetErrorString(r, &text);
  std::fprintf(stderr, "%s failed: %s\n", what, text ? text : "?");
  return false;
}

// A device buffer holding `bytes` (at least 16, so empty tensors still get an address).
CUdeviceptr device_alloc(size_t bytes) {
  CUdeviceptr p = 0;
  return ok(cu->cuMemAlloc(&p, bytes < 16 ? 16 : bytes), "cuMemAlloc") ? p : 0;
}

template <class T>
CUdeviceptr upload(const std::vector<T>& host) {
  const CUdeviceptr p = device_alloc(host.size() * sizeof(T));
  if (p && !ok(cu->cuMemcpyHtoD(p, host.data(), host.size() * sizeof(T)), "cuMemcpyHtoD")) return 0;
  return p;
}

const void* ptr(CUdeviceptr p) { return reinterpret_cast<const void*>(static_cast<uintptr_t>(p)); }
void* mut(CUdeviceptr p) { return reinterpret_cast<void*>(static_cast<uintptr_t>(p)); }

// ---- A whole MoE layer ----------------------------------------------------------------

// One layer's random weights, stacked over the experts as kf_run_moe reads them: gate_up
// (N = 2 I, K = H) and down (N = H, K = I) in the GPTQ layout, drawn as the linear check
// draws one expert's (outputs O(1)). Kept on the host for the reference as well.
struct MoeWeights {
  kf::MoeWeights w1, w2;
  CUdeviceptr q1 = 0, s1 = 0, q2 = 0, s2 = 0;
};

bool make_moe_weights(const kf_moe_shape& s, std::mt19937_64& rng, MoeWeights* w) {
  kf::MoeShape gate_up;
  gate_up.experts = s.experts, gate_up.top_k = s.top_k, gate_up.group = s.group;
  kf::MoeShape down = gate_up;
  gate_up.gemm = 1, gate_up.n = 2 * s.intermediate, gate_up.k = s.hidden;
  down.gemm = 2, down.n = s.hidden, down.k = s.intermediate;
  w->w1 = kf::make_moe_weights(gate_up, rng);
  w->w2 = kf::make_moe_weights(down, rng);
  w->q1 = upload(w->w1.qweight), w->s1 = upload(w->w1.scales);
  w->q2 = upload(w->w2.qweight), w->s2 = upload(w->w2.scales);
  return w->q1 && w->s1 && w->q2 && w->s2;
}

// Runs layers of `s` for each T in `ts` through kf_run_moe (fresh tokens and routing per
// T, output poisoned first) and compares with the reference. Returns the failures, or
// -1 when the pack has no tuned kernels for the layer.
int check_moe_layer(const kf_db* db, const kf_moe_shape& s, const std::vector<int>& ts, std::mt19937_64& rng) {
  const int max_t = *std::max_element(ts.begin(), ts.end());
  size_t scratch_bytes = 0;
  const kf_status sized = kf_moe_scratch_bytes(db, &s, max_t, &scratch_bytes);
  if (sized == KF_ERR_UNSUPPORTED_SHAPE) return -1;  // the pack has no tuned kernels for this layer
  if (sized != KF_OK) {
    std::printf("MoE FAILED: kf_moe_scratch_bytes: %s: %s\n", kf_status_name(sized), kf_last_error());
    return 1;
  }
  std::printf("MoE layer E=%lld top_k=%lld H=%lld I=%lld group=%d bf16 sym: scratch %zu bytes for T <= %d\n",
              static_cast<long long>(s.experts), static_cast<long long>(s.top_k), static_cast<long long>(s.hidden),
              static_cast<long long>(s.intermediate), s.group, scratch_bytes, max_t);
  MoeWeights w;
  if (!make_moe_weights(s, rng, &w)) return 1;
  const int64_t H = s.hidden, top_k = s.top_k;
  // Engine start-up: scratch allocated once and zeroed (the split-K counters stay zero).
  const CUdeviceptr x = device_alloc(size_t{2} * max_t * H), y = device_alloc(size_t{2} * max_t * H);
  const CUdeviceptr ids = device_alloc(4 * max_t * top_k), weights = device_alloc(4 * max_t * top_k);
  const CUdeviceptr scratch = device_alloc(scratch_bytes);
  if (!x || !y || !ids || !weights || !scratch || !ok(cu->cuMemsetD32(scratch, 0, scratch_bytes / 4), "zero scratch"))
    return 1;

  int failures = 0;
  std::uniform_real_distribution<float> unit(-1.f, 1.f), share(0.f, 1.f);
  for (int t : ts) {
    // Fresh tokens and routing: top_k distinct experts per token; token 0 also routes
    // one slot nowhere (-1, e.g. an expert on another rank) when top_k > 1.
    std::vector<uint16_t> hx(static_cast<size_t>(t) * H);
    for (auto& v : hx) v = kf::float_to_half_bits(unit(rng), true);
    std::vector<int32_t> hids(static_cast<size_t>(t) * top_k);
    std::vector<float> hw(hids.size());
    std::vector<int32_t> experts(s.experts);
    std::iota(experts.begin(), experts.end(), 0);
    for (int tok = 0; tok < t; ++tok) {
      std::shuffle(experts.begin(), experts.end(), rng);
      for (int64_t j = 0; j < top_k; ++j) hids[tok * top_k + j] = experts[j], hw[tok * top_k + j] = share(rng);
    }
    if (top_k > 1) hids[1] = -1;
    if (!ok(cu->cuMemcpyHtoD(x, hx.data(), hx.size() * 2), "upload x") ||
        !ok(cu->cuMemcpyHtoD(ids, hids.data(), hids.size() * 4), "upload topk_ids") ||
        !ok(cu->cuMemcpyHtoD(weights, hw.data(), hw.size() * 4), "upload topk_weights") ||
        !ok(cu->cuMemsetD16(y, 0x7fc0, size_t{1} * max_t * H), "poison y"))  // bf16 NaN
      return failures + 1;

    kf_moe_layer_args a = {};
    a.x = ptr(x);
    a.topk_ids = static_cast<const int32_t*>(ptr(ids));
    a.topk_weights = static_cast<const float*>(ptr(weights));
    a.w1_qweight = ptr(w.q1), a.w1_scales = ptr(w.s1);
    a.w2_qweight = ptr(w.q2), a.w2_scales = ptr(w.s2);
    a.y = mut(y);
    a.scratch = mut(scratch);
    a.scratch_bytes = scratch_bytes;
    a.t = t;
    a.max_t = max_t;
    const kf_kernel* g1 = nullptr;
    const kf_kernel* g2 = nullptr;
    kf_select_moe(db, 1, &s, t, &g1);  // only to print which kernels ran
    kf_select_moe(db, 2, &s, t, &g2);
    const kf_status status = kf_run_moe(db, &s, &a, /*stream=*/nullptr);  // the per-forward call
    if (status != KF_OK) {
      std::printf("  T=%-4d FAILED: %s: %s\n", t, kf_status_name(status), kf_last_error());
      ++failures;
      continue;
    }
    std::vector<uint16_t> out(static_cast<size_t>(t) * H);
    if (!ok(cu->cuCtxSynchronize(), "MoE layer") || !ok(cu->cuMemcpyDtoH(out.data(), y, out.size() * 2), "download y"))
      return failures + 1;
    // The float64 layer (tuner/moe_check_reference.h), the experts spread over the CPU's threads.
    const std::vector<double> ref = kf::moe_layer_reference(
        w.w1, w.w2, hx, hids, hw, t, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    // Tolerance: twice the linear one (two chained GEMMs, with h1, h and h2 rounded to
    // bf16 in between), as the GPU check uses for layers.
    const double error = kf::normalised_error(out, ref, t, H, /*bf16=*/true);
    const bool pass = error <= 2 * kf::linear_tolerance(true);
    failures += !pass;
    std::printf("  T=%-4d %s + %s error=%.2e (tolerance %.1e) %s\n", t, g1 ? kf_kernel_name(g1) : "?",
                g2 ? kf_kernel_name(g2) : "?", error, 2 * kf::linear_tolerance(true), pass ? "PASS" : "FAIL");
  }
  return failures;
}

// The MoE layers to try, smallest first: the small one tests ship, the E=8 GPU-check
// layer, and the default model's (qwen3-35b: 256 experts, top 8, H 2048, I 512).
std::vector<std::pair<kf_moe_shape, std::vector<int>>> moe_layers() {
  auto shape = [](int64_t e, int64_t top_k, int64_t h, int64_t i) {
    kf_moe_shape s = {};
    s.experts = e, s.top_k = top_k, s.hidden = h, s.intermediate = i, s.group = 128, s.bf16 = 1, s.asym = 0;
    return s;
  };
  return {{shape(8, 2, 256, 128), {1, 4, 33, 256}},
          {shape(8, 2, 512, 256), {1, 4, 33, 256}},
          {shape(256, 8, 2048, 512), {1, 16, 64}}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PACK/kforge.sqlite\n", argv[0]);
    return 2;
  }
  const char* why = "";
  int devices = 0;
  if (!(cu = kf::cuda::driver(&why)) || cu->cuInit(0) != CUDA_SUCCESS || cu->cuDeviceGetCount(&devices) != CUDA_SUCCESS ||
      devices < 1) {
    std::printf("SKIPPED: no GPU (%s)\n", cu ? "no CUDA device" : why);
    return 77;
  }
  CUdevice device = 0;
  CUcontext context = nullptr;
  if (!ok(cu->cuDeviceGet(&device, 0), "cuDeviceGet") || !ok(cu->cuDevicePrimaryCtxRetain(&context, device), "retain") ||
      !ok(cu->cuCtxSetCurrent(context), "cuCtxSetCurrent"))
    return 1;

  // Start-up: open the pack for this GPU, load every kernel, size the split-K scratch.
  kf_db* db = nullptr;
  if (kf_open(argv[1], &db) != KF_OK || kf_prepare(db) != KF_OK) {
    std::fprintf(stderr, "kforge: %s\n", kf_last_error());
    kf_close(db);
    return 1;
  }
  std::printf("pack %s, arch %s, device %s\n", argv[1], kf_db_arch(db), kf_db_device_name(db));

  const int n = 2048, k = 4096, group = 128, max_m = 256;
  const int ms[] = {1, 4, 16, 64, 256};
  kf::LinearShape shape;
  shape.n = n;
  shape.k = k;
  shape.group = group;
  const uint64_t seed = std::random_device{}();
  std::printf("random layer n=%d k=%d group=%d bf16 sym, seed %llu\n", n, k, group,
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const kf::LinearProblem layer = kf::make_linear_problem(shape, max_m, rng);
  const std::vector<double> reference =
      kf::linear_reference(layer, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  int64_t workspace_floats = 0, counter_ints = 0;
  kf_db_max_workspace(db, max_m, &workspace_floats, &counter_ints);
  const CUdeviceptr x = upload(layer.x), qweight = upload(layer.qweight), scales = upload(layer.scales);
  const CUdeviceptr y = device_alloc(size_t{max_m} * n * 2);
  const CUdeviceptr workspace = device_alloc(workspace_floats * 4), counters = device_alloc(counter_ints * 4);
  if (!x || !qweight || !scales || !y || !workspace || !counters ||
      !ok(cu->cuMemsetD32(counters, 0, counter_ints ? counter_ints : 1), "zero counters"))
    return 1;

  int failures = 0;
  for (int m : ms) {
    // Poison the output (bf16 NaN) so a kernel that skips an element cannot pass.
    if (!ok(cu->cuMemsetD16(y, 0x7fc0, size_t{max_m} * n), "poison y")) return 1;
    const kf_linear_args args = {ptr(x), ptr(qweight), ptr(scales), nullptr, reinterpret_cast<void*>(y),
                                 reinterpret_cast<float*>(workspace), reinterpret_cast<int*>(counters),
                                 m, n, k, group};
    // The per-forward call of an engine is kf_run_linear(db, &args, bf16, asym, stream);
    // selecting first here only to print which kernel ran.
    const kf_kernel* kernel = nullptr;
    kf_status status = kf_select_linear(db, n, k, group, /*bf16=*/1, /*asym=*/0, m, &kernel);
    if (status == KF_OK) status = kf_launch(kernel, &args, /*stream=*/nullptr);
    if (status != KF_OK) {
      std::printf("M=%-4d FAILED: %s: %s\n", m, kf_status_name(status), kf_last_error());
      ++failures;
      continue;
    }
    std::vector<uint16_t> out(static_cast<size_t>(m) * n);
    if (!ok(cu->cuCtxSynchronize(), "kernel") || !ok(cu->cuMemcpyDtoH(out.data(), y, out.size() * 2), "cuMemcpyDtoH"))
      return 1;
    const double error = kf::normalised_error(out, reference, m, n, /*bf16=*/true);
    const bool pass = error <= kf::linear_tolerance(true);
    failures += !pass;
    std::printf("M=%-4d %-78s fallback=%d error=%.2e %s\n", m, kf_kernel_name(kernel), kf_kernel_is_fallback(kernel),
                error, pass ? "ok" : "FAILED");
  }

  int moe_tried = 0;
  for (const auto& [moe, ts] : moe_layers()) {
    const int f = check_moe_layer(db, moe, ts, rng);
    if (f < 0) continue;  // no tuned MoE kernels for this shape
    ++moe_tried;
    failures += f;
  }
  if (!moe_tried) std::printf("MoE: SKIPPED: the pack has no tuned w4a16_moe kernels for the example's layers\n");
  kf_close(db);
  std::printf("%s\n", failures ? "FAILED" : "PASSED");
  return failures ? 1 : 0;
}
