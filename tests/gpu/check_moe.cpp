// kforge_check_moe: checks every MoE kernel of a pack on an NVIDIA GPU against host
// references on fresh random data (tuner/moe_check_reference.h), over every routing
// archetype with the edges forced in (experts with no token, a token on the last
// expert, ids outside [0, E), a token with no expert):
//   align     kf_launch_moe_align, exactly: num_padded, each expert's run holding its
//             slots once plus padding T * top_k, run lengths multiples of block_m,
//             expert_ids per block, nothing written past the capacity of launch.h; at
//             the GEMM checks' T and at T = 4096, 5000 and 16000 (large routings);
//   gemm      every w4a16_moe_gemm1/2 candidate (loaded by name from the pack, launched
//             with the geometry of w4a16_moe/launch.h) on a correct align result whose
//             unused tail holds valid-looking ids; and the runtime's pick
//             (kf_select_moe + kf_launch_moe_gemm) where the pack has winners; a gemm1
//             with the fused SiLU epilogue (_silu) against silu(gate) * up of the
//             float64 gemm1, N/2 columns (poison past them checked the same way);
//   silu_mul, sum  kf_launch_moe_silu_mul / kf_launch_moe_sum;
//   layer     kf_run_moe (needs tuned winners); at T <= 64 also 16 layers back to back
//             on two inputs in turn, no sync between (its skinny GEMMs start while the
//             kernel before them finishes); and the same chain built from the
//             pieces with two candidates (works on an untuned pack), again with a
//             fused SiLU gemm1 and no silu_mul when the pack has one;
//   bad input top_k > E, E > 1024, T = 0, null buffers, mismatched shapes, too little
//             scratch: the runtime's error and no launch (outputs left as poisoned).
// Outputs are poisoned (NaN) before every launch; rows of dropped slots, padding and
// guard rows past the end must stay poisoned; split-K counters must come back zero.
// A gemm2 summing over top_k (_red) runs after kf_launch_moe_align zeroed its y [T, H]
// (rows past T stay poisoned) and is judged against the float64 sum of each token's
// routed rows.
// Tolerances (normalised error ||y - ref|| / ||ref||): gemm, silu_mul, sum
// linear_tolerance (bf16 8e-3, fp16 2e-3); a _red gemm2 linear_tolerance + sqrt(top_k)
// units of 16-bit roundoff (2^-8 bf16, 2^-11 fp16: its atomics round after every add, in
// no fixed order, so repeated runs differ in the last bits); the layer twice that (two GEMMs chained,
// intermediates rounded to 16 bits); any single row, measured against the mean row
// norm, 4x the case's tolerance (catches one misplaced row among thousands).
// A line per check, then "N passed, N failed" (skips counted apart); exit 1 on any
// failure or when nothing was checked, 77 without a GPU.
#include "check_moe.h"

#include <cstdlib>
#include <stdexcept>

namespace kf {
namespace moe_check {

const cuda::Driver* cu = nullptr;

void Checker::run_align() {
  std::set<int> bms = {1, 16, 64};
  for (auto& [key, list] : gemms_)
    for (auto& g : list) bms.insert(g.cfg.block_m);
  // Beyond the GEMM checks' T: prefill routings (4096), slot counts past 32768 (5000 and
  // 16000 with top_k 8), and one expert taking thousands of slots (16000 with E = 8,
  // top_k = 2, a hot archetype): sizes where a faster sort may take another way than
  // small T does (bench/NOTES.md MoE v14 tried one).
  std::set<int64_t> ts(opt_.ts.begin(), opt_.ts.end());
  ts.insert({4096, 5000, 16000});
  const int64_t t_max = *ts.rbegin();
  // The runtime sorts many slots with the cluster form where the pack has one
  // (w4a16_moe/align_cluster.h); the same pack opened with KFORGE_CLUSTER_ALIGN=0 sorts
  // every T in one workgroup, so both forms are checked at every size.
  setenv("KFORGE_CLUSTER_ALIGN", "0", 1);
  kf_db* one_workgroup = nullptr;
  const kf_status opened = kf_open(opt_.pack.c_str(), &one_workgroup);
  unsetenv("KFORGE_CLUSTER_ALIGN");
  if (opened != KF_OK) {
    tally_.line("align", "kf_open with KFORGE_CLUSTER_ALIGN=0", kf_last_error());
    return;
  }
  struct Form {
    kf_db* db;
    const char* label;
  };
  const Form forms[] = {{db_, ""}, {one_workgroup, " (one workgroup)"}};
  for (auto [experts, top_k] : routing_cases()) {
    const int64_t cap_max = moe::sorted_capacity(t_max, top_k, experts, *bms.rbegin());
    Buf ids(t_max * top_k * 4), sorted((moe::sorted_capacity(t_max, top_k, experts, 1) + cap_max + kGuard) * 4),
        blocks((moe::sorted_capacity(t_max, top_k, experts, 1) + kGuard) * 4), num_padded((1 + kGuard) * 4);
    for (int64_t t : ts)
      for (RoutingArchetype a : opt_.archetypes) {
        const Routing r = make_routing(t, experts, top_k, a);
        ids.up(r.ids);
        for (int bm : bms) {
          const AlignRef ref = align_reference(r.ids, t, top_k, experts, bm);
          const int64_t cap = moe::sorted_capacity(t, top_k, experts, bm);
          for (const Form& form : forms) {  // the same routing sorted both ways
            const std::string what =
                case_name(experts, top_k, t, a) + " block_m=" + std::to_string(bm) + form.label;
            sorted.poison32();
            blocks.poison32();
            num_padded.poison32();
            kf_moe_align_args args{ids.p<int32_t>(), sorted.p<int32_t>(), blocks.p<int32_t>(),
                                   num_padded.p<int32_t>(), static_cast<int>(t), top_k, experts, bm, nullptr, 0};
            const kf_status st = kf_launch_moe_align(form.db, &args, nullptr);
            if (st != KF_OK) {
              tally_.line("align", what, status_text(st));
              continue;
            }
            sync();
            const auto s = sorted.down<int32_t>(sorted.bytes / 4);
            const auto b = blocks.down<int32_t>(blocks.bytes / 4);
            const auto np = num_padded.down<int32_t>(1 + kGuard);
            std::string why = check_align(ref, t, top_k, bm, s, b, np[0]);
            if (why.empty() && ref.num_padded > cap) why = "host: num_padded above launch.h capacity";
            if (why.empty()) why = untouched_from<int32_t>(s, cap, static_cast<int32_t>(kPoison32), "sorted_ids");
            if (why.empty()) why = untouched_from<int32_t>(b, cap / bm, static_cast<int32_t>(kPoison32), "expert_ids");
            if (why.empty()) why = untouched_from<int32_t>(np, 1, static_cast<int32_t>(kPoison32), "num_padded");
            tally_.line("align", what + " (idle experts " + std::to_string(ref.experts_idle) + ", dropped " +
                                     std::to_string(ref.dropped) + ")", why);
          }
        }
      }
  }
  kf_close(one_workgroup);
}

void Checker::run_elementwise() {
  // Row widths: the pack's intermediate (silu_mul) and hidden (sum) sizes, and small ones.
  std::set<int64_t> inter = {64}, hidden = {256};
  for (auto& [key, list] : gemms_) (list[0].shape.gemm == 2 ? inter : hidden).insert(list[0].shape.k);
  for (auto& [key, list] : gemms_)
    if (list[0].shape.gemm == 2) hidden.insert(list[0].shape.n);
  for (int bf16 : {1, 0}) {
    const char* dt = bf16 ? "bf16" : "fp16";
    const double tol = linear_tolerance(bf16);
    if (!helpers_.count(std::string("moe_silu_mul_any_") + dt)) {
      tally_.skip("silu_mul", dt, "pack has no moe_silu_mul_any_" + std::string(dt));
    } else {
      for (int64_t n : inter)
        for (int64_t rows : {int64_t(1), int64_t(6), int64_t(200), int64_t(4096)}) {
          const auto x = random_half(rows * 2 * n, -6, 6, bf16, rng_);
          const auto ref = silu_mul_reference(x, rows, n, bf16);
          Buf dx(x.size() * 2), dy((rows + kGuard) * n * 2);
          dx.up(x);
          dy.poison16();
          kf_moe_silu_mul_args a{dx.p(), dy.p(), static_cast<int>(rows), static_cast<int>(n)};
          const std::string what = std::string(dt) + " rows=" + std::to_string(rows) + " n=" + std::to_string(n);
          const kf_status st = kf_launch_moe_silu_mul(db_, bf16, &a, nullptr);
          if (st != KF_OK) {
            tally_.line("silu_mul", what, status_text(st));
            continue;
          }
          sync();
          double err = 0;
          const std::string why =
              judge_rows(dy.down<uint16_t>((rows + kGuard) * n), ref, rows, n, bf16, {}, tol, &err);
          tally_.line("silu_mul", what, why, err, tol);
        }
    }
    if (!helpers_.count(std::string("moe_sum_any_") + dt)) {
      tally_.skip("sum", dt, "pack has no moe_sum_any_" + std::string(dt));
      continue;
    }
    for (auto [experts, top_k] : routing_cases())
      for (int64_t n : hidden)
        for (int64_t t : opt_.ts)
          for (RoutingArchetype arch : opt_.archetypes) {
            const Routing r = make_routing(t, experts, top_k, arch);
            // Rows of dropped slots hold values too: the sum must skip them.
            const auto x = random_half(t * top_k * n, -1, 1, bf16, rng_);
            const auto ref = moe_sum_reference(x, r.ids, t, top_k, experts, n, bf16);
            Buf dx(x.size() * 2), ids(r.ids.size() * 4), dy((t + kGuard) * n * 2);
            dx.up(x);
            ids.up(r.ids);
            dy.poison16();
            kf_moe_sum_args a{dx.p(), ids.p<int32_t>(), dy.p(), static_cast<int>(t), top_k, experts,
                              static_cast<int>(n)};
            const std::string what = std::string(dt) + " " + case_name(experts, top_k, t, arch) + " n=" + std::to_string(n);
            const kf_status st = kf_launch_moe_sum(db_, bf16, &a, nullptr);
            if (st != KF_OK) {
              tally_.line("sum", what, status_text(st));
              continue;
            }
            sync();
            const auto y = dy.down<uint16_t>((t + kGuard) * n);
            double err = 0;
            std::string why = judge_rows(y, ref, t, n, bf16, {}, tol, &err);
            if (why.empty()) why = zero_tokens(y, r.ids, t, top_k, experts, n);
            tally_.line("sum", what, why, err, tol);
          }
  }
}

void Checker::run_gemms() {
  const int64_t t_max = *std::max_element(opt_.ts.begin(), opt_.ts.end());
  for (auto& [key, list] : gemms_) {
    const MoeShape& s = list[0].shape;
    const int experts = static_cast<int>(s.experts), top_k = static_cast<int>(s.top_k);
    const double tol = linear_tolerance(s.bf16);
    std::printf("-- %s: %zu candidates, weights %.1f MB\n", key.c_str(), list.size(),
                (s.experts * s.k / 8 * s.n * 4) / 1e6);
    const MoeWeights w = make_moe_weights(s, rng_);
    Buf qw(w.qweight.size() * 4), sc(w.scales.size() * 2), qz(w.qzeros.size() * 4);
    qw.up(w.qweight);
    sc.up(w.scales);
    qz.up(w.qzeros);
    int64_t cap_max = 0, ws_floats = 0, counter_ints = 0;
    for (auto& g : list) {
      const int64_t cap = moe::sorted_capacity(t_max, top_k, experts, g.cfg.block_m);
      cap_max = std::max(cap_max, cap);
      ws_floats = std::max(ws_floats, moe::gemm_workspace_floats(g.cfg.split_k, s.n, cap));
      counter_ints = std::max(counter_ints,
                              moe::gemm_counter_ints(g.cfg.split_k, g.cfg.block_m, g.cfg.block_n, s.n, cap));
      g.load();
    }
    const int64_t x_rows = s.gemm == 1 ? t_max : t_max * top_k;
    Buf dx(x_rows * s.k * 2), dw(t_max * top_k * 4), sorted(cap_max * 4), blocks(cap_max * 4), np(4),
        dy((t_max * top_k + kGuard) * s.n * 2), ws(ws_floats * 4), counters(counter_ints * 4), r_ids(t_max * top_k * 4);
    CU_CHECK(cu->cuMemsetD32(counters.ptr, 0, counters.bytes / 4));
    for (int64_t t : opt_.ts)
      for (RoutingArchetype a : opt_.archetypes) {
        const Routing r = make_routing(t, experts, top_k, a);
        const auto x = random_half((s.gemm == 1 ? t : t * top_k) * s.k, -1, 1, s.bf16, rng_);
        std::vector<char> routed;
        const auto ref = moe_gemm_reference(w, x, r.ids, r.weights, t, threads_, routed);
        // What a gemm1 with the fused SiLU epilogue writes: silu(gate) * up, N/2 columns.
        const auto ref_silu = s.gemm == 1 ? silu_mul_of(ref, t * top_k, s.n / 2) : std::vector<double>{};
        // What a gemm2 summing over top_k (_red) leaves in y [T, N]: each token's routed rows summed.
        std::vector<double> ref_red;
        if (s.gemm == 2) {
          ref_red.assign(t * s.n, 0.0);
          for (int64_t sl = 0; sl < t * top_k; ++sl)
            if (routed[sl])
              for (int64_t c = 0; c < s.n; ++c) ref_red[sl / top_k * s.n + c] += ref[sl * s.n + c];
        }
        const double tol_red = tol + std::sqrt(static_cast<double>(top_k)) * (s.bf16 ? 0x1p-8 : 0x1p-11);
        dx.up(x);
        dw.up(r.weights);
        r_ids.up(r.ids);
        const int64_t rows = t * top_k;
        auto run = [&](const std::string& section, const std::string& name, int bm, bool fused, bool reduced,
                       auto&& launch) {
          upload_align(r, bm, sorted, blocks, np);
          dy.poison16();
          if (reduced) {
            // As the layer runs it: the align launch zeroes y's T rows (and sorts again).
            kf_moe_align_args al{r_ids.p<int32_t>(), sorted.p<int32_t>(), blocks.p<int32_t>(), np.p<int32_t>(),
                                 static_cast<int>(t), top_k, experts, bm, dy.p(), t * s.n};
            const kf_status as = kf_launch_moe_align(db_, &al, nullptr);
            if (as != KF_OK) return tally_.line(section, name + " " + case_name(experts, top_k, t, a), status_text(as));
          }
          kf_moe_gemm_args args{dx.p(), qw.p(), sc.p(), s.asym ? qz.p() : nullptr, dw.p<float>(),
                                sorted.p<int32_t>(), blocks.p<int32_t>(), np.p<int32_t>(), dy.p(),
                                ws.p<float>(), counters.p<int>(), static_cast<int>(t), top_k, experts,
                                static_cast<int>(s.n), static_cast<int>(s.k), s.expert().effective_group()};
          const std::string what = name + " " + case_name(experts, top_k, t, a);
          const std::string launch_error = launch(args);
          if (!launch_error.empty()) return tally_.line(section, what, launch_error);
          double err = 0;
          const int64_t cols = fused ? s.n / 2 : s.n;
          std::string why =
              reduced ? judge_rows(dy.down<uint16_t>((t + kGuard) * s.n), ref_red, t, s.n, s.bf16, {}, tol_red, &err)
                      : judge_rows(dy.down<uint16_t>((rows + kGuard) * cols), fused ? ref_silu : ref, rows, cols, s.bf16,
                                   routed, tol, &err);
          for (uint32_t c : counters.down<uint32_t>(counters.bytes / 4))
            if (c != 0 && why.empty()) why = "split-K counter left non-zero";
          if (!why.empty()) CU_CHECK(cu->cuMemsetD32(counters.ptr, 0, counters.bytes / 4));
          tally_.line(section, what, why, err, reduced ? tol_red : tol);
        };
        for (auto& g : list)
          if (opt_.candidates)
            run("gemm", g.k.name, g.cfg.block_m, g.cfg.silu, g.cfg.red,
                [&](kf_moe_gemm_args& args) { return launch_gemm(g, args); });
        // The runtime's pick for this T, launched through the runtime.
        const kf_moe_shape ms{s.experts, s.top_k, s.gemm == 1 ? s.k : s.n, s.gemm == 1 ? s.n / 2 : s.k, s.group,
                              s.bf16, s.asym};
        const kf_kernel* kern = nullptr;
        const kf_status st = kf_select_moe(db_, s.gemm, &ms, t, &kern);
        int bm = 0;
        if (st == KF_ERR_UNSUPPORTED_SHAPE || st == KF_ERR_NOT_FOUND) {
          if (a == opt_.archetypes.front())
            tally_.skip("gemm-rt", key + " T=" + std::to_string(t), "no tuned winner (" + status_text(st) + ")");
        } else if (st != KF_OK || kf_kernel_block_m(kern, &bm) != KF_OK) {
          tally_.line("gemm-rt", key + " T=" + std::to_string(t), status_text(st != KF_OK ? st : KF_ERR_INTERNAL));
        } else {
          run("gemm-rt", kf_kernel_name(kern), bm, kf_kernel_fuses_silu(kern) == 1, kf_kernel_reduces_topk(kern) == 1,
              [&](kf_moe_gemm_args& args) -> std::string {
                const kf_status ls = kf_launch_moe_gemm(kern, &args, nullptr);
                if (ls != KF_OK) return status_text(ls);
                sync();
                return "";
              });
        }
      }
    for (auto& g : list) CU_CHECK(cu->cuModuleUnload(g.mod));
  }
}

}  // namespace moe_check
}  // namespace kf

int main(int argc, char** argv) {
  using namespace kf;
  using namespace kf::moe_check;
  Options opt;
  std::string archetypes;
  bool no_candidates = false;
  const gpu_check::Options common = gpu_check::parse_options(
      argc, argv, "kforge_check_moe: every w4a16_moe GEMM of a pack against the CPU reference, then the runtime's "
      "MoE calls", "t", "token counts", opt.ts, [&](CLI::App& app) {
        app.add_option("--archetypes", archetypes, "routing archetypes, comma-separated: balanced, uniform, zipf1, "
                       "zipf2, hot16 (default all)");
        app.add_option("--csv", opt.csv, "also write every check as a CSV row to this file");
        app.add_flag("--no-candidates", no_candidates,
                     "skip the per-candidate GEMM checks (runtime picks, layers, bad input only)");
      });
  opt.pack = common.pack;
  opt.arch = common.arch;
  opt.filter = common.filter;
  opt.ts = common.sizes;
  opt.seed = common.seed;
  opt.candidates = !no_candidates;
  if (!archetypes.empty()) {
    try {
      opt.archetypes = parse_routing_archetypes(archetypes);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "--archetypes: %s\n", e.what());
      return 2;
    }
  }
  int devices = 0;
  const char* why = "no CUDA device";
  cu = cuda::driver(&why);
  if (!cu || cu->cuInit(0) != CUDA_SUCCESS || cu->cuDeviceGetCount(&devices) != CUDA_SUCCESS || devices == 0) {
    std::printf("skipped: no GPU (%s); nothing was checked\n", cu ? "no CUDA device on this machine" : why);
    return 77;
  }
  CUdevice dev;
  CU_CHECK(cu->cuDeviceGet(&dev, 0));
  char dev_name[256];
  CU_CHECK(cu->cuDeviceGetName(dev_name, sizeof dev_name, dev));
  CUcontext ctx;
  CU_CHECK(cu->cuDevicePrimaryCtxRetain(&ctx, dev));
  CU_CHECK(cu->cuCtxSetCurrent(ctx));

  Tally tally;
  if (!opt.csv.empty()) {
    tally.csv.open(opt.csv);
    tally.csv << "section,check,normalised_error,tolerance,result\n";
  }
  kf_db* db = nullptr;
  if (kf_open(opt.pack.c_str(), &db) != KF_OK) {
    std::printf("FAIL open      kf_open(%s): %s\n", opt.pack.c_str(), kf_last_error());
    return 1;
  }
  try {
    Checker c(opt, tally, db);
    std::printf("device: %s   pack: %s   arch: %s   MoE GEMM kernels: %zu in %zu shapes   helpers: %zu   seed: %llu\n",
                dev_name, opt.pack.c_str(), opt.arch.c_str(), c.gemm_count(), c.shape_count(), c.helpers().size(),
                static_cast<unsigned long long>(opt.seed));
    if (c.gemm_count() == 0) {
      std::printf("FAIL pack      no w4a16_moe_gemm1/2 kernel with status ok for %s\n", opt.arch.c_str());
      ++tally.failed;
    }
    c.run_align();
    c.run_elementwise();
    c.run_gemms();
    c.run_layers();
    c.run_bad_inputs();
  } catch (const std::exception& e) {
    std::printf("FAIL error     %s\n", e.what());
    ++tally.failed;
  }
  kf_close(db);
  std::printf("%d passed, %d failed (%d skipped)\n", tally.passed, tally.failed, tally.skipped);
  cu->cuDevicePrimaryCtxRelease(dev);
  return tally.failed == 0 && tally.passed > 0 ? 0 : 1;
}
