// model_from_hf_config: shapes derived from real checkpoints' config.json files, and the
// error messages a user sees for a broken one.
#include <doctest/doctest.h>

#include <string>

#include "error.h"
#include "model.h"

namespace {

const std::string kDir = KF_TEST_DATA_DIR "/data/hf_configs/";

const kf::LinearLayer* linear(const kf::ModelDesc& m, const std::string& name) {
  for (const auto& l : m.linears)
    if (l.layer == name) return &l;
  return nullptr;
}

const kf::MoeLayer* moe(const kf::ModelDesc& m, const std::string& name) {
  for (const auto& l : m.moe)
    if (l.layer == name) return &l;
  return nullptr;
}

void check_linear(const kf::ModelDesc& m, const std::string& name, int64_t n, int64_t k,
                  int count) {
  INFO("layer " << name);
  const kf::LinearLayer* l = linear(m, name);
  REQUIRE(l != nullptr);
  CHECK(l->n == n);
  CHECK(l->k == k);
  CHECK(l->count == count);
}

void check_moe(const kf::ModelDesc& m, const std::string& name, int64_t experts, int64_t top_k,
               int64_t n, int64_t k, int count) {
  INFO("moe layer " << name);
  const kf::MoeLayer* l = moe(m, name);
  REQUIRE(l != nullptr);
  CHECK(l->experts == experts);
  CHECK(l->top_k == top_k);
  CHECK(l->n == n);
  CHECK(l->k == k);
  CHECK(l->count == count);
}

// Layer for layer, in order; the name is deliberately not compared.
void check_same_shapes(const kf::ModelDesc& got, const kf::ModelDesc& want) {
  CHECK(got.hidden == want.hidden);
  CHECK(got.num_layers == want.num_layers);
  REQUIRE(got.linears.size() == want.linears.size());
  for (size_t i = 0; i < want.linears.size(); ++i) {
    INFO("linear " << i << " " << want.linears[i].layer);
    CHECK(got.linears[i].layer == want.linears[i].layer);
    CHECK(got.linears[i].n == want.linears[i].n);
    CHECK(got.linears[i].k == want.linears[i].k);
    CHECK(got.linears[i].count == want.linears[i].count);
  }
  REQUIRE(got.moe.size() == want.moe.size());
  for (size_t i = 0; i < want.moe.size(); ++i) {
    INFO("moe " << i << " " << want.moe[i].layer);
    CHECK(got.moe[i].layer == want.moe[i].layer);
    CHECK(got.moe[i].experts == want.moe[i].experts);
    CHECK(got.moe[i].top_k == want.moe[i].top_k);
    CHECK(got.moe[i].n == want.moe[i].n);
    CHECK(got.moe[i].k == want.moe[i].k);
    CHECK(got.moe[i].count == want.moe[i].count);
  }
}

// The message of the kf::Error `f` throws, or "" (which fails every contains check).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const kf::Error& e) {
    return e.what();
  }
  FAIL("expected kf::Error");
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

kf::ModelDesc from_text(const std::string& text) {
  return kf::model_from_hf_config_text(text, "config.json");
}

}  // namespace

TEST_SUITE("hf_config") {

TEST_CASE("llama-3-8b: head_dim derived from hidden_size") {
  auto m = kf::model_from_hf_config(kDir + "llama3_8b.json");
  CHECK(m.name == "llama3_8b");  // no _name_or_path: the file stem
  CHECK(m.hidden == 4096);
  CHECK(m.num_layers == 32);
  CHECK(m.linears.size() == 4);
  CHECK(m.moe.empty());
  check_linear(m, "attn.qkv_proj", (32 + 2 * 8) * 128, 4096, 32);
  check_linear(m, "attn.o_proj", 4096, 4096, 32);
  check_linear(m, "mlp.gate_up_proj", 2 * 14336, 4096, 32);
  check_linear(m, "mlp.down_proj", 4096, 14336, 32);
}

TEST_CASE("mistral-nemo: explicit head_dim that hidden_size does not imply") {
  auto m = kf::model_from_hf_config(kDir + "mistral_nemo_12b.json");
  CHECK(m.name == "mistralai/Mistral-Nemo-Instruct-2407");
  CHECK(m.linears.size() == 4);
  check_linear(m, "attn.qkv_proj", (32 + 2 * 8) * 128, 5120, 40);
  check_linear(m, "attn.o_proj", 5120, 32 * 128, 40);
  check_linear(m, "mlp.gate_up_proj", 2 * 14336, 5120, 40);
  check_linear(m, "mlp.down_proj", 5120, 14336, 40);
}

TEST_CASE("num_key_value_heads defaults to num_attention_heads") {
  auto m = from_text(R"({"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 2,
                         "num_attention_heads": 16, "intermediate_size": 5632})");
  check_linear(m, "attn.qkv_proj", 3 * 2048, 2048, 2);
  CHECK(m.name == "config");
}

TEST_CASE("mixtral-8x7b: experts replace the dense MLP") {
  auto m = kf::model_from_hf_config(kDir + "mixtral_8x7b.json");
  CHECK(m.linears.size() == 2);  // "head_dim": null is treated as absent
  check_linear(m, "attn.qkv_proj", 6144, 4096, 32);
  check_linear(m, "attn.o_proj", 4096, 4096, 32);
  CHECK(m.moe.size() == 2);
  check_moe(m, "experts.gate_up_proj", 8, 2, 2 * 14336, 4096, 32);
  check_moe(m, "experts.down_proj", 8, 2, 4096, 14336, 32);
}

TEST_CASE("qwen3-30b-a3b: every layer sparse") {
  auto m = kf::model_from_hf_config(kDir + "qwen3_30b_a3b.json");
  CHECK(m.hidden == 2048);
  CHECK(m.num_layers == 48);
  CHECK(m.linears.size() == 2);
  check_linear(m, "attn.qkv_proj", (32 + 2 * 4) * 128, 2048, 48);
  check_linear(m, "attn.o_proj", 2048, 32 * 128, 48);
  CHECK(m.moe.size() == 2);
  check_moe(m, "experts.gate_up_proj", 128, 8, 2 * 768, 2048, 48);
  check_moe(m, "experts.down_proj", 128, 8, 2048, 768, 48);
}

TEST_CASE("qwen3_moe: decoder_sparse_step and mlp_only_layers split dense and sparse") {
  // Sparse layers: odd indices (step 2) except 47 (mlp_only) -> 23; the other 25 dense.
  auto m = from_text(R"({"model_type": "qwen3_moe", "hidden_size": 2048,
      "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
      "head_dim": 128, "intermediate_size": 6144, "num_experts": 128,
      "num_experts_per_tok": 8, "moe_intermediate_size": 768,
      "decoder_sparse_step": 2, "mlp_only_layers": [0, 47]})");
  check_linear(m, "mlp.gate_up_proj", 2 * 6144, 2048, 25);
  check_linear(m, "mlp.down_proj", 2048, 6144, 25);
  check_moe(m, "experts.gate_up_proj", 128, 8, 1536, 2048, 23);
  check_moe(m, "experts.down_proj", 128, 8, 2048, 768, 23);
}

TEST_CASE("qwen3.5-35b-a3b top-level config equals the built-in qwen3-35b") {
  auto m = kf::model_from_hf_config(kDir + "qwen3_5_35b_a3b.json");
  CHECK(m.name == "qwen3_5_35b_a3b");
  check_same_shapes(m, kf::builtin_model("qwen3-35b"));
}

TEST_CASE("qwen3.5-35b-a3b nested under text_config equals the built-in qwen3-35b") {
  auto m = kf::model_from_hf_config(kDir + "qwen3_5_35b_a3b_nested.json");
  CHECK(m.name == "Qwen/Qwen3.5-35B-A3B");
  check_same_shapes(m, kf::builtin_model("qwen3-35b"));
}

TEST_CASE("qwen3_next: explicit layer_types and no output gate") {
  auto m = from_text(R"({"model_type": "qwen3_next", "hidden_size": 2048,
      "num_hidden_layers": 4, "attn_output_gate": false,
      "layer_types": ["full_attention", "linear_attention", "linear_attention",
                      "full_attention"],
      "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
      "linear_num_key_heads": 16, "linear_key_head_dim": 128,
      "linear_num_value_heads": 32, "linear_value_head_dim": 128,
      "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512,
      "shared_expert_intermediate_size": 0})");
  check_linear(m, "attn.qkv_proj", 16 * 256 + 2 * 2 * 256, 2048, 2);
  check_linear(m, "gdn.in_proj_qkvz", 12288, 2048, 2);
  CHECK(linear(m, "shared_expert.gate_up_proj") == nullptr);  // size 0: no shared expert
  check_moe(m, "experts.gate_up_proj", 512, 10, 1024, 2048, 4);
}

TEST_CASE("gpt-oss-120b config: MXFP4 experts equal the built-in model's") {
  const kf::ModelDesc m = kf::model_from_hf_config_text(R"({
    "model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
    "num_local_experts": 128, "num_experts_per_tok": 4, "num_attention_heads": 64, "head_dim": 64,
    "num_key_value_heads": 8, "swiglu_limit": 7.0, "quantization_config": {"quant_method": "mxfp4"}})",
                                                        "gpt-oss-120b/config.json");
  const kf::ModelDesc b = kf::builtin_model("gpt-oss-120b");
  REQUIRE(m.moe.size() == b.moe.size());
  for (size_t i = 0; i < m.moe.size(); ++i) {
    CHECK(m.moe[i].layer == b.moe[i].layer);
    CHECK(m.moe[i].n == b.moe[i].n);
    CHECK(m.moe[i].k == b.moe[i].k);
    CHECK(m.moe[i].experts == b.moe[i].experts);
    CHECK(m.moe[i].top_k == b.moe[i].top_k);
    CHECK(m.moe[i].count == b.moe[i].count);
    CHECK(m.moe[i].mxfp4 == b.moe[i].mxfp4);
    CHECK(m.moe[i].swiglu == b.moe[i].swiglu);
  }
  CHECK(m.linears.empty());
}

TEST_CASE("deepseek-v3.2 config: sparse MLA buckets per heads per rank and W4A16 experts") {
  const std::string cfg = R"({
    "model_type": "deepseek_v32", "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "index_topk": 2048, "n_routed_experts": 256,
    "num_experts_per_tok": 8, "moe_intermediate_size": 2048, "first_k_dense_replace": 3})";
  const kf::ModelDesc m = kf::model_from_hf_config_text(cfg, "dsv32/config.json");
  REQUIRE(m.mla.size() == 4);
  CHECK(m.mla[0].heads == 16);
  CHECK(m.mla[3].heads == 128);
  CHECK(m.mla[3].topk == 2048);
  CHECK(m.mla[3].count == 61);
  REQUIRE(m.moe.size() == 2);
  CHECK(m.moe[0].n == 4096);
  CHECK(m.moe[0].k == 7168);
  CHECK(m.moe[1].n == 7168);
  CHECK(m.moe[0].count == 58);
  CHECK_FALSE(m.moe[0].mxfp4);
  std::string other = cfg;
  other.replace(other.find("\"kv_lora_rank\": 512"), 19, "\"kv_lora_rank\": 256");
  CHECK_THROWS_WITH_AS(kf::model_from_hf_config_text(other, "dsv32/config.json"),
                       doctest::Contains("kv_lora_rank 256"), kf::Error);
}

TEST_CASE("missing key names the key and the model_type") {
  std::string msg = error_of([] {
    from_text(R"({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                  "intermediate_size": 14336})");
  });
  CHECK(msg == "config.json: key 'num_attention_heads' missing (needed for model_type 'llama')");

  msg = error_of([] {
    from_text(R"({"model_type": "qwen3_next", "hidden_size": 2048, "num_hidden_layers": 4})");
  });
  CHECK(contains(msg, "'full_attention_interval'"));
  CHECK(contains(msg, "'qwen3_next'"));
}

TEST_CASE("wrong type or non-positive size names the key and value") {
  std::string msg = error_of([] {
    from_text(R"({"model_type": "llama", "hidden_size": "4096", "num_hidden_layers": 32})");
  });
  CHECK(contains(msg, "'hidden_size'"));
  CHECK(contains(msg, "\"4096\""));

  msg = error_of([] {
    from_text(R"({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 0})");
  });
  CHECK(contains(msg, "'num_hidden_layers'"));
  CHECK(contains(msg, "value 0"));

  msg = error_of([] {
    from_text(R"({"model_type": "qwen3_next", "hidden_size": 2048, "num_hidden_layers": 2,
                  "layer_types": ["full_attention", "sliding_attention"]})");
  });
  CHECK(contains(msg, "'layer_types'"));
  CHECK(contains(msg, "sliding_attention"));
}

TEST_CASE("unknown model_type is named and the supported ones listed") {
  std::string msg = error_of([] { from_text(R"({"model_type": "gpt2", "n_embd": 768})"); });
  CHECK(contains(msg, "'gpt2'"));
  for (const char* t : {"llama", "mistral", "mixtral", "qwen3_moe", "qwen3_next", "qwen3_5_moe"})
    CHECK(contains(msg, t));

  msg = error_of([] { from_text(R"({"hidden_size": 768})"); });
  CHECK(contains(msg, "'model_type' missing"));
}

TEST_CASE("unreadable path names the path and the OS reason") {
  std::string path = kDir + "no_such_config.json";
  std::string msg = error_of([&] { kf::model_from_hf_config(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "No such file or directory"));

  msg = error_of([] { kf::model_from_hf_config(kDir); });  // a directory
  CHECK(contains(msg, "Is a directory"));
}

TEST_CASE("invalid JSON names the path and the parser's position") {
  std::string path = kDir + "invalid.json";
  std::string msg = error_of([&] { kf::model_from_hf_config(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "line 5"));
}

}  // TEST_SUITE
