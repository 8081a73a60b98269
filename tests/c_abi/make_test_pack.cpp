// Writes the pack the C ABI test and the allocation-free test read (ctest fixture):
// one shape tuned over three M ranges (one kernel split-K), the generic kernels, one
// MoE layer's GEMMs and helpers, one sparse MLA shape (a split-KV winner, an unsplit
// one, the combine kernel), and one MXFP4 MoE layer's GEMMs.
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
    // One MoE layer (E 8, top_k 2, H 256, I 128): gemm1 over two T ranges (the second
    // split-K, block_m 32), gemm2 over one, and the helpers.
    const char* gate_up = "e8_topk2_n256_k256_g128_bf16_sym";
    const char* down = "e8_topk2_n256_k128_g128_bf16_sym";
    b.add_moe_winner(1, gate_up, b.add_moe_kernel(1, "decode", gate_up, "bm16_bn64_bk32_w4_sk1_s1"), 1, 8);
    b.add_moe_winner(1, gate_up, b.add_moe_kernel(1, "prefill", gate_up, "bm32_bn64_bk32_w4_sk2_s1"), 9, 4096);
    b.add_moe_winner(2, down, b.add_moe_kernel(2, "decode", down, "bm16_bn64_bk32_w4_sk1_s1"), 1, 4096);
    b.add_moe_helpers();
    // Sparse MLA decode, H 128, topk 2048, no extras, bf16: split 8 ways up to Q = 4.
    const char* mla = "h128_topk2048_x0_bf16";
    b.add_mla_winner(mla, b.add_mla_kernel(mla, "bh16_bk16_w4_sp8_s2"), 1, 4);
    b.add_mla_winner(mla, b.add_mla_kernel(mla, "bh64_bk32_w16_sp1_s2"), 5, 4096);
    b.add_mla_combine(true);
    // MXFP4 MoE (E 8, top_k 2, H 256, I 128, SwiGLU fused): gemm1 block_m 16 up to T = 8
    // and 64 above (then the layer aligns twice), gemm2 block_m 16 throughout.
    const char* mx_gate_up = "e8_topk2_n256_k256_swiglu";
    const char* mx_down = "e8_topk2_n256_k128";
    b.add_mxfp4_winner(1, mx_gate_up, b.add_mxfp4_kernel(1, mx_gate_up, "bm16_bn64_bk64_w4_s2_ep1"), 1, 8);
    b.add_mxfp4_winner(1, mx_gate_up, b.add_mxfp4_kernel(1, mx_gate_up, "bm64_bn128_bk64_w8_s3_ep1"), 9, 4096);
    b.add_mxfp4_winner(2, mx_down, b.add_mxfp4_kernel(2, mx_down, "bm16_bn64_bk64_w4_s2_ep1"), 1, 4096);
    b.write(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_test_pack: %s\n", e.what());
    return 1;
  }
  return 0;
}
