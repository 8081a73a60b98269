// bench/ogs: the gpt-oss-120b MXFP4 MoE layer (E = 128, top_k = 4, H = I = 2880; gate_up
// with bias and the clamped SwiGLU fused, down with bias and the routing weight) at T in
// {1, 16, 256, 1024, 4096} tokens under the uniform and zipf1 routings, timed cold like
// bench/linear (cold_timer.h: read flush of 4x L2, event, kernel(s), event, median):
//   layer    kf_run_mxfp4_moe: align + gemm1 + gemm2 + sum, selected by the runtime;
//   gemm1, gemm2  each GEMM alone through kf_launch_mxfp4_moe_gemm;
//   floor    a streaming read of the bytes the layer must read at least: MXFP4 weights,
//            scales and biases of the experts the routing hits (both GEMMs) plus x, y,
//            the routing ids and weights (the bytes roofline, launch included);
//   cuBLAS   a per-expert loop of cuBLAS bf16 GEMMs on dequantised weights: for every
//            hit expert, its tokens (already gathered, contiguous) times its gate_up and
//            down weights in bf16 (2 GEMMs per hit expert) — what an engine without an
//            MXFP4 kernel would run, minus the gather, activation and sum.
// TFLOP/s counts 2 T top_k (N1 K1 + N2 K2). Prints time, effective TB/s and TFLOP/s,
// layer/floor (time ratio, >= 1) and cuBLAS-loop/layer (speed ratio, > 1 = kforge
// faster); writes a CSV when given a path.
//   kforge_bench_ogs [DB (tuned_db/kforge.sqlite)] [CSV] [reps (100)]
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
#include "w4a16_moe/launch.h"

namespace {

using namespace kf::bench;

constexpr int kExperts = 128, kTopK = 4, kHidden = 2880, kInter = 2880, kMaxT = 4096;
constexpr int kN1 = 2 * kInter, kK1 = kHidden, kN2 = kHidden, kK2 = kInter;

// e8m0 scales 2^-9 .. 2^-3 (weights ~ 1 / sqrt(K)).
__global__ void fill_scales(uint8_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint8_t>(118 + mix(i, seed) % 7);
}

struct Gemm {  // one GEMM's stacked MXFP4 experts
  int n, k;
  uint8_t* weight;
  uint8_t* scales;
  float* bias;
  size_t bytes_per_expert() const { return size_t(n) * k / 2 + size_t(k / 32) * n + size_t(n) * 4; }
};

Gemm make_gemm(int n, int k, uint32_t seed) {
  Gemm g{n, k, nullptr, nullptr, nullptr};
  const size_t wbytes = size_t(kExperts) * n * k / 2, sbytes = size_t(kExperts) * (k / 32) * n;
  g.weight = static_cast<uint8_t*>(alloc(wbytes));
  g.scales = static_cast<uint8_t*>(alloc(sbytes));
  g.bias = static_cast<float*>(alloc(size_t(kExperts) * n * 4));
  fill_bits<<<1024, 256>>>(reinterpret_cast<uint32_t*>(g.weight), wbytes / 4, seed);
  fill_scales<<<1024, 256>>>(g.scales, sbytes, seed + 1);
  fill_f32<<<1024, 256>>>(g.bias, size_t(kExperts) * n, seed + 2, -0.1f, 0.1f);
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  const kf::bench::Start run = kf::bench::start(argc, argv);
  const char *db_path = run.db_path, *csv_path = run.csv_path;
  const int reps = run.reps;
  const cudaDeviceProp& prop = run.prop;
  kf_db* const db = run.db;
  kf::bench::ColdTimer timer;
  cublasHandle_t blas;
  cublasCreate(&blas);
  cublasSetStream(blas, timer.stream());
  const kf_mxfp4_moe_shape shape{kExperts, kTopK, kHidden, kInter, 1};

  const Gemm w1 = make_gemm(kN1, kK1, 1), w2 = make_gemm(kN2, kK2, 11);
  const size_t slots_max = size_t(kMaxT) * kTopK;
  auto* x = static_cast<uint16_t*>(alloc(size_t(kMaxT) * kHidden * 2));
  fill_bf16<<<1024, 256>>>(x, size_t(kMaxT) * kHidden, 5, -1, 1);
  void* y = alloc(size_t(kMaxT) * kHidden * 2);
  auto* ids = static_cast<int32_t*>(alloc(slots_max * 4));
  auto* wts = static_cast<float*>(alloc(slots_max * 4));
  fill_f32<<<256, 256>>>(wts, slots_max, 7, 0.1f, 1.f);
  size_t scratch_bytes = 0;
  kf_check(kf_mxfp4_moe_scratch_bytes(db, &shape, kMaxT, &scratch_bytes), "kf_mxfp4_moe_scratch_bytes");
  void* scratch = alloc(scratch_bytes);
  // The read floor's buffer: every expert's weights plus the largest activations.
  const size_t floor_max = kExperts * (w1.bytes_per_expert() + w2.bytes_per_expert()) + size_t(kMaxT) * kHidden * 4 +
                           slots_max * 8;
  void* floor_buf = alloc(floor_max);
  check(cudaMemset(floor_buf, 0x3c, floor_max), "floor fill");
  // cuBLAS loop operands: every expert's weights dequantised to bf16 (gate_up [N1, K1],
  // down [N2, K2]), activations already grouped by expert.
  const size_t d1 = size_t(kN1) * kK1, d2 = size_t(kN2) * kK2;
  auto* dense1 = static_cast<uint16_t*>(alloc(kExperts * d1 * 2));
  auto* dense2 = static_cast<uint16_t*>(alloc(kExperts * d2 * 2));
  fill_bf16<<<1024, 256>>>(dense1, kExperts * d1, 8, -0.05f, 0.05f);
  fill_bf16<<<1024, 256>>>(dense2, kExperts * d2, 9, -0.05f, 0.05f);
  auto* a1 = static_cast<uint16_t*>(alloc(slots_max * kK1 * 2));
  auto* a2 = static_cast<uint16_t*>(alloc(slots_max * kK2 * 2));
  fill_bf16<<<1024, 256>>>(a1, slots_max * kK1, 10, -1, 1);
  fill_bf16<<<1024, 256>>>(a2, slots_max * kK2, 12, -1, 1);
  auto* c1 = static_cast<uint16_t*>(alloc(slots_max * kN1 * 2));
  auto* c2 = static_cast<uint16_t*>(alloc(slots_max * kN2 * 2));
  auto* h = static_cast<uint16_t*>(alloc(slots_max * kInter * 2));
  auto* h2 = static_cast<uint16_t*>(alloc(slots_max * kHidden * 2));
  check(cudaDeviceSynchronize(), "fill");

  const double empty_us = timer.median_us([&](cudaStream_t s) { timer.empty(s); }, reps);
  std::printf("device: %s (%d SMs, L2 %zu MB)   db: %s   reps: %d, cold L2 (read flush %zu MB)\n", prop.name,
              timer.sms(), timer.l2_bytes() >> 20, db_path, reps, timer.l2_bytes() * 4 >> 20);
  std::printf("layer: gpt-oss-120b experts, E %d, top_k %d, H %d, I %d, MXFP4 weights, bf16 activations; "
              "empty kernel: %.2f us\n\n",
              kExperts, kTopK, kHidden, kInter, empty_us);
  std::printf("%5s %-7s %4s %-6s | %9s %6s %7s | %8s %9s %7s %9s | %s\n", "T", "routing", "hit", "part", "us", "TB/s",
              "TFLOP/s", "floor", "cuBLAS", "x floor", "vs cuBLAS", "kernel");
  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv)
    std::fprintf(csv, "device,t,routing,experts_hit,part,us,bytes,flops,tbps,tflops,floor_us,cublas_loop_us,empty_us,kernel\n");

  const int ts[] = {1, 16, 256, 1024, 4096};
  const kf::RoutingArchetype routings[] = {kf::RoutingArchetype::uniform, kf::RoutingArchetype::zipf1};
  for (int t : ts)
    for (kf::RoutingArchetype r : routings) {
      const std::vector<int32_t> host_ids = kf::generate_routing(r, t, kExperts, kTopK, 20261130);
      check(cudaMemcpy(ids, host_ids.data(), host_ids.size() * 4, cudaMemcpyHostToDevice), "ids");
      std::vector<int> load(kExperts, 0);
      for (int32_t e : host_ids) ++load[e];
      const int n_hit = static_cast<int>(kExperts - std::count(load.begin(), load.end(), 0));
      const int64_t slots = int64_t(t) * kTopK;
      const size_t act_bytes = size_t(t) * kHidden * 2 * 2 + size_t(slots) * 8;  // x, y, ids, weights
      const size_t g1_bytes = n_hit * w1.bytes_per_expert(), g2_bytes = n_hit * w2.bytes_per_expert();
      const size_t layer_bytes = g1_bytes + g2_bytes + act_bytes;
      const double g1_flops = 2.0 * slots * kN1 * kK1, g2_flops = 2.0 * slots * kN2 * kK2;
      const double flops = g1_flops + g2_flops;

      const double t_floor = timer.median_us([&](cudaStream_t s) { timer.stream_read(floor_buf, layer_bytes, s); }, reps);
      const float alpha = 1.f, beta = 0.f;
      // Row-major C[M,N] = A[M,K] W[N,K]^T is column-major C^T = W A^T.
      const double t_blas = timer.median_us(
          [&](cudaStream_t) {
            int64_t row = 0;
            for (int e = 0; e < kExperts; ++e) {
              if (!load[e]) continue;
              cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, kN1, load[e], kK1, &alpha, dense1 + e * d1, CUDA_R_16BF, kK1,
                           a1 + row * kK1, CUDA_R_16BF, kK1, &beta, c1 + row * kN1, CUDA_R_16BF, kN1,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
              cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, kN2, load[e], kK2, &alpha, dense2 + e * d2, CUDA_R_16BF, kK2,
                           a2 + row * kK2, CUDA_R_16BF, kK2, &beta, c2 + row * kN2, CUDA_R_16BF, kN2,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
              row += load[e];
            }
          },
          reps);

      kf_mxfp4_moe_layer_args la{};
      la.x = x;
      la.topk_ids = ids;
      la.topk_weights = wts;
      la.w1_weight = w1.weight;
      la.w1_scales = w1.scales;
      la.w1_bias = w1.bias;
      la.w2_weight = w2.weight;
      la.w2_scales = w2.scales;
      la.w2_bias = w2.bias;
      la.y = y;
      la.scratch = scratch;
      la.scratch_bytes = scratch_bytes;
      la.t = t;
      la.max_t = kMaxT;
      const double t_layer = timer.median_us(
          [&](cudaStream_t s) { kf_check(kf_run_mxfp4_moe(db, &shape, &la, s), "kf_run_mxfp4_moe"); }, reps);

      // Each GEMM alone, on a correct routing (moe_align run once here).
      const kf_kernel *k1 = nullptr, *k2 = nullptr;
      kf_check(kf_select_mxfp4_moe(db, 1, &shape, t, &k1), "select gemm1");
      kf_check(kf_select_mxfp4_moe(db, 2, &shape, t, &k2), "select gemm2");
      int bm1 = 0, bm2 = 0;
      kf_check(kf_kernel_block_m(k1, &bm1), "block_m");
      kf_check(kf_kernel_block_m(k2, &bm2), "block_m");
      auto gemm_time = [&](const kf_kernel* k, int bm, int gemm) {
        const int64_t cap = kf::moe::sorted_capacity(t, kTopK, kExperts, bm);
        auto* sorted = static_cast<int32_t*>(alloc(cap * 4));
        auto* blocks = static_cast<int32_t*>(alloc(cap * 4));
        auto* num = static_cast<int32_t*>(alloc(4));
        kf_moe_align_args al{ids, sorted, blocks, num, t, kTopK, kExperts, bm, nullptr, 0};  // nothing to zero
        kf_check(kf_launch_moe_align(db, &al, timer.stream()), "align");
        check(cudaStreamSynchronize(timer.stream()), "align");
        const Gemm& w = gemm == 1 ? w1 : w2;
        kf_mxfp4_moe_gemm_args g{gemm == 1 ? static_cast<const void*>(x) : h, w.weight, w.scales, w.bias, wts,
                                 sorted, blocks, num, gemm == 1 ? static_cast<void*>(h) : h2, t, kTopK, kExperts,
                                 w.n, w.k, 1.702f, 7.0f};
        const double us = timer.median_us(
            [&](cudaStream_t s) { kf_check(kf_launch_mxfp4_moe_gemm(k, &g, s), "kf_launch_mxfp4_moe_gemm"); }, reps);
        for (void* p : {static_cast<void*>(sorted), static_cast<void*>(blocks), static_cast<void*>(num)}) cudaFree(p);
        return us;
      };
      const double t_g1 = gemm_time(k1, bm1, 1), t_g2 = gemm_time(k2, bm2, 2);

      const char* rname = kf::routing_archetype_name(r);
      auto row = [&](const char* part, double us, size_t bytes, double fl, const std::string& kernel, bool ratios) {
        std::printf("%5d %-7s %4d %-6s | %9.2f %6.2f %7.1f |", t, rname, n_hit, part, us, bytes / us * 1e-6,
                    fl / us * 1e-6);
        if (ratios) std::printf(" %8.2f %9.2f %7.2f %9.2f", t_floor, t_blas, us / t_floor, t_blas / us);
        else std::printf(" %8s %9s %7s %9s", "", "", "", "");
        std::printf(" | %s\n", kernel.c_str());
        if (csv)
          std::fprintf(csv, "%s,%d,%s,%d,%s,%.3f,%zu,%.0f,%.4f,%.2f,%.3f,%.3f,%.3f,%s\n", prop.name, t, rname, n_hit, part,
                       us, bytes, fl, bytes / us * 1e-6, fl / us * 1e-6, t_floor, t_blas, empty_us, kernel.c_str());
      };
      row("layer", t_layer, layer_bytes, flops, std::string(kf_kernel_name(k1)) + " + " + kf_kernel_name(k2), true);
      row("gemm1", t_g1, g1_bytes + size_t(t) * kHidden * 2, g1_flops, kf_kernel_name(k1), false);
      row("gemm2", t_g2, g2_bytes + slots * kInter * 2, g2_flops, kf_kernel_name(k2), false);
      std::fflush(stdout);
    }
  check(cudaGetLastError(), "launch");
  if (csv) std::fclose(csv);
  cublasDestroy(blas);
  kf_close(db);
  return 0;
}
