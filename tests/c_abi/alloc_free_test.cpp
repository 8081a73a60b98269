// The hot path allocates nothing: with every heap allocation counted (operator new and
// malloc replaced, see alloc_counter.h), 1000 calls each of kf_select_linear and
// kf_select over tuned shapes, bucket edges, a never-tuned shape (after its one-time
// report), kf_select_moe, kf_select_mla (an untuned extras bucket too),
// kf_select_mxfp4_moe, the error paths, kf_check_mla_indices, and whole launches
// (kf_launch, kf_run_linear, kf_run_moe, kf_launch_moe_*, kf_run_mla, kf_launch_mla,
// kf_run_mxfp4_moe, kf_launch_mxfp4_moe_gemm) on the recording CUDA stand-in this program links
// (runtime/testing/fake_cuda.h; code objects loaded by kf_prepare first), make zero
// allocations. Exit 0 when none; prints the counts.
#include <cstdint>
#include <cstdio>
#include <string>

#include "alloc_counter.h"
#include "fake_cuda.h"
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
  expect(kf_prepare(db) == KF_OK, "kf_prepare on the stand-in device");
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
  report("kf_launch + kf_run_linear x1000", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      bad += kf_launch(k, &args, nullptr) != KF_OK;
      bad += kf_run_linear(db, &args, 1, 0, nullptr) != KF_OK;
    }
  }));
  std::printf("kf_launch here: %s (%s)\n", kf_status_name(launch_status), kf_last_error());

  // A MoE layer (the pack's E 8, top_k 2, H 256, I 128).
  kf_moe_shape moe{};
  moe.experts = 8;
  moe.top_k = 2;
  moe.hidden = 256;
  moe.intermediate = 128;
  moe.group = 128;
  moe.bf16 = 1;
  const int max_t = 300;
  size_t scratch_bytes = 0;
  expect(kf_moe_scratch_bytes(db, &moe, max_t, &scratch_bytes) == KF_OK, "kf_moe_scratch_bytes");
  kf_moe_layer_args layer{};
  layer.x = reinterpret_cast<const void*>(uintptr_t{0x100000});
  layer.topk_ids = reinterpret_cast<const int32_t*>(uintptr_t{0x200000});
  layer.topk_weights = reinterpret_cast<const float*>(uintptr_t{0x300000});
  layer.w1_qweight = reinterpret_cast<const void*>(uintptr_t{0x400000});
  layer.w1_scales = reinterpret_cast<const void*>(uintptr_t{0x500000});
  layer.w2_qweight = reinterpret_cast<const void*>(uintptr_t{0x600000});
  layer.w2_scales = reinterpret_cast<const void*>(uintptr_t{0x700000});
  layer.y = reinterpret_cast<void*>(uintptr_t{0x800000});
  layer.scratch = reinterpret_cast<void*>(uintptr_t{0x10000000});
  layer.scratch_bytes = scratch_bytes;
  layer.max_t = max_t;
  layer.t = 1;
  expect(kf_run_moe(db, &moe, &layer, nullptr) == KF_OK, "kf_run_moe warm-up");
  report("kf_select_moe x1000 (both GEMMs, T 1..300)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) bad += kf_select_moe(db, 1 + i % 2, &moe, 1 + i % max_t, &k) != KF_OK;
  }));
  kf_fake_cuda_reset();
  report("kf_run_moe x1000 (T 1..300)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      layer.t = 1 + i % max_t;
      bad += kf_run_moe(db, &moe, &layer, nullptr) != KF_OK;
    }
  }));
  expect(kf_fake_cuda_launch_count() >= 5000, "kf_run_moe launched every piece");
  kf_moe_align_args align{layer.topk_ids, reinterpret_cast<int32_t*>(uintptr_t{0x20000000}),
                          reinterpret_cast<int32_t*>(uintptr_t{0x21000000}),
                          reinterpret_cast<int32_t*>(uintptr_t{0x22000000}), 40, 2, 8, 16, nullptr, 0};
  kf_moe_sum_args sum{layer.x, layer.topk_ids, layer.y, 40, 2, 8, 256};
  kf_moe_silu_mul_args silu{layer.x, layer.y, 80, 128};
  report("kf_launch_moe_align/silu_mul/sum x1000", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      bad += kf_launch_moe_align(db, &align, nullptr) != KF_OK;
      bad += kf_launch_moe_silu_mul(db, 1, &silu, nullptr) != KF_OK;
      bad += kf_launch_moe_sum(db, 1, &sum, nullptr) != KF_OK;
    }
  }));
  expect(bad == 0, "every MoE call succeeded");
  report("MoE errors x1000 (t 0, untuned, short scratch)", kf_testing::allocations_in([&] {
    kf_moe_shape untuned = moe;
    untuned.experts = 16;
    for (int i = 0; i < 1000; ++i) {
      kf_select_moe(db, 1, &moe, 0, &k);
      kf_select_moe(db, 1, &untuned, 1, &k);
      layer.t = 0;
      kf_run_moe(db, &moe, &layer, nullptr);
      layer.t = max_t;
      layer.scratch_bytes = 256;
      kf_run_moe(db, &moe, &layer, nullptr);
      layer.scratch_bytes = scratch_bytes;
    }
  }));

  // Sparse MLA decode (the pack's h128_topk2048_x0_bf16: split up to Q = 4, then not).
  kf_mla_shape mla{};
  mla.heads = 128;
  mla.topk = 2048;
  mla.bf16 = 1;
  kf_mla_shape bucket = mla;
  bucket.extras = 128;  // untuned: served by x0, reported once (outside the count)
  const int max_q = 64;
  size_t mla_bytes = 0;
  expect(kf_mla_scratch_bytes(db, &mla, max_q, &mla_bytes) == KF_OK && mla_bytes > 0, "kf_mla_scratch_bytes");
  expect(kf_select_mla(db, &bucket, 1, &k) == KF_OK && kf_kernel_is_fallback(k), "extras bucket fallback");
  kf_mla_decode_args attn{};
  attn.q = reinterpret_cast<const void*>(uintptr_t{0x100000});
  attn.kv = reinterpret_cast<const void*>(uintptr_t{0x200000});
  attn.indices = reinterpret_cast<const int32_t*>(uintptr_t{0x300000});
  attn.o = reinterpret_cast<void*>(uintptr_t{0x400000});
  attn.lse = reinterpret_cast<float*>(uintptr_t{0x500000});
  attn.kv_rows = 8192;
  attn.heads = 128;
  attn.topk = 2048;
  attn.softmax_scale = 0.0417f;
  void* const mla_scratch = reinterpret_cast<void*>(uintptr_t{0x10000000});
  attn.queries = 1;
  expect(kf_run_mla(db, &mla, &attn, mla_scratch, mla_bytes, nullptr) == KF_OK, "kf_run_mla warm-up");
  report("kf_select_mla x1000 (tuned + extras fallback)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) bad += kf_select_mla(db, i % 4 == 3 ? &bucket : &mla, 1 + i % max_q, &k) != KF_OK;
  }));
  kf_fake_cuda_reset();
  report("kf_run_mla + kf_launch_mla x1000 (Q 1..64)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      attn.queries = 1 + i % max_q;
      bad += kf_run_mla(db, &mla, &attn, mla_scratch, mla_bytes, nullptr) != KF_OK;
      bad += kf_select_mla(db, &mla, attn.queries, &k) != KF_OK;
      bad += kf_launch_mla(k, &attn, mla_scratch, mla_bytes, nullptr) != KF_OK;
    }
  }));
  expect(kf_fake_cuda_launch_count() >= 2000, "kf_run_mla launched decode (and combine)");
  static int32_t indices[4 * 2048];
  for (int i = 0; i < 4 * 2048; ++i) indices[i] = i % 3 == 0 ? -1 : i;
  expect(bad == 0, "every MLA call succeeded");
  report("MLA errors x1000 (Q 0, untuned, scratch, index)", kf_testing::allocations_in([&] {
    kf_mla_shape untuned = mla;
    untuned.heads = 64;
    int64_t at = 0;
    for (int i = 0; i < 1000; ++i) {
      kf_select_mla(db, &mla, 0, &k);
      kf_select_mla(db, &untuned, 1, &k);
      attn.queries = 2;
      kf_run_mla(db, &mla, &attn, mla_scratch, 16, nullptr);
      attn.queries = 0;
      kf_run_mla(db, &mla, &attn, mla_scratch, mla_bytes, nullptr);
      bad += kf_check_mla_indices(indices, 4, 2048, 8192, &at) != KF_OK;
      bad += kf_check_mla_indices(indices, 4, 2048, 100, &at) != KF_ERR_INVALID_ARGUMENT;
    }
  }));
  expect(bad == 0, "kf_check_mla_indices answered as expected");

  // An MXFP4 MoE layer (the pack's E 8, top_k 2, H 256, I 128, SwiGLU fused; two aligns
  // above T = 8).
  kf_mxfp4_moe_shape mx{};
  mx.experts = 8;
  mx.top_k = 2;
  mx.hidden = 256;
  mx.intermediate = 128;
  mx.swiglu = 1;
  size_t mx_bytes = 0;
  expect(kf_mxfp4_moe_scratch_bytes(db, &mx, max_t, &mx_bytes) == KF_OK, "kf_mxfp4_moe_scratch_bytes");
  kf_mxfp4_moe_layer_args mx_layer{};
  mx_layer.x = layer.x;
  mx_layer.topk_ids = layer.topk_ids;
  mx_layer.topk_weights = layer.topk_weights;
  mx_layer.w1_weight = reinterpret_cast<const uint8_t*>(uintptr_t{0x400000});
  mx_layer.w1_scales = reinterpret_cast<const uint8_t*>(uintptr_t{0x500000});
  mx_layer.w1_bias = reinterpret_cast<const float*>(uintptr_t{0x580000});
  mx_layer.w2_weight = reinterpret_cast<const uint8_t*>(uintptr_t{0x600000});
  mx_layer.w2_scales = reinterpret_cast<const uint8_t*>(uintptr_t{0x700000});
  mx_layer.y = layer.y;
  mx_layer.scratch = layer.scratch;
  mx_layer.scratch_bytes = mx_bytes;
  mx_layer.max_t = max_t;
  mx_layer.t = 1;
  expect(kf_run_mxfp4_moe(db, &mx, &mx_layer, nullptr) == KF_OK, "kf_run_mxfp4_moe warm-up");
  report("kf_select_mxfp4_moe + kf_select x1000", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      bad += kf_select_mxfp4_moe(db, 1 + i % 2, &mx, 1 + i % max_t, &k) != KF_OK;
      bad += kf_select(db, "mxfp4_moe_gemm1", "e8_topk2_n256_k256_swiglu", 1 + i % max_t, &k) != KF_OK;
    }
  }));
  kf_fake_cuda_reset();
  report("kf_run_mxfp4_moe x1000 (T 1..300)", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) {
      mx_layer.t = 1 + i % max_t;
      bad += kf_run_mxfp4_moe(db, &mx, &mx_layer, nullptr) != KF_OK;
    }
  }));
  expect(kf_fake_cuda_launch_count() >= 4000, "kf_run_mxfp4_moe launched every piece");
  kf_mxfp4_moe_gemm_args mx_gemm{};
  mx_gemm.x = layer.x;
  mx_gemm.weight = mx_layer.w1_weight;
  mx_gemm.scales = mx_layer.w1_scales;
  mx_gemm.sorted_ids = align.sorted_ids;
  mx_gemm.expert_ids = align.expert_ids;
  mx_gemm.num_padded = align.num_padded;
  mx_gemm.y = layer.y;
  mx_gemm.t = 40, mx_gemm.top_k = 2, mx_gemm.experts = 8, mx_gemm.n = 256, mx_gemm.k = 256;
  expect(kf_select_mxfp4_moe(db, 1, &mx, 40, &k) == KF_OK, "kf_select_mxfp4_moe T = 40");
  report("kf_launch_mxfp4_moe_gemm x1000", kf_testing::allocations_in([&] {
    for (int i = 0; i < 1000; ++i) bad += kf_launch_mxfp4_moe_gemm(k, &mx_gemm, nullptr) != KF_OK;
  }));
  expect(bad == 0, "every MXFP4 MoE call succeeded");
  report("MXFP4 MoE errors x1000 (t 0, untuned, swiglu 0, short scratch)", kf_testing::allocations_in([&] {
    kf_mxfp4_moe_shape untuned = mx, unfused = mx;
    untuned.experts = 16;
    unfused.swiglu = 0;
    for (int i = 0; i < 1000; ++i) {
      kf_select_mxfp4_moe(db, 1, &mx, 0, &k);
      kf_select_mxfp4_moe(db, 1, &untuned, 1, &k);
      kf_run_mxfp4_moe(db, &unfused, &mx_layer, nullptr);
      mx_layer.t = 0;
      kf_run_mxfp4_moe(db, &mx, &mx_layer, nullptr);
      mx_layer.t = max_t;
      mx_layer.scratch_bytes = 256;
      kf_run_mxfp4_moe(db, &mx, &mx_layer, nullptr);
      mx_layer.scratch_bytes = mx_bytes;
    }
  }));
  kf_close(db);
  std::printf("%s\n", g_failures ? "FAILED" : "OK");
  return g_failures ? 1 : 0;
}
