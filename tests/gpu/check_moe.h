// Shared parts of kforge_check_moe (check_moe.cpp: main, align, elementwise and GEMM
// checks; check_moe_layer.cpp: whole layers and bad input): device buffers, the tally
// of checks, output judging, and the Checker that walks a pack's MoE kernels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cu_check.h"
#include "cuda_driver.h"
#include "gpu_check_util.h"
#include "kforge/kforge.h"
#include "linear_reference.h"
#include "moe_family.h"
#include "moe_check_reference.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace moe_check {

// The driver table (set once in main).
extern const cuda::Driver* cu;

constexpr uint16_t kPoison16 = 0xffff;      // NaN in bf16 and fp16
constexpr uint32_t kPoison32 = 0x7f7f7f7fu; // an int no align result can hold
// Layers run back to back by the overlap check (check_moe_layer.cpp), at T up to this
// (where the skinny GEMMs that overlap the kernel before them serve).
constexpr int kOverlapRepeats = 16;
constexpr int64_t kOverlapCheckMaxT = 64;
constexpr int64_t kGuard = 64;              // poisoned entries / rows past every buffer's end

struct Buf {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  Buf() = default;
  explicit Buf(size_t n) : bytes(std::max<size_t>(n, 256)) { CU_CHECK(cu->cuMemAlloc(&ptr, bytes)); }
  Buf(const Buf&) = delete;
  ~Buf() {
    if (ptr) cu->cuMemFree(ptr);
  }
  template <class T>
  void up(const std::vector<T>& v) {
    if (!v.empty()) CU_CHECK(cu->cuMemcpyHtoD(ptr, v.data(), v.size() * sizeof(T)));
  }
  template <class T>
  std::vector<T> down(size_t count) const {
    std::vector<T> v(count);
    if (count) CU_CHECK(cu->cuMemcpyDtoH(v.data(), ptr, count * sizeof(T)));
    return v;
  }
  void poison16() { CU_CHECK(cu->cuMemsetD16(ptr, kPoison16, bytes / 2)); }
  void poison32() { CU_CHECK(cu->cuMemsetD32(ptr, kPoison32, bytes / 4)); }
  template <class T = void>
  T* p() const { return reinterpret_cast<T*>(ptr); }
};

struct Options {
  std::string pack, arch = "sm_90a", filter = ".*", csv;
  std::vector<int64_t> ts = {1, 3, 16, 100, 512};
  std::vector<RoutingArchetype> archetypes = all_routing_archetypes();
  uint64_t seed = 0;
  bool candidates = true;  // false: only the runtime's picks, layers and bad input
};

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
  std::ofstream csv;
  void line(const std::string& section, const std::string& what, const std::string& why, double err = -1,
            double tol = -1) {
    const bool ok = why.empty();
    (ok ? passed : failed)++;
    if (err >= 0)
      std::printf("%s %-9s %s err=%.3g tol=%.3g%s%s\n", ok ? "PASS" : "FAIL", section.c_str(), what.c_str(), err, tol,
                  ok ? "" : ": ", why.c_str());
    else
      std::printf("%s %-9s %s%s%s\n", ok ? "PASS" : "FAIL", section.c_str(), what.c_str(), ok ? "" : ": ", why.c_str());
    if (csv) csv << section << ",\"" << what << "\"," << err << "," << tol << ",\"" << (ok ? "pass" : why) << "\"\n";
    std::fflush(stdout);
  }
  void skip(const std::string& section, const std::string& what, const std::string& why) {
    ++skipped;
    std::printf("SKIP %-9s %s: %s\n", section.c_str(), what.c_str(), why.c_str());
    if (csv) csv << section << ",\"" << what << "\",,,\"skipped: " << why << "\"\n";
  }
};

inline std::string status_text(kf_status st) { return std::string(kf_status_name(st)) + ": " + kf_last_error(); }

inline void sync() { CU_CHECK(cu->cuCtxSynchronize()); }

// Everything written must be: all poisoned entries from `from` on (guard rows, rows past
// the end) still poisoned.
template <class T>
inline std::string untouched_from(const std::vector<T>& v, size_t from, T poison, const char* what) {
  for (size_t i = from; i < v.size(); ++i)
    if (v[i] != poison) return std::string("wrote ") + what + " entry " + std::to_string(i) + " past the end";
  return "";
}

inline std::vector<float> random_weights(int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(0.1f, 1.f);
  std::vector<float> v(count);
  for (auto& w : v) w = u(rng);
  return v;
}

inline std::string case_name(int64_t e, int64_t top_k, int64_t t, RoutingArchetype a) {
  return "E=" + std::to_string(e) + " top_k=" + std::to_string(top_k) + " T=" + std::to_string(t) + " " +
         routing_archetype_name(a);
}

// Rows [0, rows) of y [(rows + kGuard) x n] compared with ref where `mask` (all when
// empty); unmasked rows and guard rows must still hold the poison.
inline std::string judge_rows(const std::vector<uint16_t>& y, const std::vector<double>& ref, int64_t rows, int64_t n,
                       bool bf16, const std::vector<char>& mask, double tol, double* err_out) {
  const RowErrors e = row_errors(y, ref, rows, n, bf16, mask);
  *err_out = e.total;
  if (!(e.total <= tol))
    return std::isinf(e.total) ? "unwritten or non-finite output (row " + std::to_string(e.worst) + ")"
                               : "error above tolerance";
  if (!(e.worst_row <= 4 * tol))
    return "row " + std::to_string(e.worst) + " off by " + std::to_string(e.worst_row) + " of the mean row norm";
  for (int64_t r = 0; r < rows; ++r)
    if (!mask.empty() && !mask[r])
      for (int64_t j = 0; j < n; ++j)
        if (y[r * n + j] != kPoison16) return "wrote row " + std::to_string(r) + " of a dropped slot";
  for (size_t i = rows * n; i < y.size(); ++i)
    if (y[i] != kPoison16)
      return "wrote row " + std::to_string(i / n) + " past the " + std::to_string(rows) + " rows (padding or guard)";
  return "";
}

// Tokens whose every choice is dropped must come out exactly zero.
inline std::string zero_tokens(const std::vector<uint16_t>& y, const std::vector<int32_t>& ids, int64_t t, int top_k,
                        int experts, int64_t n) {
  for (int64_t tok = 0; tok < t; ++tok) {
    bool any = false;
    for (int j = 0; j < top_k; ++j) any |= ids[tok * top_k + j] >= 0 && ids[tok * top_k + j] < experts;
    if (!any)
      for (int64_t i = 0; i < n; ++i)
        if ((y[tok * n + i] & 0x7fff) != 0) return "token " + std::to_string(tok) + " has no expert but is not zero";
  }
  return "";
}

// A kernel row of the pack, read without changing the file (kf::Pack::open would
// migrate an older schema in place; a check must not).
using gpu_check::KernelRow;
using gpu_check::read_kernels;

struct Gemm {
  KernelRow k;
  MoeShape shape;
  LinearConfig cfg;
  CUmodule mod = nullptr;
  CUfunction fn = nullptr;

  // Loads the code object; a skinny ring above 48 KiB and a wgmma ring are allowed their
  // dynamic shared memory.
  void load() {
    CU_CHECK(cu->cuModuleLoadData(&mod, k.code_object.data()));
    CU_CHECK(cu->cuModuleGetFunction(&fn, mod, k.name.c_str()));
    if (const int bytes = linear_dynamic_shared(shape.expert(), cfg); bytes > 0)
      CU_CHECK(cu->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
  }
};

// Device state of one routing: ids, weights, and align results per block_m.
struct Routing {
  int64_t t = 0;
  int top_k = 0, experts = 0;
  RoutingArchetype archetype{};
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

class Checker {
 public:
  Checker(const Options& opt, Tally& tally, kf_db* db) : opt_(opt), tally_(tally), db_(db) {
    threads_ = std::max(1u, std::thread::hardware_concurrency());
    rng_.seed(opt.seed);
    const std::regex filter(opt.filter);
    for (auto& k : read_kernels(opt.pack, opt.arch, {"w4a16_moe_gemm1", "w4a16_moe_gemm2"})) {
      if (!std::regex_search(k.name, filter)) continue;
      Gemm g;
      g.shape = parse_moe_shape(k.op, k.shape);
      g.cfg = parse_linear_config(k.kind, k.config);
      g.k = std::move(k);
      gemms_[g.k.op + " " + g.k.shape].push_back(std::move(g));
    }
    for (auto& k : read_kernels(opt.pack, opt.arch, {"moe_align", "moe_silu_mul", "moe_sum"})) helpers_.insert(k.name);
  }

  size_t gemm_count() const {
    size_t n = 0;
    for (auto& [key, list] : gemms_) n += list.size();
    return n;
  }
  size_t shape_count() const { return gemms_.size(); }
  const std::set<std::string>& helpers() const { return helpers_; }

  void run_align();
  void run_elementwise();
  void run_gemms();
  void run_layers();
  void run_bad_inputs();

 private:
  Routing make_routing(int64_t t, int experts, int top_k, RoutingArchetype a) {
    Routing r;
    r.t = t;
    r.experts = experts;
    r.top_k = top_k;
    r.archetype = a;
    r.ids = edge_routing(a, t, experts, top_k, rng_());
    r.weights = random_weights(t * top_k, rng_);
    return r;
  }
  // (E, top_k) pairs to check align and sum with: a small one and the pack's.
  std::set<std::pair<int, int>> routing_cases() const {
    std::set<std::pair<int, int>> cases = {{8, 2}};
    for (auto& [key, list] : gemms_)
      cases.insert({static_cast<int>(list[0].shape.experts), static_cast<int>(list[0].shape.top_k)});
    return cases;
  }
  // Uploads the host align result for `bm` (unused tail: slot 0 with another expert).
  void upload_align(const Routing& r, int bm, Buf& sorted, Buf& experts, Buf& num_padded) {
    const AlignRef ref = align_reference(r.ids, r.t, r.top_k, r.experts, bm);
    std::vector<int32_t> s, e;
    align_buffers(ref, r.t, r.top_k, r.experts, bm, 0, (std::max(r.ids[0], 0) + 1) % r.experts, s, e);
    sorted.up(s);
    experts.up(e);
    num_padded.up(std::vector<int32_t>{static_cast<int32_t>(ref.num_padded)});
  }
  // Launches a candidate with the launch.h geometry; returns the launch error or "".
  std::string launch_gemm(const Gemm& g, kf_moe_gemm_args& a) {
    const int64_t cap = moe::sorted_capacity(a.t, a.top_k, a.experts, g.cfg.block_m);
    const w4a16::Grid grid = moe::gemm_grid(g.cfg.kind == LinearKind::prefill || g.cfg.kind == LinearKind::wgmma, g.shape.n, cap, g.cfg.block_m,
                                            g.cfg.block_n, g.cfg.split_k);
    void* params[] = {&a};
    CUresult rc = cu->cuLaunchKernel(g.fn, grid.x, grid.y, grid.z, g.k.threads, 1, 1,
                                     static_cast<unsigned>(linear_dynamic_shared(g.shape.expert(), g.cfg)), nullptr,
                                     params, nullptr);
    if (rc == CUDA_SUCCESS) rc = cu->cuCtxSynchronize();
    if (rc == CUDA_SUCCESS) return "";
    const char* msg = nullptr;
    cu->cuGetErrorString(rc, &msg);
    std::printf("FAIL gemm      %s T=%d: launch failed: %s (stopping: the context is unusable after a fault)\n",
                g.k.name.c_str(), a.t, msg ? msg : "?");
    std::printf("%d passed, %d failed (%d skipped)\n", tally_.passed, tally_.failed + 1, tally_.skipped);
    std::exit(1);
  }
  // The pack's layers: gemm1 / gemm2 candidate lists of one (E, top_k, H, I, dtype, quant).
  std::vector<std::pair<std::vector<Gemm>*, std::vector<Gemm>*>> layers();
  void layer_checks(std::vector<Gemm>& gemm1, std::vector<Gemm>& gemm2);
  void overlap_check(const kf_moe_shape& ms, const kf_moe_layer_args& la, int64_t t, int64_t hidden, const Routing& r,
                     const MoeWeights& w1, const MoeWeights& w2, const std::vector<double>& ref, double tol,
                     const std::string& what);

  const Options& opt_;
  Tally& tally_;
  kf_db* db_;
  int threads_ = 1;
  std::mt19937_64 rng_;
  std::map<std::string, std::vector<Gemm>> gemms_;
  std::set<std::string> helpers_;
};

}  // namespace moe_check
}  // namespace kf
