#include "fake_cuda.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_subset.h"
#include "mxfp4_moe/args.h"
#include "sparse_mla/args.h"
#include "w4a16_linear/args.h"
#include "w4a16_moe/args.h"

namespace {

constexpr int kRecords = 64;
kf_fake_cuda_launch g_launches[kRecords];
int g_count = 0;
int g_loads = 0;
char g_fail_prefix[256] = {};
CUcontext const g_context = reinterpret_cast<CUcontext>(0x1000);

struct Module {
  char symbol[256];
  int dynamic_allowed;  // cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
};
constexpr unsigned kDefaultDynamicShared = 48 * 1024;

bool starts_with(const char* text, const char* prefix) { return std::strncmp(text, prefix, std::strlen(prefix)) == 0; }

// The argument struct's size, from the kernel family its symbol names.
size_t args_bytes(const char* symbol) {
  if (starts_with(symbol, "w4a16_linear_")) return sizeof(kf_linear_args);
  if (starts_with(symbol, "w4a16_moe_")) return sizeof(kf_moe_gemm_args);
  if (starts_with(symbol, "moe_align")) return sizeof(kf_moe_align_args);
  if (starts_with(symbol, "moe_silu_mul")) return sizeof(kf_moe_silu_mul_args);
  if (starts_with(symbol, "moe_sum")) return sizeof(kf_moe_sum_args);
  if (starts_with(symbol, "sparse_mla_decode_")) return sizeof(kf_mla_decode_args);
  if (starts_with(symbol, "sparse_mla_combine_")) return sizeof(kf_mla_combine_args);
  if (starts_with(symbol, "mxfp4_moe_")) return sizeof(kf_mxfp4_moe_gemm_args);
  return 0;
}

static_assert(sizeof(kf_moe_gemm_args) <= sizeof(kf_fake_cuda_launch::args), "record too small");
static_assert(sizeof(kf_mla_decode_args) <= sizeof(kf_fake_cuda_launch::args), "record too small");
static_assert(sizeof(kf_mxfp4_moe_gemm_args) <= sizeof(kf_fake_cuda_launch::args), "record too small");

CUresult record_launch(CUfunction function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                       unsigned bz, unsigned shared, CUstream stream, void** params, bool overlap) {
  const auto* m = reinterpret_cast<const Module*>(function);
  if (!m || !params || !params[0]) return CUDA_ERROR_INVALID_VALUE;
  if (shared > kDefaultDynamicShared && shared > static_cast<unsigned>(m->dynamic_allowed)) return CUDA_ERROR_INVALID_VALUE;
  if (g_fail_prefix[0] && starts_with(m->symbol, g_fail_prefix)) return CUDA_ERROR_UNKNOWN;
  if (g_count < kRecords) {
    kf_fake_cuda_launch& r = g_launches[g_count];
    std::snprintf(r.kernel, sizeof r.kernel, "%s", m->symbol);
    r.grid[0] = gx, r.grid[1] = gy, r.grid[2] = gz;
    r.block[0] = bx, r.block[1] = by, r.block[2] = bz;
    r.shared_bytes = shared;
    r.stream = stream;
    r.args_bytes = args_bytes(m->symbol);
    std::memcpy(r.args, params[0], r.args_bytes);
    r.overlap_previous = overlap;
  }
  ++g_count;
  return CUDA_SUCCESS;
}
}  // namespace

extern "C" {

int kf_fake_cuda_launch_count(void) { return g_count; }
const kf_fake_cuda_launch* kf_fake_cuda_launch_at(int i) { return i >= 0 && i < g_count && i < kRecords ? &g_launches[i] : nullptr; }
void kf_fake_cuda_reset(void) { g_count = 0; }
int kf_fake_cuda_loads(void) { return g_loads; }
void kf_fake_cuda_fail_launches_of(const char* prefix) {
  std::snprintf(g_fail_prefix, sizeof g_fail_prefix, "%s", prefix ? prefix : "");
}

CUresult cuInit(unsigned int) { return CUDA_SUCCESS; }
// 12.4, or KF_FAKE_CUDA_DRIVER_VERSION (e.g. 12020: a driver without overlapped launches
// under stream capture, which the runtime must then not use).
CUresult cuDriverGetVersion(int* v) {
  const char* forced = std::getenv("KF_FAKE_CUDA_DRIVER_VERSION");
  *v = forced ? std::atoi(forced) : 12040;
  return CUDA_SUCCESS;
}
CUresult cuGetErrorString(CUresult, const char** text) { return *text = "fake CUDA error", CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int* count) { return *count = 1, CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  if (ordinal != 0) return CUDA_ERROR_INVALID_VALUE;
  return *device = 0, CUDA_SUCCESS;
}
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
  std::snprintf(name, len, "NVIDIA H100 80GB HBM3");
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice) {
  *value = attribute == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR ? 9
           : attribute == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT   ? 132
                                                                      : 0;
  return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice) { return *context = g_context, CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxGetCurrent(CUcontext* context) { return *context = g_context, CUDA_SUCCESS; }
CUresult cuCtxGetDevice(CUdevice* device) { return *device = 0, CUDA_SUCCESS; }
CUresult cuCtxSynchronize(void) { return CUDA_SUCCESS; }
CUresult cuMemAlloc_v2(CUdeviceptr*, size_t) { return CUDA_ERROR_INVALID_VALUE; }
CUresult cuMemFree_v2(CUdeviceptr) { return CUDA_ERROR_INVALID_VALUE; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr, const void*, size_t) { return CUDA_ERROR_INVALID_VALUE; }
CUresult cuMemcpyDtoH_v2(void*, CUdeviceptr, size_t) { return CUDA_ERROR_INVALID_VALUE; }
CUresult cuMemsetD16_v2(CUdeviceptr, unsigned short, size_t) { return CUDA_ERROR_INVALID_VALUE; }
CUresult cuMemsetD32_v2(CUdeviceptr, unsigned int, size_t) { return CUDA_ERROR_INVALID_VALUE; }
CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  if (!image) return CUDA_ERROR_INVALID_IMAGE;
  ++g_loads;
  *module = reinterpret_cast<CUmodule>(new Module{});
  return CUDA_SUCCESS;
}
CUresult cuModuleUnload(CUmodule module) {
  delete reinterpret_cast<Module*>(module);
  return CUDA_SUCCESS;
}
CUresult cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
  auto* m = reinterpret_cast<Module*>(module);
  if (args_bytes(name) == 0) return CUDA_ERROR_NOT_FOUND;
  std::snprintf(m->symbol, sizeof m->symbol, "%s", name);
  *function = reinterpret_cast<CUfunction>(m);  // the module is the function
  return CUDA_SUCCESS;
}
CUresult cuFuncSetAttribute(CUfunction function, CUfunction_attribute attribute, int value) {
  // sm_90: up to 227 KiB of dynamic shared memory per block.
  if (!function || attribute != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || value < 0 || value > 227 * 1024)
    return CUDA_ERROR_INVALID_VALUE;
  reinterpret_cast<Module*>(function)->dynamic_allowed = value;
  return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shared, CUstream stream, void** params, void**) {
  return record_launch(function, gx, gy, gz, bx, by, bz, shared, stream, params, false);
}

// Only the attribute kforge sets is understood; any other is refused, as an unknown one
// would be by the driver.
CUresult cuLaunchKernelEx(const CUlaunchConfig* c, CUfunction function, void** params, void**) {
  if (!c) return CUDA_ERROR_INVALID_VALUE;
  bool overlap = false;
  for (unsigned i = 0; i < c->numAttrs; ++i) {
    if (c->attrs[i].id != CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION) return CUDA_ERROR_INVALID_VALUE;
    overlap = c->attrs[i].value.programmaticStreamSerializationAllowed != 0;
  }
  return record_launch(function, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ,
                       c->sharedMemBytes, c->hStream, params, overlap);
}

}  // extern "C"
