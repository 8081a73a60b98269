// bench/mla: DeepSeek-V3.2 sparse MLA decode (576-wide latent KV rows, topk 2048
// indices per query) for H in {16, 32, 64, 128} heads per rank, without and with 128
// extra rows per query, at Q in {1, 4, 16, 64, 256, 1024} queries, timed cold like
// bench/linear (cold_timer.h: read flush of 4x L2, event, kernel(s), event, median):
//   kforge   kf_run_mla: the runtime's pick for (H, extras, Q), decode (+ combine);
//   floor    a streaming read of the bytes the kernel must move at least: the gathered
//            KV rows (Q x (topk + extras) x 1152 bytes, each query's rows once), q and o;
//   copy     the device's copy bandwidth: cudaMemcpyAsync of 1 GiB device to device,
//            (read + written bytes) / time, timed the same way.
// Effective bandwidth = those bytes / kforge time; printed as a fraction of the copy
// bandwidth (the issue's yardstick) and as x floor (time ratio, >= 1); TFLOP/s counts
// 2 Q H (topk + extras) (576 + 512). The KV cache holds 65536 rows (75 MB, larger than
// L2), indices are distinct random rows per query.
//   kforge_bench_mla [DB (tuned_db/kforge.sqlite)] [CSV] [reps (100)]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "cold_timer.h"
#include "kforge/kforge.h"
#include "sparse_mla/launch.h"

namespace {

using namespace kf::bench;

constexpr int kTopK = 2048, kKvRows = 65536, kMaxQ = 1024, kMaxHeads = 128, kWindow = 128;

}  // namespace

int main(int argc, char** argv) {
  const kf::bench::Start run = kf::bench::start(argc, argv);
  const char *db_path = run.db_path, *csv_path = run.csv_path;
  const int reps = run.reps;
  const cudaDeviceProp& prop = run.prop;
  kf_db* const db = run.db;
  kf::bench::ColdTimer timer;

  const size_t q_count = size_t(kMaxQ) * kMaxHeads * kf::mla::kHeadDim;
  auto* q = static_cast<uint16_t*>(alloc(q_count * 2));
  auto* kv = static_cast<uint16_t*>(alloc(size_t(kKvRows) * kf::mla::kHeadDim * 2));
  fill_bf16<<<1024, 256>>>(q, q_count, 1, -1.f, 1.f);
  fill_bf16<<<1024, 256>>>(kv, size_t(kKvRows) * kf::mla::kHeadDim, 2, -1.f, 1.f);
  void* o = alloc(size_t(kMaxQ) * kMaxHeads * kf::mla::kLatentDim * 2);
  auto* lse = static_cast<float*>(alloc(size_t(kMaxQ) * kMaxHeads * 4));
  auto* indices = static_cast<int32_t*>(alloc(size_t(kMaxQ) * kTopK * 4));
  auto* extra_start = static_cast<int32_t*>(alloc(kMaxQ * 4));
  auto* extra_count = static_cast<int32_t*>(alloc(kMaxQ * 4));
  {
    std::mt19937_64 rng(3);
    std::vector<int32_t> perm(kKvRows), host(size_t(kMaxQ) * kTopK), starts(kMaxQ), counts(kMaxQ, kWindow);
    std::iota(perm.begin(), perm.end(), 0);
    for (int qi = 0; qi < kMaxQ; ++qi) {
      // Distinct rows per query: a partial shuffle picks topk of them.
      for (int j = 0; j < kTopK; ++j) std::swap(perm[j], perm[j + rng() % (kKvRows - j)]);
      std::copy(perm.begin(), perm.begin() + kTopK, host.begin() + size_t(qi) * kTopK);
      starts[qi] = static_cast<int32_t>(rng() % (kKvRows - kWindow));
    }
    check(cudaMemcpy(indices, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "indices");
    check(cudaMemcpy(extra_start, starts.data(), kMaxQ * 4, cudaMemcpyHostToDevice), "extra_start");
    check(cudaMemcpy(extra_count, counts.data(), kMaxQ * 4, cudaMemcpyHostToDevice), "extra_count");
  }
  const size_t floor_max = size_t(kMaxQ) * (kTopK + kWindow) * kf::mla::kHeadDim * 2 + q_count * 2 +
                           size_t(kMaxQ) * kMaxHeads * kf::mla::kLatentDim * 2;
  void* floor_buf = alloc(floor_max);
  check(cudaMemset(floor_buf, 0x3c, floor_max), "floor fill");
  check(cudaDeviceSynchronize(), "fill");

  // Copy bandwidth: 1 GiB device to device, bytes read + written per second.
  const size_t copy_bytes = size_t(1) << 30;
  void* copy_src = alloc(copy_bytes);
  void* copy_dst = alloc(copy_bytes);
  check(cudaMemset(copy_src, 1, copy_bytes), "copy fill");
  const double copy_us = timer.median_us(
      [&](cudaStream_t s) { check(cudaMemcpyAsync(copy_dst, copy_src, copy_bytes, cudaMemcpyDeviceToDevice, s), "copy"); },
      reps);
  const double copy_tbps = 2.0 * copy_bytes / copy_us * 1e-6;
  const double empty_us = timer.median_us([&](cudaStream_t s) { timer.empty(s); }, reps);
  std::printf("device: %s (%d SMs, L2 %zu MB)   db: %s   reps: %d, cold L2 (read flush %zu MB)\n", prop.name,
              timer.sms(), timer.l2_bytes() >> 20, db_path, reps, timer.l2_bytes() * 4 >> 20);
  std::printf("sparse MLA decode: topk %d, KV cache %d rows x 576 bf16; copy bandwidth %.2f TB/s (1 GiB D2D); "
              "empty kernel %.2f us\n\n",
              kTopK, kKvRows, copy_tbps, empty_us);
  std::printf("%4s %4s %5s | %9s %6s %7s | %8s %7s %7s | %s\n", "H", "x", "Q", "us", "TB/s", "TFLOP/s", "floor",
              "x floor", "of copy", "kernel");
  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv) std::fprintf(csv, "device,heads,extras,q,us,bytes,flops,tbps,tflops,floor_us,copy_tbps,empty_us,kernel\n");

  for (int heads : {16, 32, 64, 128})
    for (int extras : {0, kWindow}) {
      const kf_mla_shape shape{heads, kTopK, extras, 1};
      size_t scratch_bytes = 0;
      kf_check(kf_mla_scratch_bytes(db, &shape, kMaxQ, &scratch_bytes), "kf_mla_scratch_bytes");
      void* scratch = alloc(scratch_bytes);
      for (int queries : {1, 4, 16, 64, 256, 1024}) {
        const kf_kernel* k = nullptr;
        kf_check(kf_select_mla(db, &shape, queries, &k), "kf_select_mla");
        kf_mla_decode_args a{};
        a.q = q;
        a.kv = kv;
        a.indices = indices;
        a.extra_start = extras ? extra_start : nullptr;
        a.extra_count = extras ? extra_count : nullptr;
        a.o = o;
        a.lse = lse;
        a.queries = queries;
        a.kv_rows = kKvRows;
        a.heads = heads;
        a.topk = kTopK;
        a.softmax_scale = 0.0416667f;  // 1 / sqrt(576)
        const double slots = double(queries) * (kTopK + extras);
        const double bytes = slots * kf::mla::kHeadDim * 2 + double(queries) * heads * (kf::mla::kHeadDim + kf::mla::kLatentDim) * 2;
        const double flops = 2.0 * slots * heads * (kf::mla::kHeadDim + kf::mla::kLatentDim);
        const double t = timer.median_us(
            [&](cudaStream_t s) { kf_check(kf_launch_mla(k, &a, scratch, scratch_bytes, s), "kf_launch_mla"); }, reps);
        const double t_floor =
            timer.median_us([&](cudaStream_t s) { timer.stream_read(floor_buf, size_t(bytes), s); }, reps);
        const double tbps = bytes / t * 1e-6;
        std::printf("%4d %4d %5d | %9.2f %6.2f %7.1f | %8.2f %7.2f %6.0f%% | %s\n", heads, extras, queries, t, tbps,
                    flops / t * 1e-6, t_floor, t / t_floor, 100 * tbps / copy_tbps, kf_kernel_name(k));
        if (csv)
          std::fprintf(csv, "%s,%d,%d,%d,%.3f,%.0f,%.0f,%.4f,%.2f,%.3f,%.3f,%.3f,%s\n", prop.name, heads, extras, queries,
                       t, bytes, flops, tbps, flops / t * 1e-6, t_floor, copy_tbps, empty_us, kf_kernel_name(k));
        std::fflush(stdout);
      }
      check(cudaFree(scratch), "free");
    }
  if (csv) std::fclose(csv);
  kf_close(db);
  return 0;
}
