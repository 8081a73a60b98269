// The hot path allocates nothing: with every heap allocation counted (operator new and
// malloc replaced, see alloc_counter.h), 1000 calls each of kf_select_linear and
// kf_select over tuned shapes, bucket edges, a never-tuned shape (after its one-time
// report), and the error paths kf_launch / kf_run_linear take without a GPU, make zero
// allocations. Exit 0 when none; prints the counts.
#include <cstdint>
#include <cstdio>
#include <string>

#include "alloc_counter.h"
#include "kforge/kforge.h"

namespace {

int g_failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "FAILED: %s (%s)\n", what, kf_last_error());
  }
}

void report(const char* what, uint64_t allocations) {
  std::printf("%-48s %llu allocations\n", what, static_cast<unsigned long long>(allocations));
  expect(allocations == 0, what);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PACK.sqlite\n", argv[0]);
    return 2;
  }
  // The counter must see allocations at all, or zero below would prove nothing.
  // The pointers escape through a volatile so an optimising build cannot elide them.
  static void* volatile escape = nullptr;
  const uint64_t control = kf_testing::allocations_in([] {
    auto* s = new std::string(100, 'x');
    escape = s;
    delete static_cast<std::string*>(escape);
    escape = std::malloc(64);
    std::free(escape);
  });
  expect(control >= 2, "the counter sees new and malloc");

  kf_db* db = nullptr;
  expect(kf_open_for_arch(argv[1], "sm_90a", "NVIDIA H100 80GB HBM3", &db) == KF_OK, "open");
  if (!db) return 1;
  const int64_t ms[] = {1, 4, 5, 30, 64, 65, 1000, 4096, 100000, 7};
  const kf_kernel* k = nullptr;
  // Warm-up outside the count: the one-time fallback report and the first device probe.
  kf_select_linear(db, 4096, 4096, 128, 1, 0, 1, &k);
  kf_select(db, "w4a16_linear", "n1024_k1024_g64_bf16_sym", 1, &k);
  kf_linear_args args{};
  args.x = reinterpret_cast<const void*>(uintptr_t{0x10000});
  args.qweight = reinterpret_cast<const void*>(uintptr_t{0x20000});
  args.scales = reinterpret_cast<const void*>(uintptr_t{0x30000});
  args.y = reinterpret_cast<void*>(uintptr_t{0x40000});
  args.m = 1;
  args.n = 2048;
  args.k = 4096;
  args.group = 128;
  kf_select_linear(db, 2048, 4096, 128, 1, 0, 1, &k);
  const kf_status launch_status = kf_launch(k, &args, nullptr);

  int bad = 0;
  report("kf_select_linear x1000 (tuned + fallback)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      const bool tuned = i % 4 != 3;
      bad += kf_select_linear(db, tuned ? 2048 : 4096, 4096, 128, 1, 0, ms[i % 10], &k) != KF_OK;
    }
  }));
  report("kf_select x1000 (tuned + fallback)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      const char* key = i % 4 != 3 ? "n2048_k4096_g128_bf16_sym" : "n1024_k1024_g64_bf16_sym";
      bad += kf_select(db, "w4a16_linear", key, ms[i % 10], &k) != KF_OK;
    }
  }));
  expect(bad == 0, "every select succeeded");
  report("error paths x1000 (m = 0, unsupported, bad key)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      kf_select_linear(db, 2048, 4096, 128, 1, 0, 0, &k);
      kf_select_linear(db, 100, 4096, 128, 1, 0, 1, &k);
      kf_select(db, "w4a16_linear", "n2048_bad", 1, &k);
    }
  }));
  kf_select_linear(db, 2048, 4096, 128, 1, 0, 1, &k);
  report("kf_launch + kf_run_linear x1000 (no device)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      kf_launch(k, &args, nullptr);
      kf_run_linear(db, &args, 1, 0, nullptr);
    }
  }));
  std::printf("kf_launch here: %s (%s)\n", kf_status_name(launch_status), kf_last_error());
  kf_close(db);
  std::printf("%s\n", g_failures ? "FAILED" : "OK");
  return g_failures ? 1 : 0;
}
