// A fake libamdhip64 for testing autotune's HIP measurer without a GPU
// (LD_LIBRARY_PATH=<dir of this library> autotune --measurer hip ...), the HIP twin of
// fake_libcuda.cpp (read that for the model): host memory as device memory, kernels run
// synchronously on the CPU, a virtual clock (a kernel costs `us` after a flush, us / 2
// otherwise), sticky faults until hipDeviceReset, every buffer a launch touches checked
// against the live allocations. Code objects are text,
// "FAKEHSACO name=<symbol> us=<cost> behave=<b>", b as in fake_libcuda.cpp. The device
// is a gfx942 with features in gcnArchName, which the measurer must strip. The sparse MLA
// kernels are fake_mla.h's, the mxfp4_moe GEMMs and moe_align fake_mxfp4.h's, the w4a16_moe
// GEMMs, moe_silu_mul and moe_sum fake_moe.h's (wave64: a kernel's threads are its warps x 64).
#include <hip/hip_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "fake_mla.h"
#include "fake_moe.h"
#include "fake_mxfp4.h"
#include "linear_reference.h"
#include "w4a16_linear/args.h"

namespace {

struct Module {
  std::string name, behave;
  double us = 1;
};

hipError_t g_sticky = hipSuccess;
bool g_hung = false, g_cold = true;
double g_now_us = 0;
std::map<uintptr_t, std::pair<std::unique_ptr<char[]>, size_t>> g_allocs;
std::map<hipEvent_t, double> g_events;
int g_next_handle = 1;

template <class T>
T handle() {
  return reinterpret_cast<T>(static_cast<uintptr_t>(0x1000 * g_next_handle++));
}

void complain(const std::string& what) { std::fprintf(stderr, "fake libamdhip64: %s\n", what.c_str()); }

// [p, p + bytes) inside one live allocation, else null.
char* live(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  return a + bytes <= it->first + it->second.second ? reinterpret_cast<char*>(a) : nullptr;
}

int config_value(const std::string& name, const std::string& key) {
  const size_t at = name.find("_" + key);
  return at == std::string::npos ? 1 : std::atoi(name.c_str() + at + 1 + key.size());
}

hipError_t fault(const std::string& why) {
  complain("illegal address: " + why);
  g_sticky = hipErrorIllegalAddress;
  return hipSuccess;  // reported asynchronously, as on a GPU
}

hipError_t run_linear(const Module& mod, const kf_linear_args& a, unsigned threads) {
  const bool bf16 = mod.name.find("_bf16_") != std::string::npos, asym = mod.name.find("_asym") != std::string::npos;
  const int64_t m = a.m, n = a.n, k = a.k, g = a.group;
  if (m < 1 || n < 1 || k < 1 || g < 1 || k % g || threads == 0) return hipErrorInvalidValue;
  const int sk = config_value(mod.name, "sk"), bm = config_value(mod.name, "bm"), bn = config_value(mod.name, "bn");
  const int64_t over = mod.behave == "overrun";
  auto* x = reinterpret_cast<const uint16_t*>(live(a.x, m * k * 2));
  auto* qw = reinterpret_cast<const uint32_t*>(live(a.qweight, k / 8 * n * 4));
  auto* sc = reinterpret_cast<const uint16_t*>(live(a.scales, k / g * n * 2));
  auto* qz = reinterpret_cast<const uint32_t*>(asym ? live(a.qzeros, k / g * n / 8 * 4) : "");
  auto* y = reinterpret_cast<uint16_t*>(live(a.y, (m + over) * n * 2));
  if (!x || !qw || !sc || !qz || !y) return fault(mod.name + ": x, qweight, scales, qzeros or y too small");
  int* counters = nullptr;
  if (sk > 1) {
    const int64_t tiles = (n / bn) * ((m + bm - 1) / bm);
    if (!live(a.workspace, sk * m * n * 4)) return fault(mod.name + ": split-K workspace too small");
    if (!(counters = reinterpret_cast<int*>(live(a.counters, tiles * 4))))
      return fault(mod.name + ": split-K counters too small");
    for (int64_t i = 0; i < tiles; ++i)
      if (counters[i] != 0) complain(mod.name + ": launched with non-zero split-K counters");
  }
  if (mod.behave == "fault") return fault(mod.name + ": injected");
  if (mod.behave != "nan" && y[0] == 0xffff)  // a verification run (y poisoned): compute
    for (int64_t r = 0; r < m + over; ++r)
      for (int64_t c = 0; c < n; ++c) {
        float acc = 0;
        for (int64_t kk = 0; kk < k && r < m; ++kk) {
          const int64_t grp = kk / g;
          const uint32_t q = (qw[(kk / 8) * n + c] >> (4 * (kk % 8))) & 15u;
          const uint32_t z = asym ? (qz[grp * (n / 8) + c / 8] >> (4 * (c % 8))) & 15u : 8u;
          acc += kf::half_bits_to_float(x[r * k + kk], bf16) * (static_cast<float>(q) - z) *
                 kf::half_bits_to_float(sc[grp * n + c], bf16);
        }
        y[r * n + c] = kf::float_to_half_bits(acc + (mod.behave == "wrong" ? 0.25f : 0.f), bf16);
      }
  if (mod.behave == "counters" && counters) counters[0] = 1;
  g_now_us += g_cold ? mod.us : mod.us / 2;
  g_cold = false;
  if (mod.behave == "hang") g_hung = true;
  return hipSuccess;
}

// The kernels of fake_moe.h, fake_mxfp4.h and fake_mla.h: their outcome as a HIP result,
// timed like the others (moe_align costs 2 us).
hipError_t kernel_result(const Module& mod, const fake_kernel::Outcome& r, bool align = false) {
  if (r.what == fake_kernel::Outcome::invalid) return hipErrorInvalidValue;
  if (r.what == fake_kernel::Outcome::fault) return fault(r.why);
  if (align) {
    g_now_us += 2;
    return hipSuccess;
  }
  g_now_us += g_cold ? mod.us : mod.us / 2;
  g_cold = false;
  if (mod.behave == "hang") g_hung = true;
  return hipSuccess;
}
hipError_t kernel_result(const Module& mod, const fake_moe::Outcome& r) {
  if (!r.complaint.empty()) complain(r.complaint);
  return kernel_result(mod, r.result);
}

const fake_kernel::Env kEnv{live, kf::half_bits_to_float, kf::float_to_half_bits};

struct StreamReadArgs {
  const void* data;
  unsigned long long bytes;
  unsigned int* sink;
  unsigned int blocks;
  unsigned int reserved;
};

hipError_t run_flush(const StreamReadArgs& a, unsigned grid_x, unsigned threads) {
  if (threads != 256 || a.blocks != grid_x || a.bytes % 16 || a.bytes < (64u << 20) || !live(a.data, a.bytes) ||
      !live(a.sink, 4))
    return fault("bad kf_util_stream_read launch");
  g_now_us += 100;
  g_cold = true;
  return hipSuccess;
}

hipError_t fill(void* d, size_t n, size_t size, uint32_t v) {
  if (g_sticky) return g_sticky;
  char* p = live(d, n * size);
  if (!p) return hipErrorInvalidValue;
  for (size_t i = 0; i < n; ++i) std::memcpy(p + i * size, &v, size);  // little-endian: low bytes
  return hipSuccess;
}

}  // namespace

extern "C" {

hipError_t hipInit(unsigned int) { return hipSuccess; }
hipError_t hipGetDeviceCount(int* c) { return *c = 1, hipSuccess; }
hipError_t hipGetDevice(int* d) { return *d = 0, hipSuccess; }
hipError_t hipSetDevice(int d) { return d == 0 ? hipSuccess : hipErrorInvalidDevice; }
hipError_t hipGetDeviceProperties(hipDeviceProp_t* p, int d) {
  if (d != 0) return hipErrorInvalidDevice;
  std::snprintf(p->name, sizeof p->name, "kforge fake HIP device");
  std::snprintf(p->gcnArchName, sizeof p->gcnArchName, "gfx942:sramecc+:xnack-");
  return hipSuccess;
}
hipError_t hipDeviceGetAttribute(int* v, hipDeviceAttribute_t a, int) {
  *v = a == hipDeviceAttributeL2CacheSize ? 4 << 20 : a == hipDeviceAttributeMultiprocessorCount ? 6 : 0;
  return hipSuccess;
}
hipError_t hipDriverGetVersion(int* v) { return *v = 60241, hipSuccess; }
hipError_t hipRuntimeGetVersion(int* v) { return *v = 60241, hipSuccess; }
const char* hipGetErrorName(hipError_t e) {
  return e == hipErrorIllegalAddress         ? "hipErrorIllegalAddress"
         : e == hipErrorLaunchOutOfResources ? "hipErrorLaunchOutOfResources"
                                             : "hipErrorFake";
}
const char* hipGetErrorString(hipError_t e) {
  return e == hipErrorIllegalAddress ? "an illegal memory access was encountered" : "fake error";
}
hipError_t hipDeviceSynchronize() { return g_sticky; }
hipError_t hipDeviceReset() {
  g_allocs.clear();  // frees everything: stale pointers fault from now on
  g_events.clear();
  g_sticky = hipSuccess;
  g_hung = false;
  return hipSuccess;
}
hipError_t hipExtMallocWithFlags(void** p, size_t bytes, unsigned int) {
  if (g_sticky) return g_sticky;
  std::unique_ptr<char[]> data(new char[bytes]);
  *p = data.get();
  g_allocs[reinterpret_cast<uintptr_t>(*p)] = {std::move(data), bytes};
  return hipSuccess;
}
hipError_t hipFree(void* p) {
  if (!g_allocs.erase(reinterpret_cast<uintptr_t>(p))) {
    complain("hipFree of a pointer not allocated (or freed by a device reset)");
    return hipErrorInvalidValue;
  }
  return g_sticky;
}
hipError_t hipMemcpy(void* dst, const void* src, size_t bytes, hipMemcpyKind kind) {
  if (g_sticky) return g_sticky;
  const void* dev = kind == hipMemcpyHostToDevice ? dst : src;
  if ((kind != hipMemcpyHostToDevice && kind != hipMemcpyDeviceToHost) || !live(dev, bytes)) return hipErrorInvalidValue;
  std::memcpy(dst, src, bytes);
  return hipSuccess;
}
hipError_t hipMemsetD32(hipDeviceptr_t d, int v, size_t n) { return fill(d, n, 4, static_cast<uint32_t>(v)); }
hipError_t hipMemsetD16Async(hipDeviceptr_t d, unsigned short v, size_t n, hipStream_t) { return fill(d, n, 2, v); }
hipError_t hipMemsetD32Async(hipDeviceptr_t d, int v, size_t n, hipStream_t) {
  return fill(d, n, 4, static_cast<uint32_t>(v));
}
hipError_t hipModuleLoadData(hipModule_t* out, const void* image) {
  const std::string text(static_cast<const char*>(image));
  auto mod = std::make_unique<Module>();
  char name[256] = {}, behave[32] = {};
  if (std::sscanf(text.c_str(), "FAKEHSACO name=%255s us=%lf behave=%31s", name, &mod->us, behave) != 3)
    return hipErrorInvalidImage;
  mod->name = name;
  mod->behave = behave;
  *out = reinterpret_cast<hipModule_t>(mod.release());
  return hipSuccess;
}
hipError_t hipModuleUnload(hipModule_t m) {
  delete reinterpret_cast<Module*>(m);
  return hipSuccess;
}
hipError_t hipModuleGetFunction(hipFunction_t* f, hipModule_t m, const char* name) {
  if (reinterpret_cast<Module*>(m)->name != name) return hipErrorNotFound;
  *f = reinterpret_cast<hipFunction_t>(m);  // the module is the function
  return hipSuccess;
}
hipError_t hipModuleLaunchKernel(hipFunction_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned,
                                 unsigned, unsigned, hipStream_t, void** params, void**) {
  if (g_sticky) return g_sticky;
  const auto* mod = reinterpret_cast<const Module*>(f);
  if (mod->behave == "refuse") return hipErrorLaunchOutOfResources;
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
                                                gx, gy, gz, bx, 64, kEnv));
  if (mod->name.rfind("sparse_mla_decode", 0) == 0)
    return kernel_result(*mod, fake_mla::decode(mod->name, mod->behave, *static_cast<kf_mla_decode_args*>(params[0]), gx,
                                                gy, gz, bx, 64, kEnv));
  if (mod->name.rfind("sparse_mla_combine", 0) == 0)
    return kernel_result(*mod, fake_mla::combine(mod->name, mod->behave, *static_cast<kf_mla_combine_args*>(params[0]),
                                                 gx, bx, kEnv));
  return run_linear(*mod, *static_cast<kf_linear_args*>(params[0]), bx);
}
hipError_t hipStreamCreate(hipStream_t* s) { return *s = handle<hipStream_t>(), hipSuccess; }
hipError_t hipStreamDestroy(hipStream_t) { return hipSuccess; }
hipError_t hipStreamQuery(hipStream_t) { return g_sticky ? g_sticky : g_hung ? hipErrorNotReady : hipSuccess; }
hipError_t hipEventCreate(hipEvent_t* e) {
  *e = handle<hipEvent_t>();
  g_events[*e] = -1;
  return hipSuccess;
}
hipError_t hipEventDestroy(hipEvent_t e) { return g_events.erase(e) ? hipSuccess : hipErrorInvalidHandle; }
hipError_t hipEventRecord(hipEvent_t e, hipStream_t) {
  if (!g_events.count(e)) return hipErrorInvalidHandle;
  g_events[e] = g_now_us;
  return g_sticky;
}
hipError_t hipEventElapsedTime(float* ms, hipEvent_t a, hipEvent_t b) {
  if (!g_events.count(a) || !g_events.count(b) || g_events[a] < 0 || g_events[b] < 0) return hipErrorInvalidHandle;
  *ms = static_cast<float>((g_events[b] - g_events[a]) / 1000);
  return hipSuccess;
}

}  // extern "C"
