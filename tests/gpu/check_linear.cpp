// kforge_check_linear: runs every w4a16_linear kernel of a pack on an NVIDIA GPU
// (CUDA driver API) against the float64 CPU reference on fresh random data, with the
// output poisoned (NaN) before each launch. Checks, per kernel and M:
//   - normalised error ||y - ref|| / ||ref|| within linear_tolerance(dtype);
//   - every output element of the M rows written (no NaN left), rows past M untouched;
//   - split-K counters back to zero (the kernel's own contract);
//   - stream-K kernels (_stkB) also on a grid below B, as on a part with fewer SMs: the
//     kernel deals its steps out over the blocks it gets.
// Prints a line per failure and a table of the worst error per kernel class; exit 1
// on any failure, 77 when no GPU is present (reported as skipped, never as passed).
#include "cu_check.h"
#include "cuda_driver.h"
#include "gpu_check_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "linear_family.h"
#include "linear_reference.h"
#include "pack.h"
#include "w4a16_linear/args.h"

namespace {

const kf::cuda::Driver* cu = nullptr;

struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(std::max<size_t>(n, 16)) { CU_CHECK(cu->cuMemAlloc(&ptr, bytes)); }
  ~DeviceBuffer() { cu->cuMemFree(ptr); }
  template <class T>
  void upload(const std::vector<T>& v) {
    if (!v.empty()) CU_CHECK(cu->cuMemcpyHtoD(ptr, v.data(), v.size() * sizeof(T)));
  }
};

struct Options {
  std::string pack, arch = "sm_90a", filter = ".*", csv;
  std::vector<int64_t> ms = {1, 7, 16, 64, 333};
  uint64_t seed = 0;
  bool include_pruned = false;
  std::vector<unsigned> stream_grids;  // stream-K launches besides the planned grid (default: 7/12 of it)
};

// Poisoned rows past the largest M: a kernel writing beyond row M is caught there too,
// not only at the smaller Ms.
constexpr int64_t kGuardRows = 16;

struct ClassStats {
  int runs = 0, failures = 0;
  double max_err = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  const kf::gpu_check::Options common = kf::gpu_check::parse_options(
      argc, argv, "kforge_check_linear: every w4a16_linear kernel of a pack against the CPU reference", "m",
      "M values", opt.ms, [&](CLI::App& app) {
        app.add_option("--csv", opt.csv, "also write every check as a CSV row to this file");
        app.add_flag("--include-pruned", opt.include_pruned, "also the kernels pruned at generation (not compile errors)");
        app.add_option("--stream-grids", opt.stream_grids,
                       "stream-K kernels (_stkB) also run on these block counts, each at most B (default: 7/12 of B)")
            ->delimiter(',');
      });
  opt.pack = common.pack;
  opt.arch = common.arch;
  opt.filter = common.filter;
  opt.ms = common.sizes;
  opt.seed = common.seed;

  int devices = 0;
  const char* why = "no CUDA device";
  cu = kf::cuda::driver(&why);
  if (!cu || cu->cuInit(0) != CUDA_SUCCESS || cu->cuDeviceGetCount(&devices) != CUDA_SUCCESS || devices == 0) {
    std::printf("SKIPPED: %s; nothing was checked\n", cu ? "no CUDA GPU on this machine" : why);
    return 77;
  }
  CUdevice dev;
  CU_CHECK(cu->cuDeviceGet(&dev, 0));
  char dev_name[256];
  CU_CHECK(cu->cuDeviceGetName(dev_name, sizeof dev_name, dev));
  CUcontext ctx;
  CU_CHECK(cu->cuDevicePrimaryCtxRetain(&ctx, dev));
  CU_CHECK(cu->cuCtxSetCurrent(ctx));

  const kf::Pack pack = kf::Pack::open_read_only(opt.pack);  // never migrates a tracked DB
  const std::string where = "op = 'w4a16_linear' AND arch = '" + opt.arch + "' AND status " +
                            (opt.include_pruned ? "!= 'compile_error'" : "= 'ok'");
  std::vector<kf::PackKernel> kernels = pack.kernels(where);
  const std::regex filter(opt.filter);
  kernels.erase(std::remove_if(kernels.begin(), kernels.end(),
                               [&](const kf::PackKernel& k) { return !std::regex_search(k.name, filter); }),
                kernels.end());
  // Generic kernels (shape any_<dtype>_<quant>) run on every shape of their dtype/quant.
  std::map<std::string, std::vector<const kf::PackKernel*>> by_shape, generic;
  for (const auto& k : kernels) (k.kind == "generic" ? generic : by_shape)[k.shape].push_back(&k);
  for (auto& [key, list] : by_shape) {
    const kf::LinearShape s = kf::parse_linear_shape(key);
    for (const auto* g : generic[kf::linear_generic_shape_key(s.bf16, s.asym)]) list.push_back(g);
  }
  std::printf("device: %s   pack: %s   arch: %s   kernels: %zu   shapes: %zu   seed: %llu\n", dev_name,
              opt.pack.c_str(), opt.arch.c_str(), kernels.size(), by_shape.size(),
              static_cast<unsigned long long>(opt.seed));

  std::ofstream csv;
  if (!opt.csv.empty()) {
    csv.open(opt.csv);
    csv << "kernel,shape,kind,m,normalised_error,tolerance,result\n";
  }
  std::mt19937_64 rng(opt.seed);
  const int64_t m_max = *std::max_element(opt.ms.begin(), opt.ms.end());
  const int host_threads = std::max(1u, std::thread::hardware_concurrency());
  std::map<std::string, ClassStats> classes;
  int total_runs = 0, total_failures = 0;

  for (const auto& [shape_key, shape_kernels] : by_shape) {
    const kf::LinearShape shape = kf::parse_linear_shape(shape_key);
    const kf::LinearProblem prob = kf::make_linear_problem(shape, m_max, rng);
    const std::vector<double> ref = kf::linear_reference(prob, host_threads);
    DeviceBuffer x(prob.x.size() * 2), qw(prob.qweight.size() * 4), sc(prob.scales.size() * 2),
        qz(prob.qzeros.size() * 4), y((m_max + kGuardRows) * shape.n * 2);
    x.upload(prob.x);
    qw.upload(prob.qweight);
    sc.upload(prob.scales);
    qz.upload(prob.qzeros);
    // Split-K scratch for the most demanding kernel of the shape at the largest M.
    int64_t ws_floats = 0, counter_ints = 0;
    for (const auto* k : shape_kernels) {
      const kf::LinearConfig c = kf::parse_linear_config(k->kind, k->config);
      ws_floats = std::max(ws_floats, kf::linear_workspace_floats(shape, c, m_max));
      counter_ints = std::max(counter_ints, kf::linear_counter_ints(shape, c, m_max));
    }
    DeviceBuffer ws(static_cast<size_t>(ws_floats) * 4);
    DeviceBuffer counters(static_cast<size_t>(counter_ints) * 4);
    CU_CHECK(cu->cuMemsetD32(counters.ptr, 0, counters.bytes / 4));
    std::vector<uint16_t> host_y((m_max + kGuardRows) * shape.n);
    std::vector<uint32_t> host_counters(counters.bytes / 4);

    for (const auto* k : shape_kernels) {
      const kf::LinearConfig cfg = kf::parse_linear_config(k->kind, k->config);
      CUmodule mod;
      CU_CHECK(cu->cuModuleLoadData(&mod, k->code_object.data()));
      CUfunction fn;
      CU_CHECK(cu->cuModuleGetFunction(&fn, mod, k->name.c_str()));
      if (const int bytes = kf::linear_dynamic_shared(shape, cfg); bytes > 0)  // skinny above 48 KiB, wgmma
        CU_CHECK(cu->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
      const std::string cls = k->kind + std::string(shape.bf16 ? " bf16" : " fp16") + (shape.asym ? " asym" : " sym") +
                              (shape.group == 0 ? " gch" : " g" + std::to_string(shape.group));
      for (int64_t m : opt.ms) {
        const kf::LaunchGrid planned = kf::linear_grid(shape, cfg, m);
        std::vector<unsigned> grid_x{planned.x};
        if (cfg.stream_blocks > 0) {
          if (opt.stream_grids.empty()) grid_x.push_back(std::max(1u, planned.x * 7 / 12));
          for (const unsigned b : opt.stream_grids)
            if (b >= 1 && b < planned.x) grid_x.push_back(b);
        }
        for (const unsigned gx : grid_x) {
          CU_CHECK(cu->cuMemsetD16(y.ptr, 0xffff, y.bytes / 2));  // NaN in fp16 and bf16
          kf_linear_args args{reinterpret_cast<void*>(x.ptr), reinterpret_cast<void*>(qw.ptr),
                              reinterpret_cast<void*>(sc.ptr), reinterpret_cast<void*>(qz.ptr),
                              reinterpret_cast<void*>(y.ptr), reinterpret_cast<float*>(ws.ptr),
                              reinterpret_cast<int*>(counters.ptr), static_cast<int>(m), static_cast<int>(shape.n),
                              static_cast<int>(shape.k), shape.effective_group()};
          void* params[] = {&args};
          CU_CHECK(cu->cuLaunchKernel(fn, gx, planned.y, planned.z, k->threads, 1, 1, planned.shared, nullptr, params,
                                      nullptr));
          CU_CHECK(cu->cuCtxSynchronize());
          CU_CHECK(cu->cuMemcpyDtoH(host_y.data(), y.ptr, host_y.size() * 2));
          CU_CHECK(cu->cuMemcpyDtoH(host_counters.data(), counters.ptr, counters.bytes));
          const double err = kf::normalised_error(host_y, ref, m, shape.n, shape.bf16);
          const double tol = kf::linear_tolerance(shape.bf16);
          std::string why;
          if (!(err <= tol)) why = std::isinf(err) ? "unwritten or non-finite output" : "error above tolerance";
          for (size_t i = m * shape.n; i < host_y.size() && why.empty(); ++i)
            if (host_y[i] != 0xffff) why = "wrote past row M";
          for (uint32_t c : host_counters)
            if (c != 0 && why.empty()) why = "split-K counter left non-zero";
          ClassStats& st = classes[cls];
          ++st.runs;
          ++total_runs;
          st.max_err = std::max(st.max_err, err);
          if (!why.empty()) {
            ++st.failures;
            ++total_failures;
            std::printf("FAIL %s m=%lld grid=%u err=%.3g tol=%.3g: %s\n", k->name.c_str(), static_cast<long long>(m), gx,
                        err, tol, why.c_str());
            CU_CHECK(cu->cuMemsetD32(counters.ptr, 0, counters.bytes / 4));
          }
          if (csv) csv << k->name << "," << shape_key << "," << k->kind << "," << m << "," << err << "," << tol << ","
                       << (why.empty() ? "pass" : why) << "\n";
        }
      }
      CU_CHECK(cu->cuModuleUnload(mod));
    }
  }

  std::printf("\n%-28s %8s %9s %14s %10s\n", "class", "runs", "failures", "max norm err", "tolerance");
  for (const auto& [cls, st] : classes)
    std::printf("%-28s %8d %9d %14.3g %10.3g\n", cls.c_str(), st.runs, st.failures, st.max_err,
                kf::linear_tolerance(cls.find("bf16") != std::string::npos));
  std::printf("%d passed, %d failed\n", total_runs - total_failures, total_failures);
  cu->cuDevicePrimaryCtxRelease(dev);
  return total_failures == 0 && total_runs > 0 ? 0 : 1;
}
