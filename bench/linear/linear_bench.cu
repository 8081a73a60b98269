// bench/linear: every qwen3-35b linear shape at M in {1, 4, 16, 64, 256, 1024, 4096},
// side by side in one process, all timed cold (see cold_timer.h):
//   kforge   the tuned kernel, selected and launched through the runtime (libkforge);
//   floor    a plain streaming read over exactly the layer's bytes (int4 weights +
//            scales + activations + output): the memory limit, launch latency included;
//   cuBLAS   bf16 dense GEMM of the same shape (fp32 accumulation);
//   empty    an empty kernel, the launch cost alone.
// Prints time, effective TB/s and TFLOP/s, kforge/floor (time ratio, >= 1) and
// cuBLAS/kforge (speed ratio, > 1 = kforge faster).
// Then a decode step: the five layers back to back in one timed region at M = 1, 4, 16,
// as an engine launches them, with the runtime's overlapped launches and without
// (KFORGE_OVERLAP_LAUNCHES=0), against one streaming read of all their bytes.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "cold_timer.h"
#include "kforge/kforge.h"

namespace {

struct Shape {
  const char* layer;
  int n, k;
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

void* device_random(size_t bytes, std::mt19937_64& rng, bool bf16_values) {
  std::vector<uint16_t> host((bytes + 1) / 2);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffff);
  for (auto& h : host) {
    if (bf16_values) {
      const float f = u(rng) * 0.05f;
      uint32_t b;
      std::memcpy(&b, &f, 4);
      h = static_cast<uint16_t>(b >> 16);
    } else {
      h = static_cast<uint16_t>(bits(rng));
    }
  }
  void* d = nullptr;
  check(cudaMalloc(&d, host.size() * 2), "cudaMalloc");
  check(cudaMemcpy(d, host.data(), host.size() * 2, cudaMemcpyHostToDevice), "upload");
  return d;
}

void* device_zeros(size_t bytes) {
  void* d = nullptr;
  check(cudaMalloc(&d, bytes), "cudaMalloc");
  check(cudaMemset(d, 0, bytes), "zero");
  return d;
}

// The decode step section (see the top): every layer's own weights, x and y; the kernels
// each DB selects for M (skinny ones split on chip: no workspace).
void decode_step(kf_db* db, kf_db* serial_db, const Shape* shapes, int count, int group, kf::bench::ColdTimer& timer,
                 int reps, std::mt19937_64& rng) {
  struct Layer {
    void *qweight, *scales, *x, *y;
    size_t bytes;
  };
  std::vector<Layer> layers;
  size_t most_bytes = 0;  // the floor's buffer: every layer at M = 16
  for (int i = 0; i < count; ++i) {
    const Shape& sh = shapes[i];
    const size_t q = static_cast<size_t>(sh.n) * sh.k / 2, sc = static_cast<size_t>(sh.k / group) * sh.n * 2;
    layers.push_back({device_random(q, rng, false), device_random(sc, rng, true), device_random(16 * sh.k * 2, rng, true),
                      device_zeros(16 * sh.n * 2), q + sc});
    most_bytes += q + sc + static_cast<size_t>(16) * (sh.k + sh.n) * 2;  // and x, y at M = 16
  }
  void* workspace = device_zeros(16);
  void* floor_buf = device_zeros(most_bytes + 16);
  std::printf("\ndecode step: the %d layers above back to back, one timed region (us)\n", count);
  std::printf("%6s | %8s %8s %8s | %7s %7s\n", "M", "overlap", "serial", "floor", "x floor", "saved");
  for (int m : {1, 4, 16}) {
    std::vector<kf_linear_args> args;
    std::vector<const kf_kernel*> kernels[2];
    size_t bytes = 0;
    for (int i = 0; i < count; ++i) {
      const Shape& sh = shapes[i];
      args.push_back({layers[i].x, layers[i].qweight, layers[i].scales, nullptr, layers[i].y,
                      static_cast<float*>(workspace), static_cast<int*>(workspace), m, sh.n, sh.k, group});
      for (int d = 0; d < 2; ++d) {
        const kf_kernel* k = nullptr;
        if (kf_select_linear(d ? serial_db : db, sh.n, sh.k, group, 1, 0, m, &k) != KF_OK) {
          std::fprintf(stderr, "kf_select_linear: %s\n", kf_last_error());
          std::exit(1);
        }
        int64_t floats = 0, counters = 0;
        kf_kernel_workspace(k, m, &floats, &counters);
        if (floats > 0 || counters > 0) {
          std::printf("%6d | skipped: %s splits K through memory\n", m, kf_kernel_name(k));
          return;
        }
        kernels[d].push_back(k);
      }
      bytes += layers[i].bytes + static_cast<size_t>(m) * (sh.k + sh.n) * 2;
    }
    double t[2];
    for (int d = 0; d < 2; ++d)
      t[d] = timer.median_us(
          [&](cudaStream_t s) {
            for (int i = 0; i < count; ++i)
              if (kf_launch(kernels[d][i], &args[i], s) != KF_OK) {
                std::fprintf(stderr, "kf_launch: %s\n", kf_last_error());
                std::exit(1);
              }
          },
          reps);
    const double t_floor = timer.median_us([&](cudaStream_t s) { timer.stream_read(floor_buf, bytes, s); }, reps);
    std::printf("%6d | %8.2f %8.2f %8.2f | %7.2f %7.2f\n", m, t[0], t[1], t_floor, t[0] / t_floor, t[1] - t[0]);
  }
  for (Layer& l : layers)
    for (void* p : {l.qweight, l.scales, l.x, l.y}) cudaFree(p);
  cudaFree(workspace);
  cudaFree(floor_buf);
}

}  // namespace

int main(int argc, char** argv) {
  const char* db_path = argc > 1 ? argv[1] : "tuned_db/kforge.sqlite";
  const char* csv_path = argc > 2 ? argv[2] : nullptr;
  const int reps = 100;
  const cudaDeviceProp prop = kf::bench::device_or_skip();
  kf_db* db = nullptr;
  if (kf_open(db_path, &db) != KF_OK) {
    std::fprintf(stderr, "kf_open(%s): %s\n", db_path, kf_last_error());
    return 1;
  }
  kf::bench::ColdTimer timer;
  cublasHandle_t blas;
  cublasCreate(&blas);
  cublasSetStream(blas, timer.stream());
  std::mt19937_64 rng(20261125);

  const Shape shapes[] = {{"gdn.in_proj_qkvz", 12288, 2048}, {"attn.qkv_proj", 9216, 2048},
                          {"gdn.out_proj/attn.o_proj", 2048, 4096}, {"shared_expert.gate_up", 1024, 2048},
                          {"shared_expert.down", 2048, 512}};
  const int ms[] = {1, 4, 16, 64, 256, 1024, 4096};
  const int group = 128;

  const double empty_us = timer.median_us([&](cudaStream_t s) { timer.empty(s); }, reps);
  std::printf("device: %s (%d SMs, L2 %zu MB)   db: %s   reps: %d, cold L2 (read flush %zu MB)\n", prop.name,
              timer.sms(), timer.l2_bytes() >> 20, db_path, reps, timer.l2_bytes() * 4 >> 20);
  if (timer.idle_us() > 0) std::printf("host idle after each rep: %d us (KF_BENCH_IDLE_US)\n", timer.idle_us());
  std::printf("empty kernel: %.2f us\n\n", empty_us);
  std::printf("%-7s %5s %6s | %8s %8s %8s | %6s %7s | %7s %7s | %s\n", "N", "K", "M", "kforge", "floor", "cuBLAS",
              "TB/s", "TFLOP/s", "x floor", "vs cuBLAS", "kernel");
  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv) std::fprintf(csv, "device,n,k,m,kforge_us,floor_us,cublas_us,empty_us,kforge_tbps,kforge_tflops,kernel,fallback\n");

  for (const Shape& sh : shapes) {
    const size_t qweight_bytes = static_cast<size_t>(sh.n) * sh.k / 2;
    const size_t scale_bytes = static_cast<size_t>(sh.k / group) * sh.n * 2;
    void* qweight = device_random(qweight_bytes, rng, false);
    void* scales = device_random(scale_bytes, rng, true);
    void* dense_w = device_random(static_cast<size_t>(sh.n) * sh.k * 2, rng, true);
    for (int m : ms) {
      void* x = device_random(static_cast<size_t>(m) * sh.k * 2, rng, true);
      void* y = nullptr;
      check(cudaMalloc(&y, static_cast<size_t>(m) * sh.n * 2), "y");
      const size_t layer_bytes = qweight_bytes + scale_bytes + static_cast<size_t>(m) * (sh.k + sh.n) * 2;
      void* floor_buf = nullptr;
      check(cudaMalloc(&floor_buf, layer_bytes + 16), "floor buffer");
      check(cudaMemset(floor_buf, 0x3c, layer_bytes + 16), "floor fill");

      const kf_kernel* kern = nullptr;
      if (kf_select_linear(db, sh.n, sh.k, group, 1, 0, m, &kern) != KF_OK) {
        std::fprintf(stderr, "kf_select_linear(%d x %d, M=%d): %s\n", sh.n, sh.k, m, kf_last_error());
        return 1;
      }
      int64_t ws_floats = 0, counters = 0;
      kf_kernel_workspace(kern, m, &ws_floats, &counters);
      float* ws = nullptr;
      int* cnt = nullptr;
      check(cudaMalloc(&ws, (ws_floats + 1) * 4), "workspace");
      check(cudaMalloc(&cnt, (counters + 1) * 4), "counters");
      check(cudaMemset(cnt, 0, (counters + 1) * 4), "counters zero");
      kf_linear_args args{x, qweight, scales, nullptr, y, ws, cnt, m, sh.n, sh.k, group};
      const double t_kf = timer.median_us(
          [&](cudaStream_t s) {
            if (kf_launch(kern, &args, s) != KF_OK) {
              std::fprintf(stderr, "kf_launch: %s\n", kf_last_error());
              std::exit(1);
            }
          },
          reps);
      const double t_floor = timer.median_us([&](cudaStream_t s) { timer.stream_read(floor_buf, layer_bytes, s); }, reps);
      const float alpha = 1.f, beta = 0.f;
      const double t_blas = timer.median_us(
          [&](cudaStream_t) {
            // Row-major y[M,N] = x[M,K] W[N,K]^T is column-major y^T = W x^T.
            cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, sh.n, m, sh.k, &alpha, dense_w, CUDA_R_16BF, sh.k, x,
                         CUDA_R_16BF, sh.k, &beta, y, CUDA_R_16BF, sh.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
          },
          reps);
      const double flops = 2.0 * m * sh.n * sh.k;
      std::printf("%-7d %5d %6d | %8.2f %8.2f %8.2f | %6.2f %7.1f | %7.2f %9.2f | %s%s\n", sh.n, sh.k, m, t_kf, t_floor,
                  t_blas, layer_bytes / t_kf * 1e-6, flops / t_kf * 1e-6, t_kf / t_floor, t_blas / t_kf,
                  kf_kernel_name(kern), kf_kernel_is_fallback(kern) ? " (generic fallback)" : "");
      if (csv)
        std::fprintf(csv, "%s,%d,%d,%d,%.3f,%.3f,%.3f,%.3f,%.4f,%.2f,%s,%d\n", prop.name, sh.n, sh.k, m, t_kf, t_floor,
                     t_blas, empty_us, layer_bytes / t_kf * 1e-6, flops / t_kf * 1e-6, kf_kernel_name(kern),
                     kf_kernel_is_fallback(kern));
      cudaFree(ws);
      cudaFree(cnt);
      cudaFree(floor_buf);
      cudaFree(x);
      cudaFree(y);
    }
    cudaFree(qweight);
    cudaFree(scales);
    cudaFree(dense_w);
  }
  if (csv) std::fclose(csv);

  // The same DB with overlapped launches off, for the decode step.
  kf_db* const serial_db = kf::bench::open_without_overlap(db_path);
  decode_step(db, serial_db, shapes, static_cast<int>(sizeof shapes / sizeof shapes[0]), group, timer, reps, rng);
  kf_close(serial_db);
  cublasDestroy(blas);
  kf_close(db);
  return 0;
}
