#include "model.h"

#include "error.h"

namespace kf {

namespace {

// Qwen3.5/3.6-35B-A3B: 40 layers = 30 Gated-DeltaNet + 10 full attention, hidden 2048,
// 256 experts (top-8, moe_intermediate 512) plus one shared expert of 512.
ModelDesc qwen3_35b() {
  ModelDesc m;
  m.name = "qwen3-35b";
  m.hidden = 2048;
  m.num_layers = 40;
  m.linears = {
      {"gdn.in_proj_qkvz", 12288, 2048, 30},  // q 2048 + k 2048 + v 4096 + z 4096
      {"gdn.out_proj", 2048, 4096, 30},
      {"attn.qkv_proj", 9216, 2048, 10},      // q with gate 8192 + k 512 + v 512
      {"attn.o_proj", 2048, 4096, 10},
      {"shared_expert.gate_up_proj", 1024, 2048, 40},
      {"shared_expert.down_proj", 2048, 512, 40},
  };
  m.moe = {
      {"experts.gate_up_proj", 256, 8, 1024, 2048, 40},
      {"experts.down_proj", 256, 8, 2048, 512, 40},
  };
  return m;
}

// DeepSeek-V3.2: 61 layers, hidden 7168, 128 attention heads over a 576-wide latent KV
// cache with DeepSeek Sparse Attention (2048 indexed rows per query); 58 MoE layers of
// 256 routed experts (top-8, moe_intermediate 2048). One MLA entry per heads-per-rank
// (tensor parallel 8, 4, 2, 1), without and with 128 extra rows per query (a window).
// Its dense projections are not listed: kforge serves the attention and the experts.
ModelDesc deepseek_v32() {
  ModelDesc m;
  m.name = "deepseek-v3.2";
  m.hidden = 7168;
  m.num_layers = 61;
  for (int64_t heads : {16, 32, 64, 128})
    for (int64_t extras : {0, 128})
      m.mla.push_back({"attn.sparse_mla.h" + std::to_string(heads) + (extras ? "_window" : ""), heads, 2048, extras, 61});
  m.moe = {
      {"experts.gate_up_proj", 256, 8, 4096, 7168, 58},
      {"experts.down_proj", 256, 8, 7168, 2048, 58},
  };
  return m;
}

// gpt-oss-120b / -20b: hidden 2880, MXFP4 experts of intermediate 2880 (top-4 of 128 or
// 32), gate_up with bias and the clamped SwiGLU on interleaved columns, down with bias.
// Attention runs in 16-bit and is not listed.
ModelDesc gpt_oss(const std::string& name, int64_t experts, int64_t layers) {
  ModelDesc m;
  m.name = name;
  m.hidden = 2880;
  m.num_layers = layers;
  m.moe = {
      {"experts.gate_up_proj", experts, 4, 5760, 2880, static_cast<int>(layers), true, true},
      {"experts.down_proj", experts, 4, 2880, 2880, static_cast<int>(layers), true, false},
  };
  return m;
}

}  // namespace

const char* default_model_name() { return "qwen3-35b"; }

std::vector<std::string> builtin_model_names() { return {"qwen3-35b", "deepseek-v3.2", "gpt-oss-120b", "gpt-oss-20b"}; }

ModelDesc builtin_model(const std::string& name) {
  if (name == "qwen3-35b") return qwen3_35b();
  if (name == "deepseek-v3.2") return deepseek_v32();
  if (name == "gpt-oss-120b") return gpt_oss(name, 128, 36);
  if (name == "gpt-oss-20b") return gpt_oss(name, 32, 24);
  std::string known;
  for (const auto& n : builtin_model_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown model '" + name + "' (known: " + known +
              "; or pass --config path/to/config.json)");
}

}  // namespace kf
