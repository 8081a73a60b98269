// kforge_check_moe: whole layers (kf_run_moe, and the same chain from the pieces) and
// bad input through the runtime. See check_moe.cpp for what is checked and how.
#include "check_moe.h"

namespace kf {
namespace moe_check {

namespace {

kf_moe_shape layer_shape(const MoeShape& gemm2) {
  return {gemm2.experts, gemm2.top_k, gemm2.n, gemm2.k, gemm2.group, gemm2.bf16, gemm2.asym};
}

kf_moe_layer_args layer_args(const Buf& x, const Buf& ids, const Buf& wts, const void* q1, const void* s1,
                             const void* z1, const void* q2, const void* s2, const void* z2, const Buf& y,
                             const Buf& scratch, size_t scratch_bytes, int64_t t, int64_t max_t) {
  kf_moe_layer_args a{};
  a.x = x.p();
  a.topk_ids = ids.p<int32_t>();
  a.topk_weights = wts.p<float>();
  a.w1_qweight = q1;
  a.w1_scales = s1;
  a.w1_qzeros = z1;
  a.w2_qweight = q2;
  a.w2_scales = s2;
  a.w2_qzeros = z2;
  a.y = y.p();
  // kf_run_moe wants 256-byte alignment: the buffer has 256 bytes to spare for it.
  a.scratch = reinterpret_cast<void*>((scratch.ptr + 255) / 256 * 256);
  a.scratch_bytes = scratch_bytes;
  a.t = static_cast<int>(t);
  a.max_t = static_cast<int>(max_t);
  return a;
}

struct DeviceWeights {
  Buf qweight, scales, qzeros;
  explicit DeviceWeights(const MoeWeights& w)
      : qweight(w.qweight.size() * 4), scales(w.scales.size() * 2), qzeros(w.qzeros.size() * 4) {
    qweight.up(w.qweight);
    scales.up(w.scales);
    qzeros.up(w.qzeros);
  }
  const void* zeros(const MoeShape& s) const { return s.asym ? qzeros.p() : nullptr; }
};

}  // namespace

// Skinny GEMMs start while the kernel before them finishes: one that read its input
// before waiting would see the previous layer's intermediates. So layers run back to
// back, no sync between them, on two inputs in turn (the second fresh), sharing one
// scratch, each into its own poisoned y; both must match their references. Then the
// same inside a captured graph.
void Checker::overlap_check(const kf_moe_shape& ms, const kf_moe_layer_args& la, int64_t t, int64_t hidden,
                            const Routing& r, const MoeWeights& w1, const MoeWeights& w2,
                            const std::vector<double>& ref, double tol,
                            const std::string& what) {
  const auto hx_b = random_half(t * hidden, -1, 1, ms.bf16, rng_);
  const auto ref_b = moe_layer_reference(w1, w2, hx_b, r.ids, r.weights, t, threads_);
  Buf x_b(t * hidden * 2), y_a((t + kGuard) * hidden * 2), y_b((t + kGuard) * hidden * 2);
  x_b.up(hx_b);
  y_a.poison16();
  y_b.poison16();
  kf_moe_layer_args a = la, b = la;
  a.y = y_a.p();
  b.x = x_b.p();
  b.y = y_b.p();
  auto judge_both = [&](const std::string& name) {
    sync();
    for (int which = 0; which < 2; ++which) {
      double err = 0;
      const auto out = (which ? y_b : y_a).down<uint16_t>((t + kGuard) * hidden);
      std::string bad = judge_rows(out, which ? ref_b : ref, t, hidden, ms.bf16, {}, tol, &err);
      if (bad.empty()) bad = zero_tokens(out, r.ids, t, ms.top_k, ms.experts, hidden);
      tally_.line("layer", name + (which ? " (second input)" : " (first input)"), bad, err, tol);
    }
  };
  std::string why;
  for (int i = 0; i < kOverlapRepeats && why.empty(); ++i) {
    const kf_status st = kf_run_moe(db_, &ms, i % 2 ? &b : &a, nullptr);
    if (st != KF_OK) why = status_text(st);
  }
  const std::string name = "kf_run_moe x" + std::to_string(kOverlapRepeats) + ", two inputs in turn, " + what;
  if (!why.empty()) return tally_.line("layer", name, why);
  judge_both(name);

  // The same two layers captured into a graph (the overlap is a property of the graph's
  // edges then), replayed twice.
  const std::string graph_name = "kf_run_moe x2 captured in a graph, replayed x2, " + what;
  if (!cu->cuStreamCreate || !cu->cuStreamBeginCapture || !cu->cuGraphInstantiate)
    return tally_.skip("layer", graph_name, "the driver has no stream capture");
  y_a.poison16();
  y_b.poison16();
  CUstream stream = nullptr;
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  CU_CHECK(cu->cuStreamCreate(&stream, 0));
  CU_CHECK(cu->cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  for (const kf_moe_layer_args* l : {&a, &b}) {
    const kf_status st = kf_run_moe(db_, &ms, l, stream);
    if (st != KF_OK && why.empty()) why = "under capture: " + status_text(st);
  }
  CU_CHECK(cu->cuStreamEndCapture(stream, &graph));
  if (why.empty()) {
    CU_CHECK(cu->cuGraphInstantiate(&exec, graph, 0));
    for (int i = 0; i < 2; ++i) CU_CHECK(cu->cuGraphLaunch(exec, stream));
    CU_CHECK(cu->cuStreamSynchronize(stream));
    CU_CHECK(cu->cuGraphExecDestroy(exec));
  }
  CU_CHECK(cu->cuGraphDestroy(graph));
  CU_CHECK(cu->cuStreamDestroy(stream));
  if (!why.empty()) return tally_.line("layer", graph_name, why);
  judge_both(graph_name);
}

std::vector<std::pair<std::vector<Gemm>*, std::vector<Gemm>*>> Checker::layers() {
  std::vector<std::pair<std::vector<Gemm>*, std::vector<Gemm>*>> out;
  for (auto& [k2, down] : gemms_) {
    const MoeShape& s2 = down[0].shape;
    if (s2.gemm != 2) continue;
    for (auto& [k1, up] : gemms_) {
      const MoeShape& s1 = up[0].shape;
      if (s1.gemm == 1 && s1.experts == s2.experts && s1.top_k == s2.top_k && s1.n == 2 * s2.k && s1.k == s2.n &&
          s1.group == s2.group && s1.bf16 == s2.bf16 && s1.asym == s2.asym)
        out.push_back({&up, &down});
    }
  }
  return out;
}

void Checker::run_layers() {
  const auto pairs = layers();
  if (pairs.empty()) tally_.skip("layer", "-", "pack has no matching gemm1/gemm2 pair");
  for (auto [up, down] : pairs) layer_checks(*up, *down);
}

// Per T and archetype: kf_run_moe (when the pack has winners) and the chain align ->
// gemm1 -> silu_mul -> gemm2 -> sum (no sum after a _red gemm2, whose align zeroes y)
// with the first unfused gemm1 and the last gemm2
// candidate (usually different block_m, so two align results), against the float64
// layer; then, when the pack has a gemm1 with the fused SiLU epilogue, the chain with the
// first of those writing h itself and no silu_mul.
void Checker::layer_checks(std::vector<Gemm>& ups, std::vector<Gemm>& downs) {
  const MoeShape s1 = ups[0].shape, s2 = downs[0].shape;
  const kf_moe_shape ms = layer_shape(s2);
  const int experts = static_cast<int>(s2.experts), top_k = static_cast<int>(s2.top_k);
  const int64_t hidden = s2.n, inter = s2.k, t_max = *std::max_element(opt_.ts.begin(), opt_.ts.end());
  const int64_t slots_max = t_max * top_k;
  const double tol = 2 * linear_tolerance(s2.bf16);
  const std::string layer = "E=" + std::to_string(experts) + " top_k=" + std::to_string(top_k) +
                            " H=" + std::to_string(hidden) + " I=" + std::to_string(inter);
  std::printf("-- layer %s %s\n", layer.c_str(), s2.bf16 ? "bf16" : "fp16");
  const MoeWeights w1 = make_moe_weights(s1, rng_), w2 = make_moe_weights(s2, rng_);
  const DeviceWeights d1(w1), d2(w2);

  size_t scratch_bytes = 0;
  const kf_status scratch_st = kf_moe_scratch_bytes(db_, &ms, t_max, &scratch_bytes);
  const bool tuned = scratch_st == KF_OK;
  if (!tuned && scratch_st != KF_ERR_UNSUPPORTED_SHAPE && scratch_st != KF_ERR_NOT_FOUND)
    tally_.line("layer", layer + " kf_moe_scratch_bytes", status_text(scratch_st));
  if (!tuned) tally_.skip("layer", layer + " kf_run_moe", "no tuned winners (" + status_text(scratch_st) + ")");
  Buf scratch(tuned ? scratch_bytes + 256 : 0);
  if (tuned) CU_CHECK(cu->cuMemsetD32(scratch.ptr, 0, scratch.bytes / 4));

  std::vector<Gemm*> firsts;  // the gemm1 of each chain: unfused, then fused (when any)
  for (bool fused : {false, true})
    for (Gemm& g : ups)
      if (g.cfg.silu == fused) {
        firsts.push_back(&g);
        break;
      }
  Gemm& g2 = downs.back();
  int64_t cap1 = 0, ws = 0, cnt = 0;
  const int64_t cap2 = moe::sorted_capacity(t_max, top_k, experts, g2.cfg.block_m);
  for (Gemm* g : firsts) {
    const int64_t cap = moe::sorted_capacity(t_max, top_k, experts, g->cfg.block_m);
    cap1 = std::max(cap1, cap);
    ws = std::max(ws, moe::gemm_workspace_floats(g->cfg.split_k, s1.n, cap));
    cnt = std::max(cnt, moe::gemm_counter_ints(g->cfg.split_k, g->cfg.block_m, g->cfg.block_n, s1.n, cap));
  }
  ws = std::max(ws, moe::gemm_workspace_floats(g2.cfg.split_k, s2.n, cap2));
  cnt = std::max(cnt, moe::gemm_counter_ints(g2.cfg.split_k, g2.cfg.block_m, g2.cfg.block_n, s2.n, cap2));
  std::vector<Gemm*> loaded = firsts;
  loaded.push_back(&g2);
  for (Gemm* g : loaded) g->load();
  Buf x(t_max * hidden * 2), ids(slots_max * 4), wts(slots_max * 4), y((t_max + kGuard) * hidden * 2),
      sorted1(cap1 * 4), blocks1(cap1 * 4), np1(4), sorted2(cap2 * 4), blocks2(cap2 * 4), np2(4),
      h1(slots_max * s1.n * 2), h(slots_max * inter * 2), h2(slots_max * hidden * 2), work(ws * 4), counters(cnt * 4);
  CU_CHECK(cu->cuMemsetD32(counters.ptr, 0, counters.bytes / 4));

  for (int64_t t : opt_.ts)
    for (RoutingArchetype a : opt_.archetypes) {
      const Routing r = make_routing(t, experts, top_k, a);
      const auto hx = random_half(t * hidden, -1, 1, s2.bf16, rng_);
      const auto ref = moe_layer_reference(w1, w2, hx, r.ids, r.weights, t, threads_);
      x.up(hx);
      ids.up(r.ids);
      wts.up(r.weights);
      const std::string what = layer + " T=" + std::to_string(t) + " " + routing_archetype_name(a);
      auto judge = [&](const std::string& section, const std::string& name) {
        double err = 0;
        const auto out = y.down<uint16_t>((t + kGuard) * hidden);
        std::string why = judge_rows(out, ref, t, hidden, s2.bf16, {}, tol, &err);
        if (why.empty()) why = zero_tokens(out, r.ids, t, top_k, experts, hidden);
        tally_.line(section, name, why, err, tol);
      };
      if (tuned) {
        y.poison16();
        kf_moe_layer_args la = layer_args(x, ids, wts, d1.qweight.p(), d1.scales.p(), d1.zeros(s1), d2.qweight.p(),
                                          d2.scales.p(), d2.zeros(s2), y, scratch, scratch_bytes, t,
                                          t_max);
        const kf_status st = kf_run_moe(db_, &ms, &la, nullptr);
        if (st != KF_OK) {
          tally_.line("layer", "kf_run_moe " + what, status_text(st));
        } else {
          sync();
          judge("layer", "kf_run_moe " + what);
          if (t <= kOverlapCheckMaxT) overlap_check(ms, la, t, hidden, r, w1, w2, ref, tol, what);
        }
      }
      // The chain from the pieces; every intermediate poisoned, so a dropped slot's row
      // (never computed) would carry NaN into y if anything read it.
      for (Gemm* up : firsts) {
        const Gemm& g1 = *up;
        for (Buf* b : {&y, &h1, &h, &h2}) b->poison16();
        const std::string chain = std::string(g1.cfg.silu ? "chain (fused SiLU) " : "chain ") + what;
        std::string why;
        // A _red gemm2 adds its rows into y itself: its align zeroes y first, no sum.
        const bool red = g2.cfg.red;
        auto align = [&](const Gemm& g, Buf& s, Buf& b, Buf& n, void* zero) {
          kf_moe_align_args aa{ids.p<int32_t>(), s.p<int32_t>(), b.p<int32_t>(), n.p<int32_t>(), static_cast<int>(t),
                               top_k, experts, g.cfg.block_m, zero, zero ? static_cast<int>(t * hidden) : 0};
          const kf_status st = kf_launch_moe_align(db_, &aa, nullptr);
          if (st != KF_OK && why.empty()) why = "align: " + status_text(st);
        };
        auto gemm = [&](const Gemm& g, const DeviceWeights& d, const Buf& in, Buf& out, Buf& s, Buf& b, Buf& n) {
          if (!why.empty()) return;
          kf_moe_gemm_args ga{in.p(), d.qweight.p(), d.scales.p(), d.zeros(g.shape), wts.p<float>(),
                              s.p<int32_t>(), b.p<int32_t>(), n.p<int32_t>(), out.p(), work.p<float>(),
                              counters.p<int>(), static_cast<int>(t), top_k, experts, static_cast<int>(g.shape.n),
                              static_cast<int>(g.shape.k), g.shape.expert().effective_group()};
          why = launch_gemm(g, ga);
        };
        align(g1, sorted1, blocks1, np1, nullptr);
        align(g2, sorted2, blocks2, np2, red ? y.p() : nullptr);
        kf_status st = KF_OK;
        if (g1.cfg.silu) {
          gemm(g1, d1, x, h, sorted1, blocks1, np1);  // writes h = silu(gate) * up itself
        } else {
          gemm(g1, d1, x, h1, sorted1, blocks1, np1);
          kf_moe_silu_mul_args sa{h1.p(), h.p(), static_cast<int>(t * top_k), static_cast<int>(inter)};
          st = why.empty() ? kf_launch_moe_silu_mul(db_, s2.bf16, &sa, nullptr) : KF_OK;
          if (st != KF_OK) why = "silu_mul: " + status_text(st);
        }
        gemm(g2, d2, h, red ? y : h2, sorted2, blocks2, np2);
        if (!red) {
          kf_moe_sum_args ma{h2.p(), ids.p<int32_t>(), y.p(), static_cast<int>(t), top_k, experts,
                             static_cast<int>(hidden)};
          st = why.empty() ? kf_launch_moe_sum(db_, s2.bf16, &ma, nullptr) : KF_OK;
          if (st != KF_OK) why = "sum: " + status_text(st);
        }
        if (!why.empty()) {
          tally_.line("layer", chain, why);
          continue;
        }
        sync();
        judge("layer", chain + " (" + g1.k.name + " + " + g2.k.name + ")");
      }
    }
  for (Gemm* g : loaded) CU_CHECK(cu->cuModuleUnload(g->mod));
}

namespace {

// A bad call must return `want`, say why in kf_last_error, and launch nothing: `guard`
// (poisoned before the call) must still hold the poison after a device sync.
void expect(Tally& tally, const std::string& what, kf_status got, kf_status want, const Buf& guard, bool guard16) {
  std::string why;
  const std::string msg = kf_last_error();
  if (got != want)
    why = std::string("returned ") + kf_status_name(got) + ", expected " + kf_status_name(want) +
          (got == KF_OK ? "" : " (" + msg + ")");
  else if (msg.empty())
    why = "no error message";
  sync();
  if (why.empty()) {
    if (guard16) {
      const auto v = guard.down<uint16_t>(guard.bytes / 2);
      why = untouched_from<uint16_t>(v, 0, kPoison16, "output (a launch happened)");
    } else {
      const auto v = guard.down<int32_t>(guard.bytes / 4);
      why = untouched_from<int32_t>(v, 0, static_cast<int32_t>(kPoison32), "output (a launch happened)");
    }
  }
  tally.line("bad-input", what + (why.empty() ? " -> " + std::string(kf_status_name(got)) + ": " + msg : ""), why);
}

}  // namespace

void Checker::run_bad_inputs() {
  const kf_status inval = KF_ERR_INVALID_ARGUMENT;
  // Sizes: the pack's first layer when it has one, else a small made-up one.
  kf_moe_shape ms{8, 2, 256, 128, 128, 1, 0};
  const auto pairs = layers();
  if (!pairs.empty()) ms = layer_shape(pairs[0].second->front().shape);
  const int experts = static_cast<int>(ms.experts), top_k = static_cast<int>(ms.top_k), t = 4;
  std::vector<int32_t> host_ids(t * (experts + 1));
  for (size_t i = 0; i < host_ids.size(); ++i) host_ids[i] = static_cast<int32_t>(i % experts);
  Buf ids(host_ids.size() * 4), sorted(1 << 20), blocks(1 << 20), np(256), x(t * ms.hidden * 2 * top_k * 2),
      y((t * top_k + kGuard) * ms.hidden * 2);
  ids.up(host_ids);
  auto poison_align = [&] {
    sorted.poison32();
    blocks.poison32();
    np.poison32();
  };
  auto align_case = [&](const std::string& what, kf_moe_align_args a) {
    poison_align();
    expect(tally_, "kf_launch_moe_align " + what, kf_launch_moe_align(db_, &a, nullptr), inval, sorted, false);
  };
  const kf_moe_align_args good{ids.p<int32_t>(), sorted.p<int32_t>(), blocks.p<int32_t>(), np.p<int32_t>(), t, top_k,
                               experts, 16, nullptr, 0};
  kf_moe_align_args a = good;
  a.top_k = experts + 1;
  align_case("top_k > E", a);
  a = good;
  a.t = 0;
  align_case("T = 0", a);
  a = good;
  a.experts = moe::kMaxExperts + 1;
  align_case("E = " + std::to_string(moe::kMaxExperts + 1), a);
  a = good;
  a.topk_ids = nullptr;
  align_case("topk_ids NULL", a);
  a = good;
  a.block_m = 0;
  align_case("block_m = 0", a);

  // Selection.
  auto select_case = [&](const std::string& what, kf_moe_shape s, int64_t tt, kf_status want) {
    const kf_kernel* k = nullptr;
    const kf_status st = kf_select_moe(db_, 1, &s, tt, &k);
    std::string why;
    if (st != want) why = std::string("returned ") + kf_status_name(st) + ", expected " + kf_status_name(want);
    else if (!*kf_last_error()) why = "no error message";
    tally_.line("bad-input", "kf_select_moe " + what + (why.empty() ? " -> " + status_text(st) : ""), why);
  };
  kf_moe_shape bad = ms;
  bad.top_k = ms.experts + 1;
  select_case("top_k > E", bad, t, inval);
  select_case("T = 0", ms, 0, inval);
  bad = ms;
  bad.experts = 2000;
  select_case("E = 2000", bad, t, inval);
  bad = ms;
  bad.hidden = ms.hidden * 2;
  select_case("a layer the pack lacks (H = " + std::to_string(bad.hidden) + ")", bad, t, KF_ERR_UNSUPPORTED_SHAPE);

  // A GEMM launch with a shape other than its kernel's.
  const kf_kernel* kern = nullptr;
  if (kf_select_moe(db_, 2, &ms, t, &kern) != KF_OK) {
    tally_.skip("bad-input", "kf_launch_moe_gemm mismatched n/k/group", "no tuned gemm2 to launch");
  } else {
    // Workspace as the kernel asks, so only the mismatch can be the reason for refusing.
    int64_t ws_floats = 0, counter_ints = 0;
    kf_kernel_workspace(kern, t, &ws_floats, &counter_ints);
    Buf ws(ws_floats * 4), counters(counter_ints * 4);
    CU_CHECK(cu->cuMemsetD32(counters.ptr, 0, counters.bytes / 4));
    kf_moe_gemm_args g{x.p(), x.p(), x.p(), nullptr, reinterpret_cast<const float*>(x.ptr), sorted.p<int32_t>(),
                       blocks.p<int32_t>(), np.p<int32_t>(), y.p(), ws.p<float>(), counters.p<int>(), t, top_k, experts,
                       static_cast<int>(ms.hidden), static_cast<int>(ms.intermediate), ms.group};
    const struct {
      const char* what;
      int dn, dk, dg;
      int dtop_k;
    } cases[] = {{"n mismatched", 64, 0, 0, 0},
                 {"k mismatched", 0, 128, 0, 0},
                 {"group mismatched", 0, 0, 32, 0},
                 {"top_k not the kernel's", 0, 0, 0, 1}};
    for (const auto& c : cases) {
      kf_moe_gemm_args b = g;
      b.n += c.dn;
      b.k += c.dk;
      b.group = c.dg ? (g.group == 32 ? 64 : 32) : g.group;
      b.top_k = g.top_k > 1 ? g.top_k - c.dtop_k : g.top_k + c.dtop_k;
      y.poison16();
      expect(tally_, std::string("kf_launch_moe_gemm ") + c.what, kf_launch_moe_gemm(kern, &b, nullptr), inval, y,
             true);
    }
  }

  // Elementwise pieces.
  kf_moe_sum_args sum{x.p(), ids.p<int32_t>(), y.p(), t, top_k, experts, static_cast<int>(ms.hidden)};
  kf_moe_sum_args sb = sum;
  sb.t = 0;
  y.poison16();
  expect(tally_, "kf_launch_moe_sum T = 0", kf_launch_moe_sum(db_, ms.bf16, &sb, nullptr), inval, y, true);
  sb = sum;
  sb.top_k = experts + 1;
  y.poison16();
  expect(tally_, "kf_launch_moe_sum top_k > E", kf_launch_moe_sum(db_, ms.bf16, &sb, nullptr), inval, y, true);
  kf_moe_silu_mul_args si{nullptr, y.p(), t * top_k, static_cast<int>(ms.intermediate)};
  y.poison16();
  expect(tally_, "kf_launch_moe_silu_mul x NULL", kf_launch_moe_silu_mul(db_, ms.bf16, &si, nullptr), inval, y, true);
  si.x = x.p();
  si.n = 12;
  y.poison16();
  expect(tally_, "kf_launch_moe_silu_mul n = 12 (not a multiple of 8)", kf_launch_moe_silu_mul(db_, ms.bf16, &si, nullptr),
         inval, y, true);

  // Whole layer.
  size_t scratch_bytes = 0;
  if (kf_moe_scratch_bytes(db_, &ms, t, &scratch_bytes) != KF_OK) {
    tally_.skip("bad-input", "kf_run_moe cases", "no tuned winners for the layer");
    return;
  }
  Buf scratch(scratch_bytes + 256), wts(host_ids.size() * 4), q(1 << 20);
  CU_CHECK(cu->cuMemsetD32(scratch.ptr, 0, scratch.bytes / 4));
  CU_CHECK(cu->cuMemsetD32(wts.ptr, 0x3f000000u, wts.bytes / 4));  // 0.5f
  CU_CHECK(cu->cuMemsetD32(q.ptr, 0x3c003c00u, q.bytes / 4));
  const kf_moe_layer_args la = layer_args(x, ids, wts, q.p(), q.p(), nullptr, q.p(), q.p(), nullptr, y, scratch,
                                             scratch_bytes, t, t);
  kf_moe_layer_args lb = la;
  lb.t = 0;
  y.poison16();
  expect(tally_, "kf_run_moe T = 0", kf_run_moe(db_, &ms, &lb, nullptr), inval, y, true);
  lb = la;
  lb.scratch_bytes = 256;
  y.poison16();
  expect(tally_, "kf_run_moe scratch too small", kf_run_moe(db_, &ms, &lb, nullptr), inval, y, true);
  lb = la;
  lb.x = nullptr;
  y.poison16();
  expect(tally_, "kf_run_moe x NULL", kf_run_moe(db_, &ms, &lb, nullptr), inval, y, true);
  lb = la;
  lb.t = t + 1;
  y.poison16();
  expect(tally_, "kf_run_moe T > max_t", kf_run_moe(db_, &ms, &lb, nullptr), inval, y, true);
  kf_moe_shape sb2 = ms;
  sb2.top_k = ms.experts + 1;
  y.poison16();
  expect(tally_, "kf_run_moe top_k > E", kf_run_moe(db_, &sb2, &la, nullptr), inval, y, true);

  // Every id outside [0, E): nothing routed, every token's output exactly zero.
  std::vector<int32_t> out_of_range(t * top_k);
  for (size_t i = 0; i < out_of_range.size(); ++i) out_of_range[i] = i % 2 ? -1 : experts + static_cast<int>(i);
  ids.up(out_of_range);
  CU_CHECK(cu->cuMemsetD32(x.ptr, 0x3c003c00u, x.bytes / 4));
  y.poison16();
  const kf_status st = kf_run_moe(db_, &ms, &la, nullptr);
  std::string why = st == KF_OK ? "" : status_text(st);
  if (why.empty()) {
    sync();
    const auto out = y.down<uint16_t>(t * ms.hidden);
    for (size_t i = 0; i < out.size() && why.empty(); ++i)
      if ((out[i] & 0x7fff) != 0) why = "output element " + std::to_string(i) + " not zero";
  }
  tally_.line("bad-input", "kf_run_moe every expert id outside [0, E) -> zeros", why);
}

}  // namespace moe_check
}  // namespace kf
