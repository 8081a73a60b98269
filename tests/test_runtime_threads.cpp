// One kf_db shared by 8 threads: concurrent kf_select / kf_select_linear calls give the
// answers a single thread gets, and a never-tuned shape hit by all threads at once is
// still reported exactly once.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "test_runtime_util.h"

namespace {

using namespace kf_rt_test;

struct Query {
  int64_t n, k, m;
  int group;
  const kf_kernel* expected;
};

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("concurrent selects from 8 threads agree with single-threaded ones; fallback reported once") {
  TempDir dir("rt-threads");
  const std::string path = dir.file("kforge.sqlite");
  TestPackBuilder b;
  const int64_t ns[] = {12288, 2048, 9216, 1024, 2048};
  const int64_t ks[] = {2048, 4096, 2048, 2048, 512};
  for (int s = 0; s < 5; ++s) {
    const std::string shape =
        "n" + std::to_string(ns[s]) + "_k" + std::to_string(ks[s]) + "_g128_bf16_sym";
    int64_t lo = 1;
    for (int bucket = 0; bucket < 6; ++bucket) {
      const int64_t hi = bucket == 5 ? 4096 : lo * 4;
      const std::string cfg = "bm" + std::to_string(1 << bucket) + "_bn64_bk32_w4_sk1_s1";
      b.add_winner(shape, b.add_kernel("decode", shape, cfg), lo, hi);
      lo = hi + 1;
    }
  }
  b.add_generic(true, false);
  b.write(path);
  DbPtr db = open_for_arch(path);

  std::vector<Query> queries;
  for (int s = 0; s < 5; ++s)
    for (int64_t m : {1, 2, 4, 5, 17, 20, 64, 65, 300, 1000, 4096, 9000}) {
      const kf_kernel* k = nullptr;
      REQUIRE(kf_select_linear(db.get(), ns[s], ks[s], 128, 1, 0, m, &k) == KF_OK);
      queries.push_back({ns[s], ks[s], m, 128, k});
    }

  CaptureStderr err(dir);
  std::atomic<int> mismatches{0}, failures{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      char key[64];
      for (int rep = 0; rep < 2000; ++rep) {
        const Query& q = queries[(rep * 7 + t) % queries.size()];
        const kf_kernel* a = nullptr;
        const kf_kernel* b2 = nullptr;
        std::snprintf(key, sizeof key, "n%lld_k%lld_g128_bf16_sym", (long long)q.n, (long long)q.k);
        if (kf_select_linear(db.get(), q.n, q.k, q.group, 1, 0, q.m, &a) != KF_OK ||
            kf_select(db.get(), "w4a16_linear", key, q.m, &b2) != KF_OK)
          ++failures;
        else if (a != q.expected || b2 != q.expected)
          ++mismatches;
        // Every thread also asks for shapes nobody tuned, all at once.
        const kf_kernel* f = nullptr;
        if (kf_select_linear(db.get(), 4096 + 8 * (rep % 4), 4096, 128, 1, 0, 1 + rep % 50, &f) != KF_OK ||
            !kf_kernel_is_fallback(f))
          ++failures;
      }
    });
  go = true;
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
  CHECK(failures == 0);
  const std::string log = err.text();
  CHECK(count_of(log, "no tuned kernel") == 4);
  for (int i = 0; i < 4; ++i) CHECK(count_of(log, "n" + std::to_string(4096 + 8 * i) + "_k4096_g128_bf16_sym") == 1);
}

}  // TEST_SUITE
