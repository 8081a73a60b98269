// bench/moe: the qwen3-35b MoE layer (E = 256, top_k = 8, H = 2048, I = 512, int4
// g128 bf16) at T in {1, 16, 256, 1024, 4096} tokens under the uniform and zipf1
// routings (generator/moe_routing.h), timed cold like bench/linear (cold_timer.h: read
// flush of 4x L2, event, kernel(s), event, median of the repetitions):
//   layer    kf_run_moe: align + gemm1 + silu_mul + gemm2 + sum, selected by the runtime
//            (no silu_mul when the gemm1 winner fuses it: kf_kernel_fuses_silu; no sum
//            when the gemm2 winner reduces over top_k: kf_kernel_reduces_topk);
//   serial   the layer with KFORGE_OVERLAP_LAUNCHES=0: no kernel starts before the one
//            before it has finished (kf_run_moe otherwise overlaps skinny GEMMs with it);
//            layer and serial are timed in turn, rep by rep (ColdTimer::medians_us_alternating);
//   gemms    the layer without moe_align: gemm1 and gemm2 (silu_mul, sum when not
//            fused) back to back in one timed region on routing aligned before it;
//   gemms_a  the same right after an untimed moe_align (between the flush and the first
//            event): the routing ids are in L2, as the layer's align leaves them, and
//            the weights cold. gemms reads the ids cold too, which no layer does;
//   gemms_z  (a top_k-reducing gemm2) the same after the untimed align zeroed y, with
//            gemm2 adding into that y, as in the layer;
//   parts    each of those alone through kf_launch_moe_* with the same kernels;
//   align_z  the align part as the layer runs it before a top_k-reducing gemm2: its extra
//            blocks also zero y (T x H), which gemm2 then adds into;
//   align1   moe_align in one workgroup (KFORGE_CLUSTER_ALIGN=0), beside the align part,
//            which the runtime runs as a thread-block cluster from
//            kf::moe::kAlignClusterMinSlots slots where the DB has that form;
//   floor    a streaming read of the bytes the layer must read at least: int4 weights
//            and scales of the experts the routing hits (both GEMMs) plus x, y, the
//            routing ids and weights;
//   cuBLAS   bf16 dense GEMMs of the same total FLOPs, 2 T top_k (2I H + H I): the
//            two expert GEMMs as one dense [T top_k, K] x [K, N] product each (compute
//            reference, no routing);
//   empty    an empty kernel, the launch cost alone.
// Prints time, effective TB/s and TFLOP/s, layer/floor (time ratio, >= 1) and
// cuBLAS/layer (speed ratio, > 1 = kforge faster); writes a CSV when given a path.
//   kforge_bench_moe [DB (tuned_db/kforge.sqlite)] [CSV] [reps (100)]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "cold_timer.h"
#include "kforge/kforge.h"
#include "moe_routing.h"
#include "w4a16_moe/align_cluster_tiling.h"
#include "w4a16_moe/launch.h"

namespace {

using namespace kf::bench;

constexpr int kExperts = 256, kTopK = 8, kHidden = 2048, kInter = 512, kGroup = 128, kMaxT = 4096;

void* random_bits(size_t bytes, uint32_t seed) {
  void* p = alloc(bytes);
  fill_bits<<<1024, 256>>>(static_cast<uint32_t*>(p), bytes / 4, seed);
  return p;
}
void* random_bf16(size_t count, uint32_t seed, float lo, float hi) {
  void* p = alloc(count * 2);
  fill_bf16<<<1024, 256>>>(static_cast<uint16_t*>(p), count, seed, lo, hi);
  return p;
}

struct Expert {  // one GEMM's stacked weights
  int64_t n, k;
  void* qweight;
  void* scales;
  size_t bytes_per_expert() const { return size_t(n) * k / 2 + size_t(k / kGroup) * n * 2; }
};

}  // namespace

int main(int argc, char** argv) {
  const kf::bench::Start run = kf::bench::start(argc, argv);
  const char *db_path = run.db_path, *csv_path = run.csv_path;
  const int reps = run.reps;
  const cudaDeviceProp& prop = run.prop;
  kf_db* const db = run.db;
  // The same DB opened with overlapped launches off (KFORGE_OVERLAP_LAUNCHES=0 at open):
  // the layer with every kernel starting after the one before it has finished.
  kf_db* const serial_db = kf::bench::open_without_overlap(db_path);
  kf_db* const one_workgroup_db = kf::bench::open_switched_off(db_path, "KFORGE_CLUSTER_ALIGN");
  kf::bench::ColdTimer timer;
  cublasHandle_t blas;
  cublasCreate(&blas);
  cublasSetStream(blas, timer.stream());
  const kf_moe_shape shape{kExperts, kTopK, kHidden, kInter, kGroup, 1, 0};

  // Weights of every expert, activations and every intermediate at the largest T.
  const Expert w1{2 * kInter, kHidden, random_bits(size_t(kExperts) * kHidden / 8 * 2 * kInter * 4, 1),
                  random_bf16(size_t(kExperts) * (kHidden / kGroup) * 2 * kInter, 2, 0.5f / 90, 1.5f / 90)};
  const Expert w2{kHidden, kInter, random_bits(size_t(kExperts) * kInter / 8 * kHidden * 4, 3),
                  random_bf16(size_t(kExperts) * (kInter / kGroup) * kHidden, 4, 0.5f / 45, 1.5f / 45)};
  const size_t slots_max = size_t(kMaxT) * kTopK;
  void* x = random_bf16(size_t(kMaxT) * kHidden, 5, -1, 1);
  void* y = alloc(size_t(kMaxT) * kHidden * 2);
  void* h1 = alloc(slots_max * 2 * kInter * 2);
  void* h = alloc(slots_max * kInter * 2);
  void* h2 = alloc(slots_max * kHidden * 2);
  auto* ids = static_cast<int32_t*>(alloc(slots_max * 4));
  auto* wts = static_cast<float*>(alloc(slots_max * 4));
  {
    std::vector<float> host(slots_max, 0.125f);
    check(cudaMemcpy(wts, host.data(), slots_max * 4, cudaMemcpyHostToDevice), "weights");
  }
  size_t scratch_bytes = 0;
  kf_check(kf_moe_scratch_bytes(db, &shape, kMaxT, &scratch_bytes), "kf_moe_scratch_bytes");
  void* scratch = alloc(scratch_bytes);
  check(cudaMemset(scratch, 0, scratch_bytes), "scratch zero");
  // The read floor's buffer: every expert's weights plus the largest activations.
  const size_t floor_max = kExperts * (w1.bytes_per_expert() + w2.bytes_per_expert()) +
                           size_t(kMaxT) * kHidden * 4 + slots_max * 8;
  void* floor_buf = alloc(floor_max);
  check(cudaMemset(floor_buf, 0x3c, floor_max), "floor fill");
  // cuBLAS operands: one expert's weights densely in bf16, M = T * top_k rows.
  void* dense1 = random_bf16(size_t(2 * kInter) * kHidden, 6, -0.05f, 0.05f);
  void* dense2 = random_bf16(size_t(kHidden) * kInter, 7, -0.05f, 0.05f);
  void* a1 = random_bf16(slots_max * kHidden, 8, -1, 1);
  void* a2 = random_bf16(slots_max * kInter, 9, -1, 1);
  void* c1 = alloc(slots_max * 2 * kInter * 2);
  void* c2 = alloc(slots_max * kHidden * 2);
  check(cudaDeviceSynchronize(), "fill");

  const double empty_us = timer.median_us([&](cudaStream_t s) { timer.empty(s); }, reps);
  std::printf("device: %s (%d SMs, L2 %zu MB)   db: %s   reps: %d, cold L2 (read flush %zu MB)\n", prop.name,
              timer.sms(), timer.l2_bytes() >> 20, db_path, reps, timer.l2_bytes() * 4 >> 20);
  std::printf("layer: E %d, top_k %d, H %d, I %d, g%d bf16 sym; empty kernel: %.2f us\n\n", kExperts, kTopK, kHidden,
              kInter, kGroup, empty_us);
  std::printf("%5s %-7s %4s %-8s | %9s %6s %7s | %8s %8s %7s %9s | %s\n", "T", "routing", "hit", "part", "us", "TB/s",
              "TFLOP/s", "floor", "cuBLAS", "x floor", "vs cuBLAS", "kernel");
  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv)
    std::fprintf(csv, "device,t,routing,experts_hit,part,us,bytes,flops,tbps,tflops,floor_us,cublas_us,empty_us,kernel\n");

  const int ts[] = {1, 16, 256, 1024, 4096};
  const kf::RoutingArchetype routings[] = {kf::RoutingArchetype::uniform, kf::RoutingArchetype::zipf1};
  for (int t : ts)
    for (kf::RoutingArchetype r : routings) {
      const std::vector<int32_t> host_ids = kf::generate_routing(r, t, kExperts, kTopK, 20261130);
      check(cudaMemcpy(ids, host_ids.data(), host_ids.size() * 4, cudaMemcpyHostToDevice), "ids");
      std::vector<char> hit(kExperts, 0);
      for (int32_t e : host_ids) hit[e] = 1;
      const int n_hit = static_cast<int>(std::count(hit.begin(), hit.end(), 1));
      const int64_t slots = int64_t(t) * kTopK;
      const size_t act_bytes = size_t(t) * kHidden * 2 * 2 + size_t(slots) * 8;  // x, y, ids, weights
      const size_t g1_bytes = n_hit * w1.bytes_per_expert(), g2_bytes = n_hit * w2.bytes_per_expert();
      const size_t layer_bytes = g1_bytes + g2_bytes + act_bytes;
      const double g1_flops = 2.0 * slots * w1.n * w1.k, g2_flops = 2.0 * slots * w2.n * w2.k;
      const double flops = g1_flops + g2_flops;

      const double t_floor = timer.median_us([&](cudaStream_t s) { timer.stream_read(floor_buf, layer_bytes, s); }, reps);
      const float alpha = 1.f, beta = 0.f;
      const double t_blas = timer.median_us(
          [&](cudaStream_t) {
            // Row-major C[M,N] = A[M,K] W[N,K]^T is column-major C^T = W A^T.
            cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, 2 * kInter, slots, kHidden, &alpha, dense1, CUDA_R_16BF,
                         kHidden, a1, CUDA_R_16BF, kHidden, &beta, c1, CUDA_R_16BF, 2 * kInter, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT);
            cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, kHidden, slots, kInter, &alpha, dense2, CUDA_R_16BF, kInter,
                         a2, CUDA_R_16BF, kInter, &beta, c2, CUDA_R_16BF, kHidden, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT);
          },
          reps);

      // The whole layer.
      kf_moe_layer_args la{};
      la.x = x;
      la.topk_ids = ids;
      la.topk_weights = wts;
      la.w1_qweight = w1.qweight;
      la.w1_scales = w1.scales;
      la.w2_qweight = w2.qweight;
      la.w2_scales = w2.scales;
      la.y = y;
      la.scratch = scratch;
      la.scratch_bytes = scratch_bytes;
      la.t = t;
      la.max_t = kMaxT;
      // The two forms in turn within each repetition: timed one after the other, the layer
      // (first, right after cuBLAS) ran 11-32 us slower than serial at T = 4096, where none
      // of its kernels overlap (NOTES, MoE v21).
      const std::vector<double> layer_serial = timer.medians_us_alternating(
          {[&](cudaStream_t s) { kf_check(kf_run_moe(db, &shape, &la, s), "kf_run_moe"); },
           [&](cudaStream_t s) { kf_check(kf_run_moe(serial_db, &shape, &la, s), "kf_run_moe (overlap off)"); }},
          reps);
      const double t_layer = layer_serial[0], t_serial = layer_serial[1];

      // The same pieces one at a time, on buffers of their own.
      const kf_kernel *k1 = nullptr, *k2 = nullptr;
      kf_check(kf_select_moe(db, 1, &shape, t, &k1), "kf_select_moe gemm1");
      kf_check(kf_select_moe(db, 2, &shape, t, &k2), "kf_select_moe gemm2");
      int bm1 = 0, bm2 = 0;
      kf_check(kf_kernel_block_m(k1, &bm1), "block_m");
      kf_check(kf_kernel_block_m(k2, &bm2), "block_m");
      struct Sorted {
        int32_t *ids, *experts, *num;
      };
      auto sorted_for = [&](int bm) {
        const int64_t cap = kf::moe::sorted_capacity(t, kTopK, kExperts, bm);
        return Sorted{static_cast<int32_t*>(alloc(cap * 4)), static_cast<int32_t*>(alloc(cap * 4)),
                      static_cast<int32_t*>(alloc(4))};
      };
      const Sorted s1 = sorted_for(bm1), s2 = bm2 == bm1 ? s1 : sorted_for(bm2);
      // The layer's aligns through `on`, one per distinct block_m; with zero_y the first
      // also zeroes y, as kf_run_moe's does before a top_k-reducing gemm2.
      auto align_on = [&](kf_db* on, const Sorted& so, int bm, cudaStream_t s, void* zero, int64_t zero_count) {
        kf_moe_align_args a{ids, so.ids, so.experts, so.num, t, kTopK, kExperts, bm, zero, zero_count};
        kf_check(kf_launch_moe_align(on, &a, s), "kf_launch_moe_align");
      };
      auto aligns_on = [&](kf_db* on, cudaStream_t s, bool zero_y = false) {
        align_on(on, s1, bm1, s, zero_y ? y : nullptr, zero_y ? int64_t{t} * kHidden : 0);
        if (bm2 != bm1) align_on(on, s2, bm2, s, nullptr, 0);
      };
      auto aligns = [&](cudaStream_t s) { aligns_on(db, s); };
      auto workspace = [&](const kf_kernel* k, float** ws, int** cnt) {
        int64_t floats = 0, counters = 0;
        kf_check(kf_kernel_workspace(k, t, &floats, &counters), "kf_kernel_workspace");
        *ws = static_cast<float*>(alloc((floats + 1) * 4));
        *cnt = static_cast<int*>(alloc((counters + 1) * 4));
        check(cudaMemset(*cnt, 0, (counters + 1) * 4), "counters zero");
      };
      float *ws1, *ws2;
      int *cnt1, *cnt2;
      workspace(k1, &ws1, &cnt1);
      workspace(k2, &ws2, &cnt2);
      // A fused SiLU gemm1 writes h itself: no silu_mul part then.
      const bool fused = kf_kernel_fuses_silu(k1) == 1;
      kf_moe_gemm_args g1{x, w1.qweight, w1.scales, nullptr, wts, s1.ids, s1.experts, s1.num, fused ? h : h1, ws1,
                          cnt1, t, kTopK, kExperts, static_cast<int>(w1.n), static_cast<int>(w1.k), kGroup};
      kf_moe_gemm_args g2{h, w2.qweight, w2.scales, nullptr, wts, s2.ids, s2.experts, s2.num, h2, ws2, cnt2,
                          t, kTopK, kExperts, static_cast<int>(w2.n), static_cast<int>(w2.k), kGroup};
      kf_moe_silu_mul_args sm{h1, h, static_cast<int>(slots), kInter};
      kf_moe_sum_args su{h2, ids, y, t, kTopK, kExperts, kHidden};
      aligns(timer.stream());
      check(cudaStreamSynchronize(timer.stream()), "align");
      const double t_align = timer.median_us(aligns, reps);
      // moe_align in one workgroup at this T too (the cluster form's baseline).
      const double t_align1 = timer.median_us([&](cudaStream_t s) { aligns_on(one_workgroup_db, s); }, reps);
      const bool cluster_align = int64_t{t} * kTopK >= kf::moe::kAlignClusterMinSlots;
      const double t_g1 = timer.median_us([&](cudaStream_t s) { kf_check(kf_launch_moe_gemm(k1, &g1, s), "gemm1"); }, reps);
      const double t_silu =
          fused ? 0.0
                : timer.median_us([&](cudaStream_t s) { kf_check(kf_launch_moe_silu_mul(db, 1, &sm, s), "silu_mul"); },
                                  reps);
      const double t_g2 = timer.median_us([&](cudaStream_t s) { kf_check(kf_launch_moe_gemm(k2, &g2, s), "gemm2"); }, reps);
      // A _red gemm2 sums over top_k itself (into y; here into h2, which is larger, as
      // only its time is wanted): no sum part then.
      const bool reduces = kf_kernel_reduces_topk(k2) == 1;
      const double t_sum =
          reduces ? 0.0
                  : timer.median_us([&](cudaStream_t s) { kf_check(kf_launch_moe_sum(db, 1, &su, s), "sum"); }, reps);
      auto align_zeroing = [&](cudaStream_t s) { aligns_on(db, s, true); };
      const double t_align_z = reduces ? timer.median_us(align_zeroing, reps) : 0.0;

      // gemm1 and gemm2 (with silu_mul and sum when the winners do not fuse them) back to
      // back in one timed region, on the sorted lists aligned above: the two expert GEMMs
      // as the layer runs them, launches overlapped as kf_run_moe overlaps them.
      auto gemms_into = [&](const kf_moe_gemm_args& second, cudaStream_t s) {
        kf_check(kf_launch_moe_gemm(k1, &g1, s), "gemm1");
        if (!fused) kf_check(kf_launch_moe_silu_mul(db, 1, &sm, s), "silu_mul");
        kf_check(kf_launch_moe_gemm(k2, &second, s), "gemm2");
        if (!reduces) kf_check(kf_launch_moe_sum(db, 1, &su, s), "sum");
      };
      auto gemms = [&](cudaStream_t s) { gemms_into(g2, s); };
      const double t_gemms = timer.median_us(gemms, reps);
      const double t_gemms_a = timer.median_us_after(aligns, gemms, reps);
      // What an L2 prefetch of the hit experts' weights could buy at most (decode T only):
      // the GEMMs timed after an untimed gemm2 (its weights in L2) and after untimed GEMMs
      // (both weights in L2).
      const bool decode_t = t <= 16;
      auto g2_only = [&](cudaStream_t s) { kf_check(kf_launch_moe_gemm(k2, &g2, s), "gemm2"); };
      const double t_gemms_h2 = decode_t ? timer.median_us_after(g2_only, gemms, reps) : 0.0;
      const double t_gemms_h12 = decode_t ? timer.median_us_after(gemms, gemms, reps) : 0.0;
      kf_moe_gemm_args g2y = g2;  // a reducing gemm2 adds into y ([T, H]) itself
      g2y.y = y;
      const double t_gemms_z =
          reduces ? timer.median_us_after(align_zeroing, [&](cudaStream_t s) { gemms_into(g2y, s); }, reps) : 0.0;

      const char* rname = kf::routing_archetype_name(r);
      auto row = [&](const char* part, double us, size_t bytes, double fl, const std::string& kernel, bool ratios) {
        std::printf("%5d %-7s %4d %-8s | %9.2f %6.2f %7.1f |", t, rname, n_hit, part, us, bytes / us * 1e-6,
                    fl / us * 1e-6);
        if (ratios) std::printf(" %8.2f %8.2f %7.2f %9.2f", t_floor, t_blas, us / t_floor, t_blas / us);
        else std::printf(" %8s %8s %7s %9s", "", "", "", "");
        std::printf(" | %s\n", kernel.c_str());
        if (csv)
          std::fprintf(csv, "%s,%d,%s,%d,%s,%.3f,%zu,%.0f,%.4f,%.2f,%.3f,%.3f,%.3f,%s\n", prop.name, t, rname, n_hit, part,
                       us, bytes, fl, bytes / us * 1e-6, fl / us * 1e-6, t_floor, t_blas, empty_us, kernel.c_str());
      };
      const std::string names = std::string(kf_kernel_name(k1)) + " + " + kf_kernel_name(k2);
      row("layer", t_layer, layer_bytes, flops, names, true);
      row("serial", t_serial, layer_bytes, flops, "the layer with KFORGE_OVERLAP_LAUNCHES=0", true);
      row("gemms", t_gemms, layer_bytes, flops,
          std::string("gemm1") + (fused ? "" : " + silu_mul") + " + gemm2" + (reduces ? "" : " + sum") +
              " back to back, aligned before",
          true);
      row("gemms_a", t_gemms_a, layer_bytes, flops, "the same, right after an untimed moe_align (routing ids in L2)",
          true);
      if (reduces)
        row("gemms_z", t_gemms_z, layer_bytes, flops, "the same after an untimed align that zeroed y, gemm2 adding into it",
            true);
      const std::string bms = "(block_m " + std::to_string(bm1) + (bm2 != bm1 ? ", " + std::to_string(bm2) : "") + ")";
      if (decode_t) {
        row("gemms_h2", t_gemms_h2, layer_bytes, flops, "gemms after an untimed gemm2: its weights in L2", true);
        row("gemms_h12", t_gemms_h12, layer_bytes, flops, "gemms after untimed gemms: both weights in L2", true);
      }
      row("align", t_align, slots * 4, 0,
          std::string(cluster_align ? "moe_align_cluster_any" : "moe_align_any") + " where the DB has it " + bms, false);
      if (reduces)
        row("align_z", t_align_z, slots * 4 + size_t(t) * kHidden * 2, 0, "the align part zeroing y as well " + bms,
            false);
      row("align1", t_align1, slots * 4, 0, "moe_align_any, one workgroup (KFORGE_CLUSTER_ALIGN=0) " + bms, false);
      row("gemm1", t_g1, g1_bytes + size_t(t) * kHidden * 2, g1_flops, kf_kernel_name(k1), false);
      if (!fused) row("silu_mul", t_silu, slots * 3 * kInter * 2, 0, "moe_silu_mul_any_bf16", false);
      row("gemm2", t_g2, g2_bytes + slots * kInter * 2, g2_flops, kf_kernel_name(k2), false);
      if (!reduces) row("sum", t_sum, slots * kHidden * 2 + size_t(t) * kHidden * 2, 0, "moe_sum_any_bf16", false);
      row("parts", t_align + t_g1 + t_silu + t_g2 + t_sum, layer_bytes, flops,
          "sum of the " + std::to_string(5 - fused - reduces) + " parts", true);
      for (void* p : {static_cast<void*>(s1.ids), static_cast<void*>(s1.experts), static_cast<void*>(s1.num)}) cudaFree(p);
      if (bm2 != bm1)
        for (void* p : {static_cast<void*>(s2.ids), static_cast<void*>(s2.experts), static_cast<void*>(s2.num)})
          cudaFree(p);
      for (void* p : {static_cast<void*>(ws1), static_cast<void*>(ws2), static_cast<void*>(cnt1),
                      static_cast<void*>(cnt2)})
        cudaFree(p);
    }
  check(cudaGetLastError(), "launch");
  if (csv) std::fclose(csv);
  cublasDestroy(blas);
  kf_close(serial_db);
  kf_close(one_workgroup_db);
  kf_close(db);
  return 0;
}
