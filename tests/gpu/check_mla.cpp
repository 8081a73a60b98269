// kforge_check_mla: checks every sparse_mla_decode kernel of a pack (and the combine
// kernel its split configs need) on an NVIDIA GPU against the float64 host reference
// (tuner/mla_reference.h), on fresh random data, for a few query counts.
//
// The queries of a problem cover the defined edge cases of templates/sparse_mla/args.h:
//   q0       topk distinct random rows;
//   q1       duplicated rows, the tail of its slots -1, and a slot holding an index past
//            S (the kernels must read nothing for it: the reference sees -1 there);
//   q2       no index at all (o = 0, lse = -inf) unless the shape has extras;
//   q3..     distinct random rows.
// Shapes with extras (x128) give every query but q0 128 extra rows at a random start
// (q1's window overlaps its own indices: those rows count twice).
// Outputs o and lse are poisoned (NaN) before every launch and must be fully written.
// Tolerance: the normalised error ||o - ref|| / ||ref|| over the problem <= 1e-2 and
// every (query, head) row within 4x that of its own norm (P is rounded to 16 bits before
// P . V, as in every flash-style kernel); lse within 1e-2 absolute, -inf where the
// reference has no key.
// Where the pack has tuned winners, the runtime's path is checked the same way, on the
// same problems: kf_run_mla (selection by Q, decode, combine for split winners) on every
// shape and Q, and bad input (null q, Q = 0, heads not the shape's, scratch too small for
// a split winner, misaligned kv) must return the named error and leave o poisoned.
// A line per check, then "N passed, N failed"; exit 1 on any failure or when nothing
// was checked, 77 without a GPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gpu_check_util.h"
#include "kforge/kforge.h"
#include "linear_reference.h"
#include "mla_family.h"
#include "mla_reference.h"
#include "sparse_mla/args.h"
#include "sparse_mla/launch.h"

namespace {

using namespace kf;

using gpu_check::Buf;
using gpu_check::cu;
using gpu_check::KernelRow;

constexpr double kTolerance = 1e-2;
constexpr double kLseTolerance = 1e-2;
constexpr int64_t kKvRows = 4096;
constexpr int64_t kExtras = 128;




// One problem and its reference; `device_indices` differs from the reference's
// indices where a slot holds an index past S (the kernel reads nothing there).
struct Problem {
  MlaDecodeProblem p;
  std::vector<int32_t> device_indices;
  MlaDecodeResult ref;
};

std::vector<uint16_t> random_bf16(size_t n, std::mt19937_64& rng, bool bf16) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = float_to_half_bits(d(rng), bf16);
  return v;
}

Problem make_problem(const MlaShape& s, int64_t queries, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Problem pr;
  MlaDecodeProblem& p = pr.p;
  p.queries = queries;
  p.heads = s.heads;
  p.kv_rows = kKvRows;
  p.topk = s.topk;
  p.softmax_scale = 1.0 / std::sqrt(static_cast<double>(kMlaHeadDim));
  p.q = random_bf16(queries * s.heads * kMlaHeadDim, rng, s.bf16);
  p.kv = random_bf16(kKvRows * kMlaHeadDim, rng, s.bf16);
  std::vector<int32_t> perm(kKvRows);
  for (int64_t i = 0; i < kKvRows; ++i) perm[i] = static_cast<int32_t>(i);
  p.indices.assign(queries * s.topk, -1);
  pr.device_indices.assign(queries * s.topk, -1);
  for (int64_t q = 0; q < queries; ++q) {
    std::shuffle(perm.begin(), perm.end(), rng);
    int32_t* ref = &p.indices[q * s.topk];
    int32_t* dev = &pr.device_indices[q * s.topk];
    for (int64_t j = 0; j < s.topk; ++j) ref[j] = dev[j] = perm[j % kKvRows];
    if (q == 1) {
      const int64_t half = std::max<int64_t>(1, s.topk / 2);
      for (int64_t j = half; j < s.topk; ++j) ref[j] = dev[j] = -1;
      if (half >= 4) {
        ref[1] = dev[1] = ref[0];  // a duplicate counts twice
        ref[3] = -1;               // the kernel sees an index past S: it must read nothing
        dev[3] = static_cast<int32_t>(kKvRows + 5);
      }
    }
    if (q == 2)
      for (int64_t j = 0; j < s.topk; ++j) ref[j] = dev[j] = -1;
  }
  if (s.extras > 0) {
    p.extra_start.assign(queries, 0);
    p.extra_count.assign(queries, 0);
    std::uniform_int_distribution<int32_t> start(0, static_cast<int32_t>(kKvRows - kExtras));
    for (int64_t q = 1; q < queries; ++q) {
      // q1's extras overlap its first index row (rows listed twice count twice), kept
      // inside the cache whichever row the shuffle put first.
      p.extra_start[q] = q == 1 ? std::clamp(p.indices[q * s.topk] - 8, 0, static_cast<int32_t>(kKvRows - kExtras))
                                : start(rng);
      p.extra_count[q] = static_cast<int32_t>(kExtras);
    }
  }
  // The reference, one thread per query (each is independent).
  pr.ref.o.assign(queries * s.heads * kMlaLatentDim, 0.0);
  pr.ref.lse.assign(queries * s.heads, 0.0);
  std::vector<std::thread> pool;
  for (int64_t q = 0; q < queries; ++q)
    pool.emplace_back([&, q] {
      MlaDecodeProblem one = p;
      one.queries = 1;
      one.q.assign(p.q.begin() + q * s.heads * kMlaHeadDim, p.q.begin() + (q + 1) * s.heads * kMlaHeadDim);
      one.indices.assign(p.indices.begin() + q * s.topk, p.indices.begin() + (q + 1) * s.topk);
      if (!p.extra_start.empty()) {
        one.extra_start = {p.extra_start[q]};
        one.extra_count = {p.extra_count[q]};
      }
      const MlaDecodeResult r = mla_decode_reference(one);
      std::copy(r.o.begin(), r.o.end(), pr.ref.o.begin() + q * s.heads * kMlaLatentDim);
      std::copy(r.lse.begin(), r.lse.end(), pr.ref.lse.begin() + q * s.heads);
    });
  for (auto& t : pool) t.join();
  return pr;
}

// "" when o and lse match the reference within the tolerances; else why not.
std::string judge(const Problem& pr, bool bf16, const std::vector<uint16_t>& o, const std::vector<float>& lse,
                  double* err_out) {
  const int64_t rows = pr.p.queries * pr.p.heads;
  double diff2 = 0, ref2 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double rd = 0, rr = 0;
    for (int64_t d = 0; d < kMlaLatentDim; ++d) {
      const double got = half_bits_to_float(o[r * kMlaLatentDim + d], bf16);
      if (!std::isfinite(got)) {
        *err_out = INFINITY;
        return "row " + std::to_string(r) + " dim " + std::to_string(d) + " unwritten or not finite";
      }
      const double want = pr.ref.o[r * kMlaLatentDim + d];
      rd += (got - want) * (got - want);
      rr += want * want;
    }
    diff2 += rd;
    ref2 += rr;
    if (rr > 0 && std::sqrt(rd / rr) > 4 * kTolerance)
      return "row " + std::to_string(r) + " off by " + std::to_string(std::sqrt(rd / rr)) + " of its norm";
    if (rr == 0 && rd > 0) return "row " + std::to_string(r) + " has no key but is not zero";
    const double want_lse = pr.ref.lse[r];
    if (std::isinf(want_lse) ? !(std::isinf(lse[r]) && lse[r] < 0) : !(std::fabs(lse[r] - want_lse) <= kLseTolerance))
      return "lse of row " + std::to_string(r) + " is " + std::to_string(lse[r]) + ", expected " + std::to_string(want_lse);
  }
  *err_out = ref2 > 0 ? std::sqrt(diff2 / ref2) : 0;
  if (!(*err_out <= kTolerance)) return "error above tolerance";
  return "";
}

struct Loaded {
  CUmodule mod = nullptr;
  CUfunction fn = nullptr;
};

Loaded load(const KernelRow& k) {
  Loaded l;
  CU_CHECK(cu->cuModuleLoadData(&l.mod, k.code_object.data()));
  CU_CHECK(cu->cuModuleGetFunction(&l.fn, l.mod, k.name.c_str()));
  return l;
}

// A problem's inputs on the device (kv with room for a misaligned pointer into it), and
// the decode arguments over them.
struct DeviceInputs {
  const Problem& pr;
  Buf q, kv, idx, es, ec;
  explicit DeviceInputs(const Problem& problem)
      : pr(problem), q(pr.p.q.size() * 2), kv(pr.p.kv.size() * 2 + 64), idx(pr.device_indices.size() * 4),
        es(pr.p.queries * 4), ec(pr.p.queries * 4) {
    q.up(pr.p.q);
    kv.up(pr.p.kv);
    idx.up(pr.device_indices);
    es.up(pr.p.extra_start);
    ec.up(pr.p.extra_count);
  }
  kf_mla_decode_args args(const MlaShape& s, void* o, float* lse, float* part_o, float* part_lse) const {
    kf_mla_decode_args a{};
    a.q = q.p();
    a.kv = kv.p();
    a.indices = idx.p<int32_t>();
    a.extra_start = s.extras > 0 ? es.p<int32_t>() : nullptr;
    a.extra_count = s.extras > 0 ? ec.p<int32_t>() : nullptr;
    a.o = o;
    a.lse = lse;
    a.part_o = part_o;
    a.part_lse = part_lse;
    a.queries = static_cast<int>(pr.p.queries);
    a.kv_rows = static_cast<int>(pr.p.kv_rows);
    a.heads = static_cast<int>(s.heads);
    a.topk = static_cast<int>(s.topk);
    a.softmax_scale = static_cast<float>(pr.p.softmax_scale);
    return a;
  }
};


}  // namespace

int main(int argc, char** argv) {
  const gpu_check::Options opt =
      gpu_check::parse_options(argc, argv, "kforge_check_mla: every sparse_mla_decode kernel of a pack against the float64 reference", "q", "query counts", {1, 3, 8});
  const std::string &pack = opt.pack, &arch = opt.arch, &filter = opt.filter;
  const std::vector<int64_t>& qs = opt.sizes;
  const uint64_t seed = opt.seed;
  std::string device;
  gpu_check::start_device(&device);

  const std::regex re(filter);
  std::map<std::string, std::vector<KernelRow>> by_shape;  // decode kernels
  std::map<bool, KernelRow> combine;                       // per dtype
  for (auto& k : gpu_check::read_kernels_or_exit(pack, arch, {"sparse_mla_decode", "sparse_mla_combine"})) {
    if (k.op == kMlaCombineOp) combine[k.shape == "any_bf16"] = k;
    else if (std::regex_search(k.name, re)) by_shape[k.shape].push_back(k);
  }
  size_t kernels = 0;
  for (auto& [shape, list] : by_shape) kernels += list.size();
  std::printf("device: %s   pack: %s   arch: %s   sparse_mla_decode kernels: %zu in %zu shapes   seed: %llu\n", device.c_str(),
              pack.c_str(), arch.c_str(), kernels, by_shape.size(), static_cast<unsigned long long>(seed));
  int passed = 0, failed = 0;
  auto line = [&](const std::string& what, const std::string& why_not, double err) {
    (why_not.empty() ? passed : failed)++;
    std::printf("%s %s err=%.3g tol=%.3g%s%s\n", why_not.empty() ? "PASS" : "FAIL", what.c_str(), err, kTolerance,
                why_not.empty() ? "" : ": ", why_not.c_str());
    std::fflush(stdout);
  };
  if (kernels == 0) {
    std::printf("FAIL pack: no sparse_mla_decode kernel with status ok for %s\n", arch.c_str());
    return 1;
  }

  std::map<std::pair<std::string, int64_t>, Problem> problems;  // per (shape, Q), for both parts
  for (auto& [key, list] : by_shape) {
    const MlaShape s = parse_mla_shape(key);
    Loaded comb;
    if (combine.count(s.bf16)) comb = load(combine[s.bf16]);
    for (int64_t queries : qs) {
      const Problem& pr =
          problems
              .emplace(std::make_pair(key, queries),
                       make_problem(s, queries, seed ^ (static_cast<uint64_t>(queries) << 32) ^ std::hash<std::string>()(key)))
              .first->second;
      const DeviceInputs in(pr);
      Buf o(queries * s.heads * kMlaLatentDim * 2), lse(queries * s.heads * 4),
          part_o(mla::part_o_floats(mla::kMaxSplits, queries, s.heads) * 4),
          part_lse(mla::part_lse_floats(mla::kMaxSplits, queries, s.heads) * 4);
      for (const KernelRow& k : list) {
        const MlaConfig cfg = parse_mla_config(k.config, k.kind);
        const std::string what = k.name + " Q=" + std::to_string(queries);
        if (cfg.splits > 1 && !comb.fn) {
          line(what, "split kernel but the pack has no sparse_mla_combine kernel for its dtype", -1);
          continue;
        }
        const Loaded l = load(k);
        CU_CHECK(cu->cuMemsetD16(o.ptr, 0xffff, o.bytes / 2));
        CU_CHECK(cu->cuMemsetD32(lse.ptr, 0x7fc00000u, lse.bytes / 4));
        CU_CHECK(cu->cuMemsetD32(part_o.ptr, 0x7fc00000u, part_o.bytes / 4));
        CU_CHECK(cu->cuMemsetD32(part_lse.ptr, 0x7fc00000u, part_lse.bytes / 4));
        kf_mla_decode_args a = in.args(s, o.p(), lse.p<float>(), part_o.p<float>(), part_lse.p<float>());
        void* params[] = {&a};
        const mla::Grid g = mla::decode_grid(s.heads, queries, cfg.block_h, cfg.splits);
        const int shared = mla_dynamic_shared(cfg);
        if (shared > 0) CU_CHECK(cu->cuFuncSetAttribute(l.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shared));
        CU_CHECK(cu->cuLaunchKernel(l.fn, g.x, g.y, g.z, k.threads, 1, 1, shared, nullptr, params, nullptr));
        if (cfg.splits > 1) {
          kf_mla_combine_args c{part_o.p<float>(), part_lse.p<float>(), o.p(), lse.p<float>(),
                                static_cast<int>(queries), static_cast<int>(s.heads), cfg.splits};
          void* cparams[] = {&c};
          const mla::Grid cg = mla::combine_grid(queries, s.heads);
          CU_CHECK(cu->cuLaunchKernel(comb.fn, cg.x, 1, 1, mla::kCombineThreads, 1, 1, 0, nullptr, cparams, nullptr));
        }
        CU_CHECK(cu->cuCtxSynchronize());
        double err = -1;
        const std::string why_not = judge(pr, s.bf16, o.down<uint16_t>(queries * s.heads * kMlaLatentDim),
                                          lse.down<float>(queries * s.heads), &err);
        line(what, why_not, err);
        CU_CHECK(cu->cuModuleUnload(l.mod));
      }
    }
    if (comb.mod) CU_CHECK(cu->cuModuleUnload(comb.mod));
  }
  // ---- the runtime's pick, where the pack has winners
  kf_db* db = nullptr;
  const kf_status opened = kf_open(pack.c_str(), &db);
  if (opened == KF_ERR_NOT_FOUND) {
    // An untuned pack of MLA kernels alone has nothing the runtime may serve.
    std::printf("SKIP runtime: %s\n", kf_last_error());
  } else if (opened != KF_OK) {
    line("runtime kf_open", kf_last_error(), -1);
  } else {
    for (auto& [key, list] : by_shape) {
      const MlaShape s = parse_mla_shape(key);
      const kf_mla_shape shape{static_cast<int>(s.heads), static_cast<int>(s.topk), static_cast<int>(s.extras), s.bf16};
      const int64_t qmax = *std::max_element(qs.begin(), qs.end());
      size_t scratch_bytes = 0;
      if (kf_mla_scratch_bytes(db, &shape, qmax, &scratch_bytes) != KF_OK) {
        std::printf("SKIP runtime %s: %s\n", key.c_str(), kf_last_error());
        continue;
      }
      Buf scratch(scratch_bytes);
      for (int64_t queries : qs) {
        // The candidates' problem again: its float64 reference is the expensive part.
        const Problem& pr = problems.at(std::make_pair(key, queries));
        const DeviceInputs in(pr);
        Buf o(queries * s.heads * kMlaLatentDim * 2), lse(queries * s.heads * 4);
        CU_CHECK(cu->cuMemsetD16(o.ptr, 0xffff, o.bytes / 2));
        CU_CHECK(cu->cuMemsetD32(lse.ptr, 0x7fc00000u, lse.bytes / 4));
        const kf_mla_decode_args a = in.args(s, o.p(), lse.p<float>(), nullptr, nullptr);
        const kf_kernel* k = nullptr;
        const std::string what = "runtime kf_run_mla " + key + " Q=" + std::to_string(queries);
        if (kf_select_mla(db, &shape, queries, &k) != KF_OK) {
          line(what, std::string("kf_select_mla: ") + kf_last_error(), -1);
          continue;
        }
        if (kf_run_mla(db, &shape, &a, scratch.p(), scratch_bytes, nullptr) != KF_OK) {
          line(what, std::string("kf_run_mla: ") + kf_last_error(), -1);
          continue;
        }
        CU_CHECK(cu->cuCtxSynchronize());
        double err = -1;
        const std::string why_not = judge(pr, s.bf16, o.down<uint16_t>(queries * s.heads * kMlaLatentDim),
                                          lse.down<float>(queries * s.heads), &err);
        line(what + " (" + kf_kernel_name(k) + ")", why_not, err);

        // Bad input: the named error, and nothing launched (o stays poisoned).
        CU_CHECK(cu->cuMemsetD16(o.ptr, 0xffff, o.bytes / 2));
        struct Bad {
          const char* what;
          kf_mla_decode_args args;
          size_t scratch;
        };
        std::vector<Bad> bad;
        bad.push_back({"null q", a, scratch_bytes});
        bad.back().args.q = nullptr;
        bad.push_back({"Q = 0", a, scratch_bytes});
        bad.back().args.queries = 0;
        bad.push_back({"heads not the shape's", a, scratch_bytes});
        bad.back().args.heads = static_cast<int>(s.heads) + 16;
        bad.push_back({"misaligned kv", a, scratch_bytes});
        bad.back().args.kv = static_cast<const char*>(a.kv) + 2;
        if (parse_mla_config(std::string(kf_kernel_name(k)).substr(std::string(kf_kernel_name(k)).find("_bh") + 1)).splits > 1)
          bad.push_back({"scratch too small for a split winner", a, 16});
        for (const Bad& b : bad) {
          const kf_status st = kf_run_mla(db, &shape, &b.args, scratch.p(), b.scratch, nullptr);
          CU_CHECK(cu->cuCtxSynchronize());
          const auto out = o.down<uint16_t>(queries * s.heads * kMlaLatentDim);
          const bool untouched = std::all_of(out.begin(), out.end(), [](uint16_t v) { return v == 0xffff; });
          line(std::string("runtime bad input (") + b.what + ") " + key + " Q=" + std::to_string(queries),
               st == KF_OK ? "accepted" : !untouched ? "returned an error but wrote o" : "", -1);
          if (st != KF_OK) std::printf("     -> %s: %s\n", kf_status_name(st), kf_last_error());
        }
      }
    }
    kf_close(db);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed || passed == 0 ? 1 : 0;
}
