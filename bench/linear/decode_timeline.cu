// Development harness: where a decode (skinny) kernel's time goes, block by block. The
// served skinny configs of the qwen3-35b linear layers at M = 1, and the paired form of
// the wide layers at M = 16, built from the template with its timeline hooks
// (KF_SKINNY_STAMP) stamping the global timer from thread 0 of every block: start, warp
// 0's first and last span landed, warp 0's and every warp's loop done, warp 0's and
// every warp's sums stored to shared memory, the block's sums in its tile, stored. The
// read floor's kernel gets the same start and end stamps. Each is timed cold as the
// benchmark times it (event median), then launched once more cold for the stamps; the
// skinny kernel also warm (right after itself) and as a second pass of its body within
// one launch (code fetched, data in L2). Timings, not checks: the data is random and the
// outputs unread. The stamps cost the kernel ~0.1-0.2 us of its event time (bench/linear
// times the kernels without them). Each timeline's header also says how many SMs ran one,
// two, ... of its blocks, and a split grid's lines add each cluster rank's first span
// and loop end.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "cold_timer.h"

constexpr int kSlots = 16;  // stamps per block
constexpr size_t kStampBytes = 4096 * kSlots * 8;  // up to 4096 blocks
constexpr int kSmSlot = kSlots - 1;  // not a time: the SM a block ran on

// [block][kSlots]. In constant memory: a __device__ pointer is loaded from memory at each
// stamp (a store through it may alias it), and thread 0 waited an L2 round trip for it
// before each stamp's store, which inflated every phase after a stamp by ~0.2 us.
__constant__ unsigned long long* g_stamps;
__device__ __forceinline__ void kf_timeline_stamp(int point) {
  if (threadIdx.x != 0) return;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  g_stamps[block * kSlots + point] = t;
  if (point == 0) {  // and where the block runs: the SM (slot kSmSlot), 1-based (0: no stamp)
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    g_stamps[block * kSlots + kSmSlot] = sm + 1;
  }
}
#define KF_SKINNY_STAMP(point) kf_timeline_stamp(point)
#include "util/stream_read.h"
#include "w4a16_linear/launch.h"
#include "w4a16_linear/skinny.h"

namespace {

using kf::bench::check;

constexpr int kPoints = 10;  // KF_SKINNY_STAMP's points, printed in the order they are passed
const char* const kPointNames[kPoints] = {"start", "span0", "spanN", "loop",   "summed",
                                          "stored", "loop0", "tile0", "tiles", "added0"};
constexpr int kOrder[kPoints] = {0, 1, 2, 6, 3, 7, 8, 9, 4, 5};

template <int N, int K, int BN, int WARPS, int STAGES, int BM, bool PAIRED, int SPLIT>
__global__ void __launch_bounds__(WARPS * 32) skinny_kernel(kf_linear_args args) {
  kf::w4a16_linear_skinny<N, K, 128, true, false, BM, BN, WARPS, SPLIT, STAGES, PAIRED>(args);
}

// The body twice in one launch: the second pass's stamps overwrite the first's, and it
// runs with its data in L2 and its code already fetched by this SM, where a second
// launch (the warm run) may start from an empty instruction cache.
template <int N, int K, int BN, int WARPS, int STAGES, int BM, bool PAIRED>
__global__ void __launch_bounds__(WARPS * 32) skinny_twice_kernel(kf_linear_args args) {
  kf::w4a16_linear_skinny<N, K, 128, true, false, BM, BN, WARPS, 1, STAGES, PAIRED>(args);
  __syncthreads();  // the second pass reuses the shared memory
  kf::w4a16_linear_skinny<N, K, 128, true, false, BM, BN, WARPS, 1, STAGES, PAIRED>(args);
}

__global__ void __launch_bounds__(kf::kStreamReadThreads) floor_kernel(kf_stream_read_args a) {
  kf_timeline_stamp(0);
  kf::stream_read(a);
  kf_timeline_stamp(5);
}

// One line: the spread of `v` (us after the first block's start) over the blocks.
void print_spread(const char* label, std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  std::printf("    %-7s min %5.2f  median %5.2f  max %5.2f\n", label, v.front(), v[v.size() / 2], v.back());
}

// Copies the last launch's stamps of `blocks` blocks and prints, per point, their spread
// over the blocks (us after the first block's start).
void print_timeline(const char* what, double event_us, const unsigned long long* stamps_dev, unsigned blocks,
                    bool floor, unsigned grid_x = 0, unsigned ranks = 1) {
  check(cudaDeviceSynchronize(), "stamps run");
  std::vector<unsigned long long> st(size_t(blocks) * kSlots);
  check(cudaMemcpy(st.data(), stamps_dev, st.size() * 8, cudaMemcpyDeviceToHost), "stamps");
  unsigned long long t0 = ~0ull, t_end = 0;
  for (unsigned b = 0; b < blocks; ++b) {
    t0 = std::min(t0, st[b * kSlots + 0]);
    t_end = std::max(t_end, st[b * kSlots + 5]);
  }
  // How many SMs ran 1, 2, 3, ... of the blocks: a cluster launch may place several
  // blocks on one SM while others stay idle.
  std::map<unsigned long long, int> per_sm;
  for (unsigned b = 0; b < blocks; ++b) ++per_sm[st[b * kSlots + kSmSlot]];
  std::map<int, int> sms_with;
  for (const auto& [sm, n] : per_sm) ++sms_with[n];
  std::string placement;
  for (const auto& [n, sms] : sms_with) placement += " " + std::to_string(sms) + "x" + std::to_string(n);
  std::printf("%-44s event %6.2f us   blocks %4u   first start to last store %5.2f us   SMs x blocks:%s\n", what,
              event_us, blocks, (t_end - t0) / 1e3, placement.c_str());
  // A split tile's blocks other than its cluster's first stop after the exchange: their
  // later points stay 0 (the stamps are cleared before each stamped run) and are left out.
  for (int p : kOrder) {
    if (floor && p != 0 && p != 5) continue;
    std::vector<double> v;
    for (unsigned b = 0; b < blocks; ++b)
      if (st[b * kSlots + p] != 0) v.push_back((st[b * kSlots + p] - t0) / 1e3);
    if (v.empty()) continue;
    print_spread(kPointNames[p], v);
  }
  // A split grid's first span and loop end by cluster rank (block = x + grid_x (rank + ranks z)).
  for (unsigned r = 0; ranks > 1 && r < ranks; ++r)
    for (int p : {1, 3}) {
      std::vector<double> v;
      for (unsigned b = 0; b < blocks; ++b)
        if (b / grid_x % ranks == r && st[b * kSlots + p] != 0) v.push_back((st[b * kSlots + p] - t0) / 1e3);
      if (!v.empty()) print_spread(("rank " + std::to_string(r) + " " + kPointNames[p]).c_str(), v);
    }
}

// One layer at M rows: block_m 8 (the swapped form) or, PAIRED, the paired block_m 16 form;
// SPLIT > 1 launches each tile's SPLIT blocks as one cluster, as the runtime does.
template <int N, int K, int BN, int WARPS, int STAGES, int BM = 8, bool PAIRED = false, int SPLIT = 1>
void run(kf::bench::ColdTimer& timer, unsigned long long* stamps_dev, int reps, int m = 1, int cluster_x = 1) {
  const size_t words = size_t(K / 8) * N, scales = size_t(K / 128) * N;
  std::mt19937 rng(N ^ K);
  std::vector<uint32_t> qw(words);
  for (auto& w : qw) w = rng();
  std::vector<uint16_t> sc(scales, 0x3c00 /* bf16 0.0078 */), x(size_t(m) * K);
  for (auto& v : x) v = 0x3f80 ^ (rng() & 0x007f);
  uint32_t* d_qw;
  uint16_t *d_sc, *d_x, *d_y;
  check(cudaMalloc(&d_qw, words * 4), "qweight");
  check(cudaMalloc(&d_sc, scales * 2), "scales");
  check(cudaMalloc(&d_x, x.size() * 2), "x");
  check(cudaMalloc(&d_y, size_t(m) * N * 2), "y");
  check(cudaMemcpy(d_qw, qw.data(), words * 4, cudaMemcpyHostToDevice), "up");
  check(cudaMemcpy(d_sc, sc.data(), scales * 2, cudaMemcpyHostToDevice), "up");
  check(cudaMemcpy(d_x, x.data(), x.size() * 2, cudaMemcpyHostToDevice), "up");
  kf_linear_args args{d_x, d_qw, d_sc, nullptr, d_y, nullptr, nullptr, m, N, K, 128};
  const int dyn = kf::w4a16::skinny::dynamic_shared_bytes(BN, WARPS, STAGES, BM, SPLIT);
  auto kernel = skinny_kernel<N, K, BN, WARPS, STAGES, BM, PAIRED, SPLIT>;
  if (dyn > 0) check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dyn), "smem");
  const dim3 grid(N / BN, SPLIT, (m + BM - 1) / BM);
  const unsigned blocks_of_grid = grid.x * grid.y * grid.z;
  auto launch = [&](cudaStream_t s) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(WARPS * 32);
    cfg.dynamicSmemBytes = dyn > 0 ? dyn : 0;
    cfg.stream = s;
    cudaLaunchAttribute cluster{};
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = cluster_x;  // > 1: an unsplit kernel launched as clusters anyway
    cluster.val.clusterDim.y = SPLIT;
    cluster.val.clusterDim.z = 1;
    cfg.attrs = &cluster;
    cfg.numAttrs = SPLIT > 1 || cluster_x > 1 ? 1 : 0;
    check(cudaLaunchKernelEx(&cfg, kernel, args), "launch");
  };

  const size_t bytes = words * 4 + scales * 2 + size_t(m) * (K + N) * 2;
  void* floor_buf;
  check(cudaMalloc(&floor_buf, bytes), "floor buffer");
  check(cudaMemset(floor_buf, 0x11, bytes), "floor fill");
  unsigned* sink;
  check(cudaMalloc(&sink, 4), "sink");
  const unsigned fblocks = timer.stream_read_blocks(bytes);  // as the read floor's launch
  kf_stream_read_args fa{floor_buf, bytes / 16 * 16, sink, fblocks, 0};
  auto floor_launch = [&](cudaStream_t s) { floor_kernel<<<fblocks, kf::kStreamReadThreads, 0, s>>>(fa); };

  const std::vector<double> us = timer.medians_us_alternating({launch, floor_launch}, reps);
  char what[96];
  // One more cold launch of each, its stamps kept (the last launch before the copy).
  for (int which = 0; which < 2; ++which) {
    check(cudaMemset(stamps_dev, 0, kStampBytes), "stamps clear");  // the other kernel's
    timer.median_us(which == 0 ? std::function<void(cudaStream_t)>(launch) : floor_launch, 3);
    const unsigned blocks = which == 0 ? blocks_of_grid : fblocks;
    if (which == 0)
      std::snprintf(what, sizeof what, "%dx%d M=%d skinny bm%d bn%d w%d sk%d s%d%s%s", N, K, m, BM, BN, WARPS, SPLIT,
                    STAGES, PAIRED ? " sw" : "", cluster_x > 1 ? (" cl" + std::to_string(cluster_x)).c_str() : "");
    else
      std::snprintf(what, sizeof what, "%dx%d M=%d read floor", N, K, m);
    print_timeline(what, us[which], stamps_dev, blocks, which == 1, grid.x, which == 0 ? SPLIT : 1);
  }
  // Warm: launched right after itself, weights and code in L2 (the stamps of the second
  // launch). What the tail costs without cold misses: where a phase takes as long warm as
  // cold, it is the kernel's own work.
  check(cudaMemset(stamps_dev, 0, kStampBytes), "stamps clear");
  launch(0);
  launch(0);
  std::snprintf(what, sizeof what, "%dx%d M=%d skinny, warm", N, K, m);
  print_timeline(what, 0.0, stamps_dev, blocks_of_grid, false);
  if constexpr (SPLIT == 1) {
    auto twice = skinny_twice_kernel<N, K, BN, WARPS, STAGES, BM, PAIRED>;
    if (dyn > 0) check(cudaFuncSetAttribute(twice, cudaFuncAttributeMaxDynamicSharedMemorySize, dyn), "smem");
    timer.median_us([&](cudaStream_t s) { twice<<<grid, WARPS * 32, dyn > 0 ? dyn : 0, s>>>(args); }, 3);
    std::snprintf(what, sizeof what, "%dx%d M=%d skinny, second pass in one launch", N, K, m);
    print_timeline(what, 0.0, stamps_dev, blocks_of_grid, false);
  }
  cudaFree(d_qw);
  cudaFree(d_sc);
  cudaFree(d_x);
  cudaFree(d_y);
  cudaFree(floor_buf);
  cudaFree(sink);
}

}  // namespace

// `decode_timeline paired`: only the wide layers' paired runs at M = 16 (for comparing
// builds of the template against one another). `decode_timeline split`: the narrow layers'
// served kernels beside their cluster split-K forms, and the 128-block llama layer of
// 2048x4096's bytes (bench/NOTES.md linear v52), at M = 1. `decode_timeline split-rows`:
// split and unsplit forms at M = 1, 4, 8.
int main(int argc, char** argv) {
  const bool paired_only = argc > 1 && std::string(argv[1]) == "paired";
  const bool split_only = argc > 1 && std::string(argv[1]) == "split";
  const bool split_rows = argc > 1 && std::string(argv[1]) == "split-rows";
  const cudaDeviceProp prop = kf::bench::device_or_skip();
  std::printf("device: %s (%d SMs); bf16, symmetric, group 128; cold, event median of 100\n", prop.name,
              prop.multiProcessorCount);
  kf::bench::ColdTimer timer;
  unsigned long long* stamps;
  check(cudaMalloc(&stamps, kStampBytes), "stamps");
  check(cudaMemcpyToSymbol(g_stamps, &stamps, sizeof stamps), "stamps symbol");
  constexpr int reps = 100;
  // M = 16 on the wide layers: the paired form that serves it (bench/NOTES.md linear v27).
  auto paired_m16 = [&] {
    run<12288, 2048, 96, 8, 4, 16, true>(timer, stamps, reps, 16);
    run<9216, 2048, 96, 8, 4, 16, true>(timer, stamps, reps, 16);
  };
  if (paired_only) {
    paired_m16();
    cudaFree(stamps);
    return 0;
  }
  if (split_rows) {
    // Split configs whose autotune medians grow with M where their unsplit forms' stay flat
    // (bench/NOTES.md linear v55): which phase takes the extra time.
    for (int m : {1, 4, 8}) {
      run<2048, 4096, 32, 16, 8>(timer, stamps, reps, m);
      run<2048, 4096, 32, 16, 4, 8, false, 2>(timer, stamps, reps, m);
      run<4096, 2048, 32, 16, 4>(timer, stamps, reps, m);  // 128 blocks of the same slices, no cluster
      run<4096, 2048, 32, 16, 4>(timer, stamps, reps, m, 2);  // the same, launched as clusters of 2
    }
    for (int m : {1, 8}) {
      run<9216, 2048, 96, 8, 4>(timer, stamps, reps, m);
      run<9216, 2048, 96, 8, 4, 8, false, 2>(timer, stamps, reps, m);
    }
    cudaFree(stamps);
    return 0;
  }
  if (split_only) {
    run<2048, 4096, 32, 16, 8>(timer, stamps, reps);
    run<2048, 4096, 32, 16, 3, 8, false, 2>(timer, stamps, reps);
    run<2048, 4096, 32, 16, 4, 8, false, 2>(timer, stamps, reps);
    run<4096, 2048, 32, 16, 4>(timer, stamps, reps);
    run<1024, 2048, 32, 16, 4>(timer, stamps, reps);
    run<1024, 2048, 32, 16, 2, 8, false, 2>(timer, stamps, reps);
    cudaFree(stamps);
    return 0;
  }
  run<12288, 2048, 96, 8, 4>(timer, stamps, reps);
  run<9216, 2048, 96, 8, 4>(timer, stamps, reps);
  run<2048, 4096, 32, 16, 8>(timer, stamps, reps);
  run<1024, 2048, 32, 16, 4>(timer, stamps, reps);
  run<2048, 512, 32, 8, 2>(timer, stamps, reps);
  paired_m16();
  // What M = 16 adds on 12288x2048: the paired form with fewer valid rows (same products,
  // fewer x bytes) and block_m 8 at M = 8 (the same x bytes a block as paired M = 8).
  run<12288, 2048, 96, 8, 4, 16, true>(timer, stamps, reps, 1);
  run<12288, 2048, 96, 8, 4, 16, true>(timer, stamps, reps, 8);
  run<12288, 2048, 96, 8, 4>(timer, stamps, reps, 8);
  cudaFree(stamps);
  return 0;
}
