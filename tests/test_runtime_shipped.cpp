// The tuned DB the project ships (tuned_db/kforge.sqlite) is an artifact users load as
// is: it must open with this runtime and serve every qwen3-35b layer at every M from a
// tuned (not fallback) kernel whose code object it carries.
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

}  // TEST_SUITE
