// kforge_check_linear: runs every w4a16_linear kernel of a pack on an NVIDIA GPU
// (CUDA driver API) against the float64 CPU reference on fresh random data, with the
// output poisoned (NaN) before each launch. Checks, per kernel and M:
//   - normalised error ||y - ref|| / ||ref|| within linear_tolerance(dtype);
//   - every output element of the M rows written (no NaN left), rows past M untouched;
//   - no read of x past row M: x's M rows end where its mapping ends (edge_mapping.h), so
//     such a read faults, zero-filled copies of the rows past M included;
//   - split-K counters back to zero (the kernel's own contract);
//   - stream-K kernels (_stkB) also on a grid below B, as on a part with fewer SMs: the
//     kernel deals its steps out over the blocks it gets.
// Prints a line per failure and a table of the worst error per kernel class; exit 1
// on any failure, 77 when no GPU is present (reported as skipped, never as passed).
// --edge-self-test instead proves the x placement can catch a bad read: the pack's
// kf_util_stream_read must read the last bytes before a mapping's end and must fault
// when its read runs 16 bytes past it.
#include "cu_check.h"
#include "cuda_driver.h"
#include "edge_mapping.h"
#include "gpu_check_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "linear_family.h"
#include "linear_reference.h"
#include "pack.h"
#include "util/stream_read_args.h"
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
  bool edge_self_test = false;
  std::vector<unsigned> stream_grids;  // stream-K launches besides the planned grid (default: 7/12 of it)
};

// Poisoned rows past the largest M: a kernel writing beyond row M is caught there too,
// not only at the smaller Ms.
constexpr int64_t kGuardRows = 16;
// The most rows of x one tile spans (the largest block_m of any kind): reserved unmapped
// address space after x's last row covers every row a tile past M could address.
constexpr int64_t kMaxTileRows = 256;

// --edge-self-test: a read ending at EdgeMapping::end() succeeds, one running 16 bytes past
// it faults. The second leaves the context unusable, so it comes last and the program ends.
int edge_self_test(const kf::Pack& pack, const std::string& arch, CUdevice dev) {
  const auto rows = pack.kernels("arch = '" + arch + "' AND name = 'kf_util_stream_read' AND status = 'ok'");
  if (rows.empty()) {
    std::fprintf(stderr, "edge self-test: the pack has no kf_util_stream_read for %s\n", arch.c_str());
    return 1;
  }
  CUmodule mod;
  CU_CHECK(cu->cuModuleLoadData(&mod, rows[0].code_object.data()));
  CUfunction fn;
  CU_CHECK(cu->cuModuleGetFunction(&fn, mod, "kf_util_stream_read"));
  kf::gpu_check::EdgeMapping mapping(cu, dev, 1 << 20, 1 << 20);
  DeviceBuffer sink(16);
  constexpr unsigned long long kBytes = 1 << 16;
  auto read = [&](CUdeviceptr from) {
    kf_stream_read_args a{reinterpret_cast<const void*>(from), kBytes, reinterpret_cast<unsigned*>(sink.ptr), 1, 0};
    void* params[] = {&a};
    CUresult rc = cu->cuLaunchKernel(fn, 1, 1, 1, KF_STREAM_READ_THREADS, 1, 1, 0, nullptr, params, nullptr);
    return rc == CUDA_SUCCESS ? cu->cuCtxSynchronize() : rc;
  };
  const CUresult inside = read(mapping.end() - kBytes);
  if (inside != CUDA_SUCCESS) {
    std::printf("FAIL edge self-test: a read ending at the mapping's end failed (CUresult %d)\n", inside);
    return 1;
  }
  const CUresult past = read(mapping.end() - kBytes + 16);
  if (past == CUDA_SUCCESS) {
    std::printf("FAIL edge self-test: a read 16 bytes past the mapping's end did not fault, so the x placement "
                "cannot catch reads past row M\n");
    return 1;
  }
  const char* msg = nullptr;
  cu->cuGetErrorString(past, &msg);
  std::printf("edge self-test passed: reading up to the mapping's end works, 16 bytes past it faults (%s)\n",
              msg ? msg : "?");
  return 0;
}

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
        app.add_flag("--edge-self-test", opt.edge_self_test,
                     "only prove that a read past x's mapping faults (the check's bound on reads past row M)");
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
  if (opt.edge_self_test) return edge_self_test(pack, opt.arch, dev);
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
    DeviceBuffer qw(prob.qweight.size() * 4), sc(prob.scales.size() * 2), qz(prob.qzeros.size() * 4),
        y((m_max + kGuardRows) * shape.n * 2);
    // Per M, x's first M rows flush against the end of their own mapping, with room for a
    // whole tile of rows (kMaxTileRows) reserved and unmapped after it.
    std::map<int64_t, std::unique_ptr<kf::gpu_check::EdgeMapping>> x_at_edge;
    const size_t row_bytes = static_cast<size_t>(shape.k) * 2;
    for (int64_t m : opt.ms) {
      auto& mapping = x_at_edge[m];
      if (mapping) continue;
      mapping = std::make_unique<kf::gpu_check::EdgeMapping>(cu, dev, m * row_bytes, kMaxTileRows * row_bytes);
      CU_CHECK(cu->cuMemcpyHtoD(mapping->end() - m * row_bytes, prob.x.data(), m * row_bytes));
    }
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
      if (cfg.block_m > kMaxTileRows) {
        std::fprintf(stderr, "%s: block_m %d is above the %lld rows reserved after x; raise kMaxTileRows\n",
                     k->name.c_str(), cfg.block_m, static_cast<long long>(kMaxTileRows));
        return 1;
      }
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
          const CUdeviceptr x = x_at_edge.at(m)->end() - m * row_bytes;
          kf_linear_args args{reinterpret_cast<void*>(x), reinterpret_cast<void*>(qw.ptr),
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
