/* The C ABI from plain C (compiled as C89, linked against libkforge.so): open the pack
 * given on the command line for sm_90a, select, print kernel names, and check the
 * error paths. Exit 0 when every check holds. */
#include <stdio.h>
#include <string.h>

#include "kforge/kforge.h"

static int g_failures = 0;

static void check(int ok, const char* what) {
  if (!ok) {
    ++g_failures;
    fprintf(stderr, "FAILED: %s (last error: %s)\n", what, kf_last_error());
  }
}

int main(int argc, char** argv) {
  kf_db* db = NULL;
  const kf_kernel* kernel = NULL;
  const kf_kernel* same = NULL;
  kf_linear_args args;
  kf_moe_shape moe;
  kf_mla_shape mla;
  kf_mla_decode_args attn;
  kf_mxfp4_moe_shape mx;
  kf_mxfp4_moe_layer_args mx_layer;
  uint8_t scales_in[2 * 3 * 4], scales_out[2 * 3 * 4], scales_back[2 * 3 * 4];
  int i;
  int32_t indices[8];
  int64_t bad_at = 0;
  int block_m = 0;
  size_t scratch = 0;
  int64_t floats = -1, counters = -1;
  long m;

  if (argc != 2) {
    fprintf(stderr, "usage: %s PACK.sqlite\n", argv[0]);
    return 2;
  }
  printf("kforge %s\n", kf_version());
  check(kf_open_for_arch(argv[1], "sm_90a", "NVIDIA H100 80GB HBM3", &db) == KF_OK, "kf_open_for_arch");
  if (!db) return 1;
  check(strcmp(kf_db_arch(db), "sm_90a") == 0, "kf_db_arch");

  for (m = 1; m <= 4096; m *= 4) {
    check(kf_select_linear(db, 2048, 4096, 128, 1, 0, m, &kernel) == KF_OK, "kf_select_linear");
    check(kf_select(db, "w4a16_linear", "n2048_k4096_g128_bf16_sym", m, &same) == KF_OK, "kf_select");
    check(kernel == same, "kf_select and kf_select_linear agree");
    check(!kf_kernel_is_fallback(kernel), "tuned shape is not a fallback");
    printf("M=%-5ld %s\n", m, kf_kernel_name(kernel));
  }
  check(kf_select_linear(db, 2048, 4096, 128, 1, 0, 5, &kernel) == KF_OK, "select split-K");
  check(strstr(kf_kernel_name(kernel), "_sk2_") != NULL, "M=5 picks the split-K kernel");
  check(kf_kernel_workspace(kernel, 5, &floats, &counters) == KF_OK, "kf_kernel_workspace");
  check(floats == 2 * 5 * 2048 && counters == 16, "workspace sizes");
  check(kf_db_max_workspace(db, 100000, &floats, &counters) == KF_OK, "kf_db_max_workspace");
  check(floats == 2 * 64 * 2048 && counters == 16 * 8, "max workspace");

  /* Never tuned: the generic kernel, flagged (stderr says so once). */
  check(kf_select_linear(db, 4096, 4096, 128, 0, 0, 3, &kernel) == KF_OK, "fallback select");
  check(kf_kernel_is_fallback(kernel) == 1, "fallback flag");
  printf("untuned fp16 4096x4096: %s (fallback)\n", kf_kernel_name(kernel));

  /* Error paths. */
  check(kf_select_linear(db, 2048, 4096, 128, 1, 0, 0, &kernel) == KF_ERR_INVALID_ARGUMENT, "m = 0");
  check(strstr(kf_last_error(), "m = 0") != NULL, "m = 0 message");
  check(kf_select_linear(db, 2048, 4096, 128, 1, 1, 1, &kernel) == KF_ERR_UNSUPPORTED_SHAPE, "no asym generic");
  check(strstr(kf_last_error(), "n2048_k4096_g128_bf16_asym") != NULL, "unsupported message names the shape");
  check(kf_select(db, "no_such_op", "x", 1, &kernel) == KF_ERR_NOT_FOUND, "unknown op");

  /* A MoE layer: gemm1 by T range, gemm2, block_m, scratch; untuned and bad shapes. */
  memset(&moe, 0, sizeof moe);
  moe.experts = 8;
  moe.top_k = 2;
  moe.hidden = 256;
  moe.intermediate = 128;
  moe.group = 128;
  moe.bf16 = 1;
  check(kf_select_moe(db, 1, &moe, 8, &kernel) == KF_OK, "kf_select_moe gemm1 T=8");
  check(strstr(kf_kernel_name(kernel), "w4a16_moe_gemm1_decode_e8_topk2_n256_k256_g128_bf16_sym_bm16") != NULL,
        "gemm1 T=8 name");
  check(kf_kernel_block_m(kernel, &block_m) == KF_OK && block_m == 16, "gemm1 T=8 block_m");
  check(kf_kernel_fuses_silu(kernel) == 0 && kf_kernel_fuses_silu(NULL) == 0, "gemm1 T=8 does not fuse SiLU");
  check(kf_kernel_reduces_topk(kernel) == 0 && kf_kernel_reduces_topk(NULL) == 0, "gemm1 T=8 does not reduce over top_k");
  check(kf_select_moe(db, 1, &moe, 9, &kernel) == KF_OK, "kf_select_moe gemm1 T=9");
  check(strstr(kf_kernel_name(kernel), "_prefill_") != NULL, "gemm1 T=9 is the prefill kernel");
  check(kf_select(db, "w4a16_moe_gemm1", "e8_topk2_n256_k256_g128_bf16_sym", 9, &same) == KF_OK && same == kernel,
        "kf_select agrees with kf_select_moe");
  check(kf_select_moe(db, 2, &moe, 100, &kernel) == KF_OK, "kf_select_moe gemm2");
  printf("MoE gemm2 T=100: %s\n", kf_kernel_name(kernel));
  check(kf_moe_scratch_bytes(db, &moe, 256, &scratch) == KF_OK && scratch > 0 && scratch % 256 == 0,
        "kf_moe_scratch_bytes");
  moe.experts = 16;
  check(kf_select_moe(db, 1, &moe, 1, &kernel) == KF_ERR_UNSUPPORTED_SHAPE, "untuned MoE shape");
  check(strstr(kf_last_error(), "e16_topk2_n256_k256_g128_bf16_sym") != NULL, "untuned MoE message names the key");
  moe.top_k = 17;
  check(kf_select_moe(db, 1, &moe, 1, &kernel) == KF_ERR_INVALID_ARGUMENT, "top_k > E");
  check(strstr(kf_last_error(), "top_k = 17") != NULL, "top_k message");

  /* Sparse MLA decode: by Q range, the split winner's scratch, an untuned extras bucket,
   * an untuned H, and the host-side index check. */
  memset(&mla, 0, sizeof mla);
  mla.heads = 128;
  mla.topk = 2048;
  mla.bf16 = 1;
  check(kf_select_mla(db, &mla, 4, &kernel) == KF_OK, "kf_select_mla Q=4");
  check(strstr(kf_kernel_name(kernel), "sparse_mla_decode_h128_topk2048_x0_bf16_bh16_bk16_w4_sp8_s2") != NULL,
        "Q=4 is the split winner");
  check(kf_select(db, "sparse_mla_decode", "h128_topk2048_x0_bf16", 4, &same) == KF_OK && same == kernel,
        "kf_select agrees with kf_select_mla");
  check(kf_select_mla(db, &mla, 5, &kernel) == KF_OK && strstr(kf_kernel_name(kernel), "_sp1_") != NULL,
        "Q=5 is the unsplit winner");
  check(kf_mla_scratch_bytes(db, &mla, 100, &scratch) == KF_OK && scratch == (size_t)8 * 4 * 128 * 513 * 4,
        "kf_mla_scratch_bytes");
  mla.extras = 128;
  check(kf_select_mla(db, &mla, 5, &same) == KF_OK && same != kernel && kf_kernel_is_fallback(same) == 1 &&
            strcmp(kf_kernel_name(same), kf_kernel_name(kernel)) == 0,
        "untuned extras bucket: the x0 kernel, flagged");
  mla.heads = 64;
  check(kf_select_mla(db, &mla, 1, &kernel) == KF_ERR_UNSUPPORTED_SHAPE, "untuned H");
  check(strstr(kf_last_error(), "H = 64") != NULL && strstr(kf_last_error(), "H = 128") != NULL,
        "untuned H message names H and the tuned H");
  mla.heads = 128;
  mla.extras = 0;
  memset(&attn, 0, sizeof attn);
  attn.q = (const void*)0x10000;
  attn.kv = (const void*)0x20000;
  attn.indices = (const int32_t*)0x30000;
  attn.o = (void*)0x40000;
  attn.queries = 8;
  attn.kv_rows = 4096;
  attn.heads = 128;
  attn.topk = 2048;
  attn.softmax_scale = 0.0417f;
  {
    const kf_status status = kf_run_mla(db, &mla, &attn, NULL, 0, NULL);
    check(status == KF_ERR_NO_DEVICE || status == KF_OK, "kf_run_mla without a device");
    attn.queries = 0;
    check(kf_run_mla(db, &mla, &attn, NULL, 0, NULL) == KF_ERR_INVALID_ARGUMENT, "kf_run_mla Q = 0");
    check(strstr(kf_last_error(), "args->queries = 0") != NULL, "Q = 0 message");
  }
  memset(indices, 0, sizeof indices);
  indices[1] = -1;
  indices[6] = 4096;
  check(kf_check_mla_indices(indices, 2, 3, 4096, &bad_at) == KF_OK && bad_at == -1, "indices in range");
  check(kf_check_mla_indices(indices, 2, 4, 4096, &bad_at) == KF_ERR_INVALID_ARGUMENT && bad_at == 6,
        "index = kv_rows is out of range");

  /* An MXFP4 MoE layer: gemm1 (SwiGLU fused) by T range, gemm2, block_m, scratch, a
   * layer call without a device, swiglu = 0, and the scale repack a loader makes. */
  memset(&mx, 0, sizeof mx);
  mx.experts = 8;
  mx.top_k = 2;
  mx.hidden = 256;
  mx.intermediate = 128;
  mx.swiglu = 1;
  check(kf_select_mxfp4_moe(db, 1, &mx, 8, &kernel) == KF_OK, "kf_select_mxfp4_moe gemm1 T=8");
  check(strcmp(kf_kernel_name(kernel), "mxfp4_moe_gemm1_e8_topk2_n256_k256_swiglu_bm16_bn64_bk64_w4_s2_ep1") == 0,
        "gemm1 T=8 name");
  check(kf_kernel_block_m(kernel, &block_m) == KF_OK && block_m == 16, "gemm1 T=8 block_m");
  check(kf_select_mxfp4_moe(db, 1, &mx, 9, &kernel) == KF_OK, "kf_select_mxfp4_moe gemm1 T=9");
  check(kf_kernel_block_m(kernel, &block_m) == KF_OK && block_m == 64, "gemm1 T=9 block_m");
  check(kf_select(db, "mxfp4_moe_gemm1", "e8_topk2_n256_k256_swiglu", 9, &same) == KF_OK && same == kernel,
        "kf_select agrees with kf_select_mxfp4_moe");
  check(kf_select_mxfp4_moe(db, 2, &mx, 100, &kernel) == KF_OK, "kf_select_mxfp4_moe gemm2");
  printf("MXFP4 MoE gemm2 T=100: %s\n", kf_kernel_name(kernel));
  check(kf_mxfp4_moe_scratch_bytes(db, &mx, 256, &scratch) == KF_OK && scratch > 0 && scratch % 256 == 0,
        "kf_mxfp4_moe_scratch_bytes");
  memset(&mx_layer, 0, sizeof mx_layer);
  mx_layer.x = (const void*)0x100000;
  mx_layer.topk_ids = (const int32_t*)0x200000;
  mx_layer.topk_weights = (const float*)0x300000;
  mx_layer.w1_weight = (const uint8_t*)0x400000;
  mx_layer.w1_scales = (const uint8_t*)0x500000;
  mx_layer.w2_weight = (const uint8_t*)0x600000;
  mx_layer.w2_scales = (const uint8_t*)0x700000;
  mx_layer.y = (void*)0x800000;
  mx_layer.scratch = (void*)0x10000000;
  mx_layer.scratch_bytes = scratch;
  mx_layer.t = 100;
  mx_layer.max_t = 256;
  {
    const kf_status status = kf_run_mxfp4_moe(db, &mx, &mx_layer, NULL);
    check(status == KF_ERR_NO_DEVICE || status == KF_OK, "kf_run_mxfp4_moe without a device");
    mx_layer.t = 0;
    check(kf_run_mxfp4_moe(db, &mx, &mx_layer, NULL) == KF_ERR_INVALID_ARGUMENT, "kf_run_mxfp4_moe t = 0");
    check(strstr(kf_last_error(), "args->t = 0") != NULL, "t = 0 message");
  }
  mx.swiglu = 0;
  check(kf_run_mxfp4_moe(db, &mx, &mx_layer, NULL) == KF_ERR_UNSUPPORTED_SHAPE, "swiglu = 0 layer");
  mx.swiglu = 1;
  mx.hidden = 250;
  check(kf_select_mxfp4_moe(db, 1, &mx, 1, &kernel) == KF_ERR_INVALID_ARGUMENT, "hidden not a multiple of 32");
  check(strstr(kf_last_error(), "hidden = 250") != NULL, "hidden message");
  for (i = 0; i < 2 * 3 * 4; ++i) scales_in[i] = (uint8_t)(100 + i);
  /* E 2, N 3, K 128 (4 blocks): [2, 3, 4] -> [2, 4, 3], and back as [2, 4, 3 x 32]. */
  check(kf_repack_mxfp4_scales(2, 3, 128, scales_in, scales_out) == KF_OK, "kf_repack_mxfp4_scales");
  check(scales_out[1] == scales_in[4] && scales_out[3] == scales_in[1] && scales_out[12 + 5] == scales_in[12 + 9],
        "repacked order");
  check(kf_repack_mxfp4_scales(2, 4, 96, scales_out, scales_back) == KF_OK &&
            memcmp(scales_back, scales_in, sizeof scales_in) == 0,
        "repack round trip");
  check(kf_repack_mxfp4_scales(2, 3, 100, scales_in, scales_out) == KF_ERR_INVALID_ARGUMENT, "k = 100");
  check(strstr(kf_last_error(), "k = 100") != NULL, "k = 100 message");

  memset(&args, 0, sizeof args);
  args.x = (const void*)0x10000;
  args.qweight = (const void*)0x20000;
  args.scales = (const void*)0x30000;
  args.y = (void*)0x40000;
  args.m = 1;
  args.n = 2048;
  args.k = 4096;
  args.group = 128;
  {
    const kf_status status = kf_run_linear(db, &args, 1, 0, NULL);
    check(status == KF_ERR_NO_DEVICE || status == KF_OK, "kf_run_linear without a device");
    printf("kf_run_linear: %s: %s\n", kf_status_name(status), kf_last_error());
  }
  kf_close(db);

  db = NULL;
  check(kf_open_for_arch("/nonexistent/kforge.sqlite", "sm_90a", NULL, &db) == KF_ERR_IO, "missing file");
  check(strstr(kf_last_error(), "/nonexistent/kforge.sqlite") != NULL, "missing file message names the path");
  check(db == NULL, "no handle on failure");

  printf("%s\n", g_failures ? "FAILED" : "OK");
  return g_failures ? 1 : 0;
}
