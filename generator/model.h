// What a model asks of kforge: the GEMM shapes of its quantised layers.
// Shapes are N x K as engines fuse them (qkv, gate_up), so one entry is one kernel call.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kf {

// A dense linear layer: y[M, n] = x[M, k] * W[n, k]^T, run `count` times per forward pass.
struct LinearLayer {
  std::string layer;  // e.g. "gdn.in_proj_qkvz"
  int64_t n = 0;
  int64_t k = 0;
  int count = 0;      // layers of the model that have this exact layer
};

// The two expert GEMMs of a mixture-of-experts block (served by the MoE family).
struct MoeLayer {
  std::string layer;  // e.g. "moe.experts.gate_up"
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t n = 0;
  int64_t k = 0;
  int count = 0;
  // Expert weight format: GPTQ int4 (the w4a16_moe family) or MXFP4 (mxfp4_moe, gpt-oss
  // style, whose gate_up layers fuse the clamped SwiGLU when `swiglu`).
  bool mxfp4 = false;
  bool swiglu = false;
};

// Sparse MLA decode attention (DeepSeek-V3.2 style), per tuning bucket: heads per rank
// (the tensor-parallel split decides it) and extra always-attended rows per query.
struct MlaLayer {
  std::string layer;  // e.g. "attn.sparse_mla_decode.tp8"
  int64_t heads = 0;
  int64_t topk = 0;
  int64_t extras = 0;
  int count = 0;
};

struct ModelDesc {
  std::string name;
  int64_t hidden = 0;
  int64_t num_layers = 0;
  std::vector<LinearLayer> linears;
  std::vector<MoeLayer> moe;
  std::vector<MlaLayer> mla;
};

// The models kforge knows by name; `default_model_name()` is the one genkernels uses
// when --model is not given.
const char* default_model_name();
std::vector<std::string> builtin_model_names();
ModelDesc builtin_model(const std::string& name);  // throws kf::Error naming `name`

// Derives the shapes from a Hugging Face config.json (Qwen3-MoE, Qwen3.5/Qwen3-Next MoE,
// Llama, Mistral, Mixtral). Throws kf::Error naming the file and the missing or bad key.
ModelDesc model_from_hf_config(const std::string& path);
ModelDesc model_from_hf_config_text(const std::string& json_text, const std::string& origin);

}  // namespace kf
