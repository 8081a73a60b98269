// Writes the pack the C ABI test and the allocation-free test read (ctest fixture):
// one shape tuned over three M ranges (one kernel split-K), and the generic kernels.
#include <cstdio>
#include <exception>
#include <filesystem>

#include "test_pack.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.sqlite\n", argv[0]);
    return 2;
  }
  try {
    std::filesystem::remove(argv[1]);
    const char* shape = "n2048_k4096_g128_bf16_sym";
    kf_testing::TestPackBuilder b;
    b.add_winner(shape, b.add_kernel("decode", shape, "bm1_bn64_bk32_w4_sk1_s1"), 1, 4);
    b.add_winner(shape, b.add_kernel("decode", shape, "bm8_bn128_bk64_w4_sk2_s1"), 5, 64);
    b.add_winner(shape, b.add_kernel("prefill", shape, "bm64_bn128_bk64_w4_sk1_s2"), 65, 4096);
    b.add_generic(true, false);
    b.add_generic(false, false);
    b.write(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_test_pack: %s\n", e.what());
    return 1;
  }
  return 0;
}
