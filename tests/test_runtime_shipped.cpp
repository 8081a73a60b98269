// The tuned DB the project ships (tuned_db/kforge.sqlite) is an artifact users load as
// is: it must open with this runtime and serve every layer it was tuned for (qwen3-35b's
// linear and MoE layers, deepseek-v3.2's sparse MLA buckets, gpt-oss-120b's MXFP4
// experts) at every size from a tuned (not fallback) kernel whose code object it carries.
#include <doctest/doctest.h>

#include <string>

#include "kforge/kforge.h"
#include "model.h"

TEST_SUITE("runtime") {

TEST_CASE("the shipped tuned DB serves every qwen3-35b layer at every M on sm_90a") {
  const std::string path = KF_TEST_DATA_DIR "/../tuned_db/kforge.sqlite";
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open_for_arch(path.c_str(), "sm_90a", "NVIDIA H100 80GB HBM3", &db) == KF_OK,
                  std::string(kf_last_error()));
  for (const auto& layer : kf::builtin_model("qwen3-35b").linears)
    for (int64_t m : {1, 2, 3, 7, 16, 33, 64, 100, 256, 1000, 4096, 10000}) {
      INFO(layer.layer << " M=" << m);
      const kf_kernel* k = nullptr;
      REQUIRE(kf_select_linear(db, layer.n, layer.k, 128, 1, 0, m, &k) == KF_OK);
      CHECK_FALSE(kf_kernel_is_fallback(k));
      const std::string name = kf_kernel_name(k);
      CHECK(name.find("_n" + std::to_string(layer.n) + "_k" + std::to_string(layer.k) + "_g128_bf16_sym_") !=
            std::string::npos);
    }
  kf_close(db);
}

TEST_CASE("the shipped tuned DB serves qwen3-35b's MoE GEMMs at every T on sm_90a") {
  const std::string path = KF_TEST_DATA_DIR "/../tuned_db/kforge.sqlite";
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open_for_arch(path.c_str(), "sm_90a", "NVIDIA H200", &db) == KF_OK, std::string(kf_last_error()));
  const kf_moe_shape s = {256, 8, 2048, 512, 128, 1, 0};
  size_t scratch = 0;
  CHECK(kf_moe_scratch_bytes(db, &s, 4096, &scratch) == KF_OK);
  CHECK(scratch > 0);
  for (int gemm : {1, 2})
    for (int64_t t : {1, 2, 3, 7, 16, 33, 64, 100, 256, 1000, 4096, 10000}) {
      INFO("gemm" << gemm << " T=" << t);
      const kf_kernel* k = nullptr;
      REQUIRE_MESSAGE(kf_select_moe(db, gemm, &s, t, &k) == KF_OK, std::string(kf_last_error()));
      const std::string name = kf_kernel_name(k);
      CHECK(name.rfind(gemm == 1 ? "w4a16_moe_gemm1_" : "w4a16_moe_gemm2_", 0) == 0);
      CHECK(name.find(gemm == 1 ? "_e256_topk8_n1024_k2048_g128_bf16_sym_" : "_e256_topk8_n2048_k512_g128_bf16_sym_") !=
            std::string::npos);
      int bm = 0;
      CHECK(kf_kernel_block_m(k, &bm) == KF_OK);
      CHECK(name.find("_bm" + std::to_string(bm) + "_") != std::string::npos);
    }
  kf_close(db);
}

TEST_CASE("the shipped tuned DB serves every deepseek-v3.2 sparse MLA bucket at every Q on sm_90a") {
  const std::string path = KF_TEST_DATA_DIR "/../tuned_db/kforge.sqlite";
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open_for_arch(path.c_str(), "sm_90a", "NVIDIA H200", &db) == KF_OK, std::string(kf_last_error()));
  const auto layers = kf::builtin_model("deepseek-v3.2").mla;
  REQUIRE_FALSE(layers.empty());
  for (const auto& l : layers) {
    const kf_mla_shape s = {static_cast<int>(l.heads), static_cast<int>(l.topk), static_cast<int>(l.extras), 1};
    const std::string key = "_h" + std::to_string(l.heads) + "_topk" + std::to_string(l.topk) + "_x" +
                            std::to_string(l.extras) + "_bf16_";
    size_t scratch = 0;
    CHECK_MESSAGE(kf_mla_scratch_bytes(db, &s, 1024, &scratch) == KF_OK, std::string(kf_last_error()));
    for (int64_t q : {1, 2, 3, 8, 16, 64, 100, 1024, 5000}) {
      INFO(l.layer << key << "Q=" << q);
      const kf_kernel* k = nullptr;
      REQUIRE_MESSAGE(kf_select_mla(db, &s, q, &k) == KF_OK, std::string(kf_last_error()));
      CHECK_FALSE(kf_kernel_is_fallback(k));
      const std::string name = kf_kernel_name(k);
      CHECK(name.rfind("sparse_mla_decode_", 0) == 0);
      CHECK(name.find(key) != std::string::npos);
    }
  }
  kf_close(db);
}

TEST_CASE("the shipped tuned DB serves gpt-oss-120b's MXFP4 expert GEMMs at every T on sm_90a") {
  const std::string path = KF_TEST_DATA_DIR "/../tuned_db/kforge.sqlite";
  kf_db* db = nullptr;
  REQUIRE_MESSAGE(kf_open_for_arch(path.c_str(), "sm_90a", "NVIDIA H200", &db) == KF_OK, std::string(kf_last_error()));
  const kf_mxfp4_moe_shape s = {128, 4, 2880, 2880, 1};
  for (int gemm : {1, 2})
    for (int64_t t : {1, 2, 3, 16, 64, 65, 100, 1024, 4096, 10000}) {
      INFO("gemm" << gemm << " T=" << t);
      const kf_kernel* k = nullptr;
      REQUIRE_MESSAGE(kf_select_mxfp4_moe(db, gemm, &s, t, &k) == KF_OK, std::string(kf_last_error()));
      const std::string name = kf_kernel_name(k);
      CHECK(name.rfind(gemm == 1 ? "mxfp4_moe_gemm1_" : "mxfp4_moe_gemm2_", 0) == 0);
      CHECK(name.find(gemm == 1 ? "e128_topk4_n5760_k2880_swiglu_" : "e128_topk4_n2880_k2880_") != std::string::npos);
    }
  kf_close(db);
}

}  // TEST_SUITE
