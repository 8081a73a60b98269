// Small kforge packs for the runtime's tests and benchmark: kernels with fake code
// objects (nothing loads them without a GPU) and winners rows, written with the
// generator's kf::Pack so the schema is the real one. Throws std::runtime_error.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kforge/kforge.h"

namespace kf_testing {

constexpr const char* kTestDevice = "NVIDIA H100 80GB HBM3";

// The small MoE layer the runtime's tests build packs for: E 8, top_k 2, H 256, I 128,
// g128 bf16 sym (gemm1 e8_topk2_n256_k256_g128_bf16_sym, gemm2 e8_topk2_n256_k128_g128_bf16_sym).
kf_moe_shape small_moe_shape();

// w4a16_linear_<kind>_<shape>_<config>, the generator's naming.
std::string kernel_name(const std::string& kind, const std::string& shape, const std::string& config);
// w4a16_moe_gemm<gemm>_<kind>_<shape>_<config> (generator/moe_family.h).
std::string moe_kernel_name(int gemm, const std::string& kind, const std::string& shape, const std::string& config);
// sparse_mla_decode_<shape>_<config> (generator/mla_family.h).
std::string mla_kernel_name(const std::string& shape, const std::string& config);
// mxfp4_moe_gemm<gemm>_[<kind>_]<shape>_<config>, kind "mma" unnamed (generator/mxfp4_family.h).
std::string mxfp4_kernel_name(int gemm, const std::string& shape, const std::string& config,
                              const std::string& kind = "mma");

// The small MXFP4 MoE layer the runtime's tests build packs for: E 8, top_k 2, H 256,
// I 128, SwiGLU fused (gemm1 e8_topk2_n256_k256_swiglu, gemm2 e8_topk2_n256_k128).
kf_mxfp4_moe_shape small_mxfp4_shape();

class TestPackBuilder {
 public:
  // Returns the kernel's name.
  std::string add_kernel(const std::string& kind, const std::string& shape, const std::string& config,
                         const std::string& arch = "sm_90a", int threads = 128);
  std::string add_generic(bool bf16, bool asym, const std::string& arch = "sm_90a");
  void add_winner(const std::string& shape, const std::string& kernel, int64_t m_lo, int64_t m_hi,
                  const std::string& device = kTestDevice, int cold_l2 = 1, const std::string& arch = "sm_90a");

  // w4a16_moe: a GEMM kernel (gemm 1 = gate_up, 2 = down; shape like
  // e8_topk2_n256_k256_g128_bf16_sym), the helpers every MoE pack has (moe_align_any,
  // moe_silu_mul_any_<dtype>, moe_sum_any_<dtype> with the block sizes of
  // w4a16_moe/launch.h), and a winner over T = [t_lo, t_hi] for `routing` ('' = the
  // routing-robust pick; others need schema 2).
  std::string add_moe_kernel(int gemm, const std::string& kind, const std::string& shape, const std::string& config,
                             const std::string& arch = "sm_90a", int threads = 128);
  void add_moe_helpers(const std::string& arch = "sm_90a");
  // moe_align's cluster form (moe_align_cluster_any, kind align_cluster), as the
  // generator writes it for the sm_90 archs.
  void add_moe_align_cluster(const std::string& arch = "sm_90a");
  void add_moe_winner(int gemm, const std::string& shape, const std::string& kernel, int64_t t_lo, int64_t t_hi,
                      const std::string& routing = "", const std::string& device = kTestDevice, int cold_l2 = 1,
                      const std::string& arch = "sm_90a");

  // sparse_mla_decode: a decode kernel (shape like h128_topk2048_x0_bf16, config like
  // bh16_bk16_w4_sp8_s2; threads default to warps x 32), the combine kernels
  // (sparse_mla_combine_any_<dtype>, kf::mla::kCombineThreads), and a winner over
  // Q = [q_lo, q_hi].
  std::string add_mla_kernel(const std::string& shape, const std::string& config, const std::string& arch = "sm_90a",
                             int threads = 0, const std::string& kind = "decode");
  void add_mla_combine(bool bf16, const std::string& arch = "sm_90a");
  void add_mla_winner(const std::string& shape, const std::string& kernel, int64_t q_lo, int64_t q_hi,
                      const std::string& device = kTestDevice, int cold_l2 = 1, const std::string& arch = "sm_90a");

  // mxfp4_moe: a GEMM kernel (gemm 1 = gate_up, 2 = down; kind mma, decode or wgmma;
  // shape like e8_topk2_n256_k256_swiglu, config like bm16_bn64_bk64_w4_s2_ep1; threads
  // default to warps x 32) and a winner over T = [t_lo, t_hi] for `routing` ('' = the
  // routing-robust pick). The layer's helpers are add_moe_helpers'.
  std::string add_mxfp4_kernel(int gemm, const std::string& shape, const std::string& config,
                               const std::string& arch = "sm_90a", int threads = 0, const std::string& kind = "mma");
  void add_mxfp4_winner(int gemm, const std::string& shape, const std::string& kernel, int64_t t_lo, int64_t t_hi,
                        const std::string& routing = "", const std::string& device = kTestDevice, int cold_l2 = 1,
                        const std::string& arch = "sm_90a");

  // The schema version to write (1 or 2; default: the generator's current one). The
  // tables are the generator's, with winners (and results) made to have the `routing`
  // column exactly when the version does.
  void set_schema(int version) { schema_ = version; }

  // Creates the pack at `path` (which must not exist yet).
  void write(const std::string& path) const;

 private:
  struct Kernel {
    std::string name, arch, op, kind, shape, config;
    int threads;
  };
  struct Winner {
    std::string arch, device, op, shape, kernel;
    int64_t m_lo, m_hi;
    int cold_l2;
    std::string routing;
  };
  std::vector<Kernel> kernels_;
  std::vector<Winner> winners_;
  int schema_ = 0;  // 0: the generator's
};

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace kf_testing
