// A fake libcuda.so.1 for testing autotune's CUDA measurer on machines without a GPU
// (LD_LIBRARY_PATH=<dir of this library> autotune --measurer cuda ...). Not a GPU model:
// "device memory" is host memory, kernels run synchronously on the CPU, and time is a
// virtual clock. What it checks is the measurer's use of the driver API:
//   - a w4a16_linear launch reads its kf_linear_args and computes y on the host (float
//     accumulation, output rounded to the 16-bit type; only when y holds the poison of a
//     verification run, to keep timed runs cheap) after checking that every buffer
//     it touches is a live allocation large enough for M, N, K and its split-K config;
//     anything else is an illegal address (sticky, as on a GPU, until the primary
//     context is reset, which frees every allocation);
//   - the L2 flush (kf_util_stream_read) is checked for the launch its template
//     expects, and makes the next kernel "cold": a kernel costs `us` cold, us / 2 warm,
//     so timings show whether the flush ran before every timed run;
//   - events read the virtual clock, so a measured median is exactly the kernel's cost.
//   - MoE: moe_align_any sorts the slots (each expert's run in descending slot order, so
//     the measurer must not assume an order; behave=wrong: num_padded one block too
//     many); a w4a16_moe_gemm launch checks its buffers for T, E, N, K, its block_m and
//     split-K and computes the slot rows of y from sorted_ids / expert_ids (behave
//     padding: also writes the padding id's row); a gemm1 whose name ends in _silu
//     writes silu(gate) * up, N/2 columns, a gemm2 ending in _red adds into its token's
//     row; moe_silu_mul and moe_sum check their grids and buffers
//     and computes h from h1;
//   - sparse MLA (fake_mla.h): a sparse_mla_decode launch checks its grid and buffers for
//     Q, H, topk, S, its block_h and splits, and on a verification run (o, or a split
//     kernel's part_lse, still poisoned) computes o and lse, or the split partials (nan:
//     leaves the last query's last head unwritten; overrun: also writes the query after
//     the last); sparse_mla_combine merges the partials as combine.h does;
//   - mxfp4_moe (fake_mxfp4.h): an mxfp4_moe_gemm launch checks its grid and buffers for T,
//     E, N, K and its block_m / block_n, and on a verification run computes the sorted
//     slots' rows from the MXFP4 weights (SwiGLU, routing weight; behave padding / dropped
//     / nan / wrong as there);
// Code objects are text: "FAKECUBIN name=<symbol> us=<cost> behave=<b>" where b is ok,
// wrong (outputs off), nan (output left unwritten), overrun (writes row M), counters
// (leaves a split-K counter set), fault (illegal address), refuse (launch refused),
// hang (never finishes), or flush (the utility module).
#include <cuda.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fake_mla.h"
#include "fake_moe.h"
#include "fake_mxfp4.h"
#include "sparse_mla/args.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/args.h"
#include "w4a16_moe/args.h"

namespace {

struct Module {
  std::string name, behave;
  double us = 1;
  int dynamic_allowed = 0;  // cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
};
struct Alloc {
  std::unique_ptr<char[]> data;
  size_t bytes;
};

CUresult g_sticky = CUDA_SUCCESS;
bool g_hung = false, g_cold = true;
double g_now_us = 0;
std::map<CUdeviceptr, Alloc> g_allocs;
std::map<CUevent, double> g_events;
int g_next_handle = 1;

template <class T>
T handle() {
  return reinterpret_cast<T>(static_cast<uintptr_t>(0x1000 * g_next_handle++));
}

void complain(const std::string& what) { std::fprintf(stderr, "fake libcuda: %s\n", what.c_str()); }

// The allocation holding [p, p + bytes), or null.
char* live(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<CUdeviceptr>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (a + bytes > it->first + it->second.bytes) return nullptr;
  return reinterpret_cast<char*>(a);
}

float half_to_float(uint16_t h, bool bf16) {
  if (bf16) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  _Float16 v;
  std::memcpy(&v, &h, 2);
  return static_cast<float>(v);
}

uint16_t float_to_half(float f, bool bf16) {
  if (bf16) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN (no carry into the sign)
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

int config_value(const std::string& name, const std::string& key) {
  const size_t at = name.find("_" + key);
  return at == std::string::npos ? 1 : std::atoi(name.c_str() + at + 1 + key.size());
}

// The dynamic shared memory a skinny kernel's name asks for (skinny_tiling.h), else 0.
unsigned skinny_dynamic_bytes(const std::string& name) {
  if (name.find("_skinny_") == std::string::npos) return 0;
  size_t at = name.rfind("_s");  // the stages: the last "_s<digits>" (MoE names may end in _silu)
  while (at != std::string::npos && at > 0 && !std::isdigit(static_cast<unsigned char>(name[at + 2])))
    at = name.rfind("_s", at - 1);
  if (at == std::string::npos) return 0;
  const int stages = std::atoi(name.c_str() + at + 2);
  const size_t sk = name.rfind("_sk");  // the split, not the "_skinny_" of the kind
  const int split_k = sk == std::string::npos ? 1 : std::atoi(name.c_str() + sk + 3);
  return static_cast<unsigned>(kf::w4a16::skinny::dynamic_shared_bytes(
      config_value(name, "bn"), config_value(name, "w"), stages, config_value(name, "bm"), split_k));
}

CUresult fault(const std::string& why) {
  complain("illegal address: " + why);
  g_sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
  return CUDA_SUCCESS;  // reported asynchronously, as on a GPU
}

CUresult run_linear(const Module& mod, const kf_linear_args& a, unsigned threads) {
  const bool bf16 = mod.name.find("_bf16_") != std::string::npos, asym = mod.name.find("_asym") != std::string::npos;
  const int64_t m = a.m, n = a.n, k = a.k, g = a.group;
  if (m < 1 || n < 1 || k < 1 || g < 1 || k % g || threads == 0) return CUDA_ERROR_INVALID_VALUE;
  const int sk = config_value(mod.name, "sk"), bm = config_value(mod.name, "bm"), bn = config_value(mod.name, "bn");
  auto* x = reinterpret_cast<const uint16_t*>(live(a.x, m * k * 2));
  auto* qw = reinterpret_cast<const uint32_t*>(live(a.qweight, k / 8 * n * 4));
  auto* sc = reinterpret_cast<const uint16_t*>(live(a.scales, k / g * n * 2));
  auto* qz = reinterpret_cast<const uint32_t*>(asym ? live(a.qzeros, k / g * n / 8 * 4) : "");
  auto* y = reinterpret_cast<uint16_t*>(live(a.y, (m + (mod.behave == "overrun")) * n * 2));
  if (!x || !qw || !sc || !qz || !y) return fault(mod.name + ": x, qweight, scales, qzeros or y too small");
  int* counters = nullptr;
  if (sk > 1) {
    if (!live(a.workspace, sk * m * n * 4)) return fault(mod.name + ": split-K workspace too small");
    counters = reinterpret_cast<int*>(live(a.counters, (n / bn) * ((m + bm - 1) / bm) * 4));
    if (!counters) return fault(mod.name + ": split-K counters too small");
    for (int64_t i = 0; i < (n / bn) * ((m + bm - 1) / bm); ++i)
      if (counters[i] != 0) complain(mod.name + ": launched with non-zero split-K counters");
  }
  if (mod.behave == "fault") return fault(mod.name + ": injected");
  // Computed when y was poisoned (a verification run); timed runs only cost time.
  if (mod.behave != "nan" && y[0] == 0xffff)
    for (int64_t r = 0; r < m + (mod.behave == "overrun"); ++r)
      for (int64_t c = 0; c < n; ++c) {
        float acc = 0;
        for (int64_t kk = 0; kk < k && r < m; ++kk) {
          const int64_t grp = kk / g;
          const uint32_t q = (qw[(kk / 8) * n + c] >> (4 * (kk % 8))) & 15u;
          const uint32_t z = asym ? (qz[grp * (n / 8) + c / 8] >> (4 * (c % 8))) & 15u : 8u;
          acc += half_to_float(x[r * k + kk], bf16) * (static_cast<float>(q) - z) * half_to_float(sc[grp * n + c], bf16);
        }
        y[r * n + c] = float_to_half(acc + (mod.behave == "wrong" ? 0.25f : 0.f), bf16);
      }
  if (mod.behave == "counters" && counters) counters[0] = 1;
  g_now_us += g_cold ? mod.us : mod.us / 2;
  g_cold = false;
  if (mod.behave == "hang") g_hung = true;
  return CUDA_SUCCESS;
}

// The kernels of fake_moe.h, fake_mxfp4.h and fake_mla.h: their outcome as a driver
// result, timed like the others (moe_align costs 2 us).
CUresult kernel_result(const Module& mod, const fake_kernel::Outcome& r, bool align = false) {
  if (r.what == fake_kernel::Outcome::invalid) return CUDA_ERROR_INVALID_VALUE;
  if (r.what == fake_kernel::Outcome::fault) return fault(r.why);
  if (align) {
    g_now_us += 2;
    return CUDA_SUCCESS;
  }
  g_now_us += g_cold ? mod.us : mod.us / 2;
  g_cold = false;
  if (mod.behave == "hang") g_hung = true;
  return CUDA_SUCCESS;
}
CUresult kernel_result(const Module& mod, const fake_moe::Outcome& r) {
  if (!r.complaint.empty()) complain(r.complaint);
  return kernel_result(mod, r.result);
}

const fake_kernel::Env kEnv{live, half_to_float, float_to_half};

struct StreamReadArgs {
  const void* data;
  unsigned long long bytes;
  unsigned int* sink;
  unsigned int blocks;
  unsigned int reserved;
};

CUresult run_flush(const StreamReadArgs& a, unsigned grid_x, unsigned threads) {
  if (threads != 256 || a.blocks != grid_x || a.bytes % 16 || a.bytes < (64u << 20) || !live(a.data, a.bytes) ||
      !live(a.sink, 4))
    return fault("bad kf_util_stream_read launch");
  g_now_us += 100;
  g_cold = true;
  return CUDA_SUCCESS;
}

}  // namespace

extern "C" {

CUresult cuInit(unsigned int) { return CUDA_SUCCESS; }
CUresult cuDriverGetVersion(int* v) { return *v = 13000, CUDA_SUCCESS; }
CUresult cuGetErrorString(CUresult e, const char** s) {
  *s = e == CUDA_ERROR_ILLEGAL_ADDRESS ? "an illegal memory access was encountered" : "fake error";
  return CUDA_SUCCESS;
}
CUresult cuGetErrorName(CUresult e, const char** s) {
  *s = e == CUDA_ERROR_ILLEGAL_ADDRESS            ? "CUDA_ERROR_ILLEGAL_ADDRESS"
       : e == CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES ? "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"
                                                 : "CUDA_ERROR_FAKE";
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetCount(int* c) { return *c = 1, CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice* d, int ordinal) { return ordinal == 0 ? (*d = 0, CUDA_SUCCESS) : CUDA_ERROR_INVALID_DEVICE; }
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
  std::snprintf(name, len, "kforge fake CUDA device");
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice) {
  *v = a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR   ? 9
       : a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR ? 0
       : a == CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE           ? 2 << 20
       : a == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT    ? 4
                                                          : 0;
  return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice) { return *c = handle<CUcontext>(), CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxRelease(CUdevice) { return CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxReset(CUdevice) {
  g_allocs.clear();  // a reset frees everything: stale pointers fault from now on
  g_events.clear();
  g_sticky = CUDA_SUCCESS;
  g_hung = false;
  return CUDA_SUCCESS;
}
CUresult cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxGetCurrent(CUcontext* c) { return *c = nullptr, CUDA_SUCCESS; }
CUresult cuCtxGetDevice(CUdevice* d) { return *d = 0, CUDA_SUCCESS; }
CUresult cuCtxSynchronize() { return g_sticky; }
CUresult cuMemAlloc(CUdeviceptr* p, size_t bytes) {
  if (g_sticky) return g_sticky;
  Alloc a{std::unique_ptr<char[]>(new char[bytes]), bytes};
  *p = reinterpret_cast<CUdeviceptr>(a.data.get());
  g_allocs[*p] = std::move(a);
  return CUDA_SUCCESS;
}
CUresult cuMemFree(CUdeviceptr p) {
  if (!g_allocs.erase(p)) {
    complain("cuMemFree of a pointer not allocated (or freed by a context reset)");
    return CUDA_ERROR_INVALID_VALUE;
  }
  return g_sticky;
}
CUresult cuMemcpyHtoD(CUdeviceptr d, const void* h, size_t bytes) {
  if (g_sticky) return g_sticky;
  if (!live(reinterpret_cast<void*>(d), bytes)) return CUDA_ERROR_INVALID_VALUE;
  std::memcpy(reinterpret_cast<void*>(d), h, bytes);
  return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoH(void* h, CUdeviceptr d, size_t bytes) {
  if (g_sticky) return g_sticky;
  if (!live(reinterpret_cast<void*>(d), bytes)) return CUDA_ERROR_INVALID_VALUE;
  std::memcpy(h, reinterpret_cast<void*>(d), bytes);
  return CUDA_SUCCESS;
}
CUresult cuMemsetD16(CUdeviceptr d, unsigned short v, size_t n) {
  if (g_sticky) return g_sticky;
  auto* p = reinterpret_cast<uint16_t*>(live(reinterpret_cast<void*>(d), n * 2));
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n; ++i) p[i] = v;
  return CUDA_SUCCESS;
}
CUresult cuMemsetD32(CUdeviceptr d, unsigned int v, size_t n) {
  if (g_sticky) return g_sticky;
  auto* p = reinterpret_cast<uint32_t*>(live(reinterpret_cast<void*>(d), n * 4));
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n; ++i) p[i] = v;
  return CUDA_SUCCESS;
}
CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream) { return cuMemsetD16(d, v, n); }
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream) { return cuMemsetD32(d, v, n); }
CUresult cuModuleLoadData(CUmodule* out, const void* image) {
  const std::string text(static_cast<const char*>(image));
  if (text.rfind("FAKECUBIN ", 0) != 0) return CUDA_ERROR_INVALID_IMAGE;
  auto* mod = new Module;
  char name[256] = {}, behave[32] = {};
  if (std::sscanf(text.c_str(), "FAKECUBIN name=%255s us=%lf behave=%31s", name, &mod->us, behave) != 3) {
    delete mod;
    return CUDA_ERROR_INVALID_IMAGE;
  }
  mod->name = name;
  mod->behave = behave;
  *out = reinterpret_cast<CUmodule>(mod);
  return CUDA_SUCCESS;
}
CUresult cuModuleUnload(CUmodule m) {
  delete reinterpret_cast<Module*>(m);
  return CUDA_SUCCESS;
}
CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  const auto* mod = reinterpret_cast<Module*>(m);
  if (mod->name != name) return CUDA_ERROR_NOT_FOUND;
  *f = reinterpret_cast<CUfunction>(m);  // the module is the function
  return CUDA_SUCCESS;
}
CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute attribute, int value) {
  // sm_90: up to 227 KiB of dynamic shared memory per block.
  if (!f || attribute != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || value < 0 || value > 227 * 1024)
    return CUDA_ERROR_INVALID_VALUE;
  reinterpret_cast<Module*>(f)->dynamic_allowed = value;
  return CUDA_SUCCESS;
}
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned, unsigned,
                        unsigned shared, CUstream, void** params, void**) {
  if (g_sticky) return g_sticky;
  const auto* mod = reinterpret_cast<const Module*>(f);
  // As the driver: more than 48 KiB of dynamic shared memory only once allowed; and a
  // skinny kernel whose ring is dynamic faults without it.
  if (shared > 48 * 1024 && static_cast<int>(shared) > mod->dynamic_allowed) return CUDA_ERROR_INVALID_VALUE;
  if (const unsigned need = skinny_dynamic_bytes(mod->name); shared < need)
    return fault(mod->name + " launched with " + std::to_string(shared) + " bytes of dynamic shared memory, its ring needs " +
                 std::to_string(need));
  if (mod->behave == "refuse") return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  if (mod->behave == "flush") return run_flush(*static_cast<StreamReadArgs*>(params[0]), gx, bx);
  if (mod->name.rfind("moe_align", 0) == 0)
    return kernel_result(*mod, fake_mxfp4::align(mod->behave, *static_cast<kf_moe_align_args*>(params[0]), gx, bx, kEnv),
                         true);
  if (mod->name.rfind("w4a16_moe_gemm", 0) == 0)
    return kernel_result(*mod, fake_moe::gemm(mod->name, mod->behave, *static_cast<kf_moe_gemm_args*>(params[0]), gx, gy,
                                              gz, kEnv));
  if (mod->name.rfind("moe_silu_mul", 0) == 0)
    return kernel_result(*mod, fake_moe::silu_mul(mod->name, mod->behave, *static_cast<kf_moe_silu_mul_args*>(params[0]),
                                                  gx, bx, kEnv));
  if (mod->name.rfind("moe_sum", 0) == 0)
    return kernel_result(*mod, fake_moe::sum(mod->name, mod->behave, *static_cast<kf_moe_sum_args*>(params[0]), gx, bx,
                                             kEnv));
  if (mod->name.rfind("mxfp4_moe_gemm", 0) == 0)
    return kernel_result(*mod, fake_mxfp4::gemm(mod->name, mod->behave, *static_cast<kf_mxfp4_moe_gemm_args*>(params[0]),
                                                gx, gy, gz, bx, 32, kEnv));
  if (mod->name.rfind("sparse_mla_decode", 0) == 0)
    return kernel_result(*mod, fake_mla::decode(mod->name, mod->behave, *static_cast<kf_mla_decode_args*>(params[0]), gx,
                                                gy, gz, bx, 32, kEnv));
  if (mod->name.rfind("sparse_mla_combine", 0) == 0)
    return kernel_result(*mod, fake_mla::combine(mod->name, mod->behave, *static_cast<kf_mla_combine_args*>(params[0]),
                                                 gx, bx, kEnv));
  return run_linear(*mod, *static_cast<kf_linear_args*>(params[0]), bx);
}
CUresult cuStreamCreate(CUstream* s, unsigned int) { return *s = handle<CUstream>(), CUDA_SUCCESS; }
CUresult cuStreamDestroy(CUstream) { return CUDA_SUCCESS; }
CUresult cuStreamQuery(CUstream) { return g_sticky ? g_sticky : g_hung ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS; }
CUresult cuEventCreate(CUevent* e, unsigned int) {
  *e = handle<CUevent>();
  g_events[*e] = -1;
  return CUDA_SUCCESS;
}
CUresult cuEventDestroy(CUevent e) { return g_events.erase(e) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE; }
CUresult cuEventRecord(CUevent e, CUstream) {
  if (!g_events.count(e)) return CUDA_ERROR_INVALID_HANDLE;
  g_events[e] = g_now_us;
  return g_sticky;
}
CUresult cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
  if (!g_events.count(a) || !g_events.count(b) || g_events[a] < 0 || g_events[b] < 0) return CUDA_ERROR_INVALID_HANDLE;
  *ms = static_cast<float>((g_events[b] - g_events[a]) / 1000);
  return CUDA_SUCCESS;
}

}  // extern "C"
