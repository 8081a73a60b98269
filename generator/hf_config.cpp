// Hugging Face config.json -> ModelDesc: the GEMM shapes each supported architecture
// asks of the engine, fused the way engines run them (qkv, gate_up) so that one entry
// is one kernel call.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "error.h"
#include "model.h"

namespace kf {

namespace {

using nlohmann::json;

// Reads keys of one config object; every failure names the file, the key and the
// model_type, because a config.json is usually edited by hand or fetched blindly and
// the user needs to know which line to look at.
class Keys {
 public:
  Keys(const json& cfg, std::string origin, std::string type)
      : cfg_(cfg), origin_(std::move(origin)), type_(std::move(type)) {}

  const std::string& type() const { return type_; }

  // `null` counts as absent: transformers writes e.g. "head_dim": null for Mistral.
  bool has(const char* key) const {
    auto it = cfg_.find(key);
    return it != cfg_.end() && !it->is_null();
  }

  const json& raw(const char* key) const { return cfg_.at(key); }

  int64_t size(const char* key) const {
    if (!has(key)) fail("key '" + std::string(key) + "' missing");
    return checked(key, 1);
  }

  int64_t size_or(const char* key, int64_t fallback) const {
    return has(key) ? checked(key, 1) : fallback;
  }

  // Sizes that may legitimately be 0 (e.g. no shared expert).
  int64_t count_or(const char* key, int64_t fallback) const {
    return has(key) ? checked(key, 0) : fallback;
  }

  bool flag_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = cfg_.at(key);
    if (!v.is_boolean()) bad(key, v, "expected true or false");
    return v.get<bool>();
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(origin_ + ": " + what + " (needed for model_type '" + type_ + "')");
  }

  [[noreturn]] void bad(const char* key, const json& v, const std::string& want) const {
    throw Error(origin_ + ": key '" + key + "' has value " + v.dump() + ", " + want +
                " (model_type '" + type_ + "')");
  }

 private:
  int64_t checked(const char* key, int64_t min) const {
    const json& v = cfg_.at(key);
    // Floats such as 4096.0 are rejected too: a size that is not an exact integer in
    // the file is more likely a mistake than an intent.
    if (!v.is_number_integer()) bad(key, v, "expected an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      bad(key, v, "too large");
    int64_t x = v.get<int64_t>();
    if (x < min) bad(key, v, min == 1 ? "expected a positive size" : "expected a size >= 0");
    return x;
  }

  const json& cfg_;
  std::string origin_;
  std::string type_;
};

void add_linear(ModelDesc& m, const char* name, int64_t n, int64_t k, int64_t count) {
  if (count > 0) m.linears.push_back({name, n, k, int(count)});
}

void add_experts(ModelDesc& m, int64_t experts, int64_t top_k, int64_t inter, int64_t count) {
  if (count <= 0) return;
  m.moe.push_back({"experts.gate_up_proj", experts, top_k, 2 * inter, m.hidden, int(count)});
  m.moe.push_back({"experts.down_proj", experts, top_k, m.hidden, inter, int(count)});
}

void add_dense_mlp(ModelDesc& m, const char* gate_up, const char* down, int64_t inter,
                   int64_t count) {
  add_linear(m, gate_up, 2 * inter, m.hidden, count);
  add_linear(m, down, m.hidden, inter, count);
}

ModelDesc common(const Keys& c) {
  ModelDesc m;
  m.hidden = c.size("hidden_size");
  m.num_layers = c.size("num_hidden_layers");
  if (m.num_layers > INT32_MAX) c.bad("num_hidden_layers", c.raw("num_hidden_layers"), "too large");
  return m;
}

int64_t head_dim(const Keys& c, int64_t hidden, int64_t heads) {
  if (c.has("head_dim")) return c.size("head_dim");
  // Older configs leave head_dim implicit; it is only well defined when it divides.
  if (hidden % heads != 0)
    c.fail("key 'head_dim' missing and hidden_size " + std::to_string(hidden) +
           " is not a multiple of num_attention_heads " + std::to_string(heads));
  return hidden / heads;
}

// Grouped-query attention as Llama runs it: q, k and v fused into one GEMM.
// `q_gate` doubles q for Qwen3-Next's output gate, which rides along in the q projection.
void add_attention(ModelDesc& m, const Keys& c, int64_t count, bool q_gate) {
  int64_t heads = c.size("num_attention_heads");
  int64_t kv_heads = c.size_or("num_key_value_heads", heads);
  int64_t hd = head_dim(c, m.hidden, heads);
  add_linear(m, "attn.qkv_proj", heads * hd * (q_gate ? 2 : 1) + 2 * kv_heads * hd, m.hidden,
             count);
  add_linear(m, "attn.o_proj", m.hidden, heads * hd, count);
}

// Qwen3-MoE and Qwen3-Next put experts on layer i unless i is in mlp_only_layers or
// (i+1) is not a multiple of decoder_sparse_step; the others get a dense MLP.
int64_t count_sparse_layers(const Keys& c, int64_t layers) {
  int64_t step = c.size_or("decoder_sparse_step", 1);
  std::set<int64_t> dense_only;
  if (c.has("mlp_only_layers")) {
    const json& list = c.raw("mlp_only_layers");
    if (!list.is_array()) c.bad("mlp_only_layers", list, "expected a list of layer indices");
    for (const json& v : list) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= layers)
        c.bad("mlp_only_layers", list,
              "expected layer indices in [0, " + std::to_string(layers) + ")");
      dense_only.insert(v.get<int64_t>());
    }
  }
  int64_t sparse = 0;
  for (int64_t i = 0; i < layers; ++i)
    if (!dense_only.count(i) && (i + 1) % step == 0) ++sparse;
  return sparse;
}

ModelDesc llama(const Keys& c) {
  ModelDesc m = common(c);
  add_attention(m, c, m.num_layers, false);
  add_dense_mlp(m, "mlp.gate_up_proj", "mlp.down_proj", c.size("intermediate_size"),
                m.num_layers);
  return m;
}

ModelDesc mixtral(const Keys& c) {
  ModelDesc m = common(c);
  add_attention(m, c, m.num_layers, false);
  add_experts(m, c.size("num_local_experts"), c.size("num_experts_per_tok"),
              c.size("intermediate_size"), m.num_layers);
  return m;
}

ModelDesc qwen3_moe(const Keys& c) {
  ModelDesc m = common(c);
  add_attention(m, c, m.num_layers, false);
  int64_t sparse = count_sparse_layers(c, m.num_layers);
  int64_t dense = m.num_layers - sparse;
  // intermediate_size is only needed when some layer is dense.
  if (dense > 0)
    add_dense_mlp(m, "mlp.gate_up_proj", "mlp.down_proj", c.size("intermediate_size"), dense);
  add_experts(m, c.size("num_experts"), c.size("num_experts_per_tok"),
              c.size("moe_intermediate_size"), sparse);
  return m;
}

// Qwen3-Next / Qwen3.5-MoE: a hybrid of full attention and Gated-DeltaNet layers, every
// MoE block with an optional always-on shared expert.
ModelDesc qwen3_next(const Keys& c) {
  ModelDesc m = common(c);
  int64_t full = 0;
  if (c.has("layer_types")) {
    const json& types = c.raw("layer_types");
    if (!types.is_array() || int64_t(types.size()) != m.num_layers)
      c.bad("layer_types", types,
            "expected a list of " + std::to_string(m.num_layers) + " layer types");
    for (const json& t : types) {
      if (t == "full_attention") ++full;
      else if (t != "linear_attention")
        c.bad("layer_types", t, "expected \"full_attention\" or \"linear_attention\"");
    }
  } else {
    int64_t interval = c.size("full_attention_interval");
    full = m.num_layers / interval;  // layers i with (i+1) % interval == 0
  }
  int64_t linear = m.num_layers - full;

  if (linear > 0) {
    int64_t qk = c.size("linear_num_key_heads") * c.size("linear_key_head_dim");
    int64_t v = c.size("linear_num_value_heads") * c.size("linear_value_head_dim");
    // One fused projection yields q, k, v and the output gate z (z is as wide as v).
    add_linear(m, "gdn.in_proj_qkvz", 2 * qk + 2 * v, m.hidden, linear);
    add_linear(m, "gdn.out_proj", m.hidden, v, linear);
  }
  if (full > 0) add_attention(m, c, full, c.flag_or("attn_output_gate", true));

  int64_t sparse = count_sparse_layers(c, m.num_layers);
  int64_t dense = m.num_layers - sparse;
  if (dense > 0)
    add_dense_mlp(m, "mlp.gate_up_proj", "mlp.down_proj", c.size("intermediate_size"), dense);
  int64_t shared = c.count_or("shared_expert_intermediate_size", 0);
  if (shared > 0 && sparse > 0)
    add_dense_mlp(m, "shared_expert.gate_up_proj", "shared_expert.down_proj", shared, sparse);
  add_experts(m, c.size("num_experts"), c.size("num_experts_per_tok"),
              c.size("moe_intermediate_size"), sparse);
  return m;
}

// gpt-oss: MXFP4 routed experts (gate_up with bias and the clamped SwiGLU on interleaved
// columns, down with bias) in every layer; the attention and router stay 16-bit in its
// checkpoints, so kforge lists the experts only.
ModelDesc gpt_oss(const Keys& c) {
  ModelDesc m = common(c);
  const int64_t experts = c.size("num_local_experts");
  const int64_t top_k = c.has("num_experts_per_tok") ? c.size("num_experts_per_tok") : c.size("experts_per_token");
  const int64_t inter = c.size("intermediate_size");
  const int layers = static_cast<int>(m.num_layers);
  m.moe.push_back({"experts.gate_up_proj", experts, top_k, 2 * inter, m.hidden, layers, true, true});
  m.moe.push_back({"experts.down_proj", experts, top_k, m.hidden, inter, layers, true, false});
  return m;
}

// DeepSeek-V3.2: sparse MLA decode over the 512 + 64 latent cache (one bucket per heads
// per rank that divides num_attention_heads, from 16) and the W4A16 routed experts of
// the layers after first_k_dense_replace.
ModelDesc deepseek_v32(const Keys& c) {
  ModelDesc m = common(c);
  if (c.size("kv_lora_rank") != 512 || c.size("qk_rope_head_dim") != 64)
    c.fail("sparse_mla_decode serves a 512 + 64 latent cache only (kv_lora_rank " +
           std::to_string(c.size("kv_lora_rank")) + ", qk_rope_head_dim " + std::to_string(c.size("qk_rope_head_dim")) +
           ")");
  const int64_t heads = c.size("num_attention_heads"), topk = c.size("index_topk");
  const int layers = static_cast<int>(m.num_layers);
  for (int64_t h = 16; h <= heads && h <= 256; h *= 2)
    if (heads % h == 0) m.mla.push_back({"attn.sparse_mla.h" + std::to_string(h), h, topk, 0, layers});
  if (m.mla.empty()) c.fail("num_attention_heads " + std::to_string(heads) + " has no per-rank share of 16 to 256 heads");
  const int64_t dense = c.count_or("first_k_dense_replace", 0);
  if (dense > m.num_layers) c.bad("first_k_dense_replace", c.raw("first_k_dense_replace"), "more than num_hidden_layers");
  add_experts(m, c.size("n_routed_experts"), c.size("num_experts_per_tok"), c.size("moe_intermediate_size"),
              m.num_layers - dense);
  return m;
}

using Family = ModelDesc (*)(const Keys&);

const std::map<std::string, Family>& families() {
  // The *_text names are the model_type of the text_config nested inside the
  // multimodal Qwen3.5 checkpoints.
  static const std::map<std::string, Family> table = {
      {"llama", llama},           {"mistral", llama},
      {"mixtral", mixtral},       {"qwen3_moe", qwen3_moe},
      {"qwen3_next", qwen3_next}, {"qwen3_5_moe", qwen3_next},
      {"qwen3_5_moe_text", qwen3_next},
      {"gpt_oss", gpt_oss},       {"deepseek_v32", deepseek_v32},
  };
  return table;
}

std::string read_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw Error("cannot read model config '" + path + "': " + std::strerror(errno));
  std::string text;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f.get())) > 0) text.append(buf, got);
  // fopen succeeds on a directory; the failure only shows up on read (EISDIR).
  if (std::ferror(f.get()))
    throw Error("cannot read model config '" + path + "': " + std::strerror(errno));
  return text;
}

}  // namespace

ModelDesc model_from_hf_config_text(const std::string& json_text, const std::string& origin) {
  json top;
  try {
    top = json::parse(json_text);
  } catch (const json::parse_error& e) {
    // e.what() carries the line and column of the first bad character.
    throw Error(origin + ": not valid JSON: " + e.what());
  }
  if (!top.is_object()) throw Error(origin + ": expected a JSON object at the top level");

  // Multimodal checkpoints keep the language model's keys under text_config.
  const json* cfg = &top;
  auto nested = top.find("text_config");
  if (nested != top.end() && nested->is_object()) cfg = &*nested;

  const json* type = nullptr;
  if (cfg->contains("model_type")) type = &cfg->at("model_type");
  else if (top.contains("model_type")) type = &top.at("model_type");

  std::string supported;
  for (const auto& f : families()) supported += (supported.empty() ? "" : ", ") + f.first;
  if (!type) throw Error(origin + ": key 'model_type' missing (supported: " + supported + ")");
  if (!type->is_string())
    throw Error(origin + ": key 'model_type' has value " + type->dump() + ", expected a string");
  auto family = families().find(type->get<std::string>());
  if (family == families().end())
    throw Error(origin + ": unsupported model_type '" + type->get<std::string>() +
                "' (supported: " + supported + ")");

  ModelDesc m = family->second(Keys(*cfg, origin, family->first));
  auto name = top.find("_name_or_path");
  if (name != top.end() && name->is_string() && !name->get<std::string>().empty())
    m.name = name->get<std::string>();
  else
    m.name = std::filesystem::path(origin).stem().string();
  return m;
}

ModelDesc model_from_hf_config(const std::string& path) {
  return model_from_hf_config_text(read_file(path), path);
}

}  // namespace kf
