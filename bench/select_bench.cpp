// CPU cost of kernel selection, the part of kforge that runs on every layer of every
// forward: kf_select_linear and kf_select on a pack with the qwen3-35b linear shapes
// (bf16, symmetric, group 128) tuned over 13 M buckets, plus a never-tuned shape (the
// generic fallback). Prints the median nanoseconds per call over many repetitions and
// the heap allocations per call (counted, see runtime/testing/alloc_counter.h).
// Not a ctest: timings are not pass/fail.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "alloc_counter.h"
#include "kforge/kforge.h"
#include "test_pack.h"

namespace {

struct Shape {
  int64_t n, k;
};
const Shape kShapes[] = {{12288, 2048}, {2048, 4096}, {9216, 2048}, {1024, 2048}, {2048, 512}};
const int64_t kTunedMs[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};  // 13 buckets

std::string shape_key(const Shape& s) {
  return "n" + std::to_string(s.n) + "_k" + std::to_string(s.k) + "_g128_bf16_sym";
}

void write_pack(const std::string& path) {
  kf_testing::TestPackBuilder b;
  for (const Shape& s : kShapes) {
    int64_t lo = 1;
    for (int64_t m : kTunedMs) {
      // Buckets end at their tuned M; the last is open-ended anyway.
      const bool decode = m <= 16;
      const std::string config = "bm" + std::to_string(decode ? std::min<int64_t>(m, 16) : 64) + "_bn128_bk64_w4_sk1_s" +
                                 std::to_string(decode ? 1 : 2);
      b.add_winner(shape_key(s), b.add_kernel(decode ? "decode" : "prefill", shape_key(s), config), lo, m);
      lo = m + 1;
    }
  }
  b.add_generic(true, false);
  b.write(path);
}

struct Result {
  double median_ns;
  double allocations_per_call;
};

// Median over `reps` batches of `batch` calls of the per-call time of f(i).
template <class F>
Result measure(int reps, int batch, F&& f) {
  std::vector<double> per_call;
  int i = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int j = 0; j < batch; ++j) f(i++);
    const auto t1 = std::chrono::steady_clock::now();
    per_call.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / batch);
  }
  std::nth_element(per_call.begin(), per_call.begin() + reps / 2, per_call.end());
  const uint64_t allocations = kf_testing::allocations_in([&] {
    for (int j = 0; j < batch; ++j) f(i++);
  });
  return {per_call[reps / 2], static_cast<double>(allocations) / batch};
}

}  // namespace

int main() {
  kf_testing::TempDir dir("select-bench");
  const std::string path = dir.file("kforge.sqlite");
  write_pack(path);
  kf_db* db = nullptr;
  if (kf_open_for_arch(path.c_str(), "sm_90a", kf_testing::kTestDevice, &db) != KF_OK) {
    std::fprintf(stderr, "kf_open_for_arch: %s\n", kf_last_error());
    return 1;
  }

  // Query mix: every shape, M spread over the buckets (and above the last one).
  std::mt19937 rng(1);
  std::vector<int64_t> ms(4096);
  for (int64_t& m : ms) m = 1 + static_cast<int64_t>(std::exp2(std::uniform_real_distribution<double>(0, 13)(rng)));
  std::vector<std::string> keys;
  for (const Shape& s : kShapes) keys.push_back(shape_key(s));

  const kf_kernel* k = nullptr;
  int failures = 0;
  kf_select_linear(db, 4096, 4096, 128, 1, 0, 1, &k);  // the fallback's one-time stderr note, outside timing
  const int reps = 301, batch = 10000;
  const Result linear = measure(reps, batch, [&](int i) {
    const Shape& s = kShapes[i % 5];
    failures += kf_select_linear(db, s.n, s.k, 128, 1, 0, ms[i & 4095], &k) != KF_OK;
  });
  const Result by_key = measure(reps, batch, [&](int i) {
    failures += kf_select(db, "w4a16_linear", keys[i % 5].c_str(), ms[i & 4095], &k) != KF_OK;
  });
  const Result fallback = measure(reps, batch, [&](int i) {
    failures += kf_select_linear(db, 4096, 4096, 128, 1, 0, ms[i & 4095], &k) != KF_OK;
  });
  kf_close(db);

  std::printf("kforge %s selection, %zu shapes x %zu M buckets, median of %d batches of %d calls\n", kf_version(),
              std::size(kShapes), std::size(kTunedMs), reps, batch);
  std::printf("%-36s %12s %18s\n", "call", "ns/call", "allocations/call");
  std::printf("%-36s %12.1f %18.3f\n", "kf_select_linear (tuned)", linear.median_ns, linear.allocations_per_call);
  std::printf("%-36s %12.1f %18.3f\n", "kf_select (tuned, by key)", by_key.median_ns, by_key.allocations_per_call);
  std::printf("%-36s %12.1f %18.3f\n", "kf_select_linear (untuned: generic)", fallback.median_ns,
              fallback.allocations_per_call);
  if (failures) std::fprintf(stderr, "%d selections failed\n", failures);
  return failures ? 1 : 0;
}
