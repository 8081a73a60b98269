// What an inference engine does with kforge, in one file: open the pack for this GPU,
// put a random GPTQ linear layer (N = 2048, K = 4096, group 128, bf16, symmetric) on the
// GPU, then for M in {1, 4, 16, 64, 256} select and launch the kernel kforge picks and
// compare its output with a float64 CPU reference. Prints kernel / fallback / error per
// M; exits 1 on any failure, 77 ("SKIPPED: no GPU") without an NVIDIA GPU.
//
//   kforge_example_engine PACK/kforge.sqlite
//
// GPU memory is handled with the CUDA driver API through kforge's loader (an engine
// would use its own allocator); the runtime uses the context made current here.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "cuda_driver.h"
#include "kforge/kforge.h"
#include "linear_reference.h"

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
  kf_close(db);
  std::printf("%s\n", failures ? "FAILED" : "PASSED");
  return failures ? 1 : 0;
}
