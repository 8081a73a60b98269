#include "keys.h"

#include <climits>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {

// Consumes `literal` at *p.
bool eat(const char** p, const char* literal) {
  const size_t len = std::strlen(literal);
  if (std::strncmp(*p, literal, len) != 0) return false;
  *p += len;
  return true;
}

// Consumes a positive decimal without leading zeros, as the generator writes them.
bool eat_positive(const char** p, int64_t* value) {
  const char* s = *p;
  if (*s < '1' || *s > '9') return false;
  int64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    if (v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (*s - '0');
  }
  *value = v;
  *p = s;
  return true;
}

// Consumes 0 or a positive decimal without leading zeros.
bool eat_count(const char** p, int64_t* value) {
  if (**p == '0') {
    *value = 0;
    ++*p;
    return true;
  }
  return eat_positive(p, value);
}

bool eat_dtype_quant(const char** p, bool* bf16, bool* asym) {
  if (eat(p, "bf16"))
    *bf16 = true;
  else if (eat(p, "fp16"))
    *bf16 = false;
  else
    return false;
  if (!eat(p, "_")) return false;
  if (eat(p, "asym"))
    *asym = true;
  else if (eat(p, "sym"))
    *asym = false;
  else
    return false;
  return **p == '\0';
}

}  // namespace

bool operator<(const LinearShapeKey& a, const LinearShapeKey& b) {
  return std::tie(a.n, a.k, a.group, a.bf16, a.asym) < std::tie(b.n, b.k, b.group, b.bf16, b.asym);
}

bool operator==(const LinearShapeKey& a, const LinearShapeKey& b) {
  return a.n == b.n && a.k == b.k && a.group == b.group && a.bf16 == b.bf16 && a.asym == b.asym;
}

bool parse_linear_shape_key(const char* text, LinearShapeKey* key) {
  if (!text) return false;
  const char* p = text;
  LinearShapeKey out;
  if (!eat(&p, "n") || !eat_positive(&p, &out.n) || !eat(&p, "_k") || !eat_positive(&p, &out.k) ||
      !eat(&p, "_g"))
    return false;
  if (eat(&p, "ch"))
    out.group = 0;
  else if (!eat_positive(&p, &out.group))
    return false;
  if (!eat(&p, "_") || !eat_dtype_quant(&p, &out.bf16, &out.asym)) return false;
  *key = out;
  return true;
}

bool parse_generic_shape_key(const char* text, bool* bf16, bool* asym) {
  const char* p = text;
  return text && eat(&p, "any_") && eat_dtype_quant(&p, bf16, asym);
}

void format_linear_shape_key(const LinearShapeKey& key, char* buf, size_t size) {
  char group[24];
  if (key.group == 0)
    std::snprintf(group, sizeof group, "ch");
  else
    std::snprintf(group, sizeof group, "%lld", static_cast<long long>(key.group));
  std::snprintf(buf, size, "n%lld_k%lld_g%s_%s_%s", static_cast<long long>(key.n),
                static_cast<long long>(key.k), group, key.bf16 ? "bf16" : "fp16", key.asym ? "asym" : "sym");
}

bool operator<(const MoeShapeKey& a, const MoeShapeKey& b) {
  return std::tie(a.gemm, a.experts, a.top_k, a.expert) < std::tie(b.gemm, b.experts, b.top_k, b.expert);
}

bool operator==(const MoeShapeKey& a, const MoeShapeKey& b) {
  return a.gemm == b.gemm && a.experts == b.experts && a.top_k == b.top_k && a.expert == b.expert;
}

int moe_gemm_of_op(const char* op) {
  if (!op) return 0;
  if (std::strcmp(op, "w4a16_moe_gemm1") == 0) return 1;
  if (std::strcmp(op, "w4a16_moe_gemm2") == 0) return 2;
  return 0;
}

const char* moe_op_name(int gemm) { return gemm == 2 ? "w4a16_moe_gemm2" : "w4a16_moe_gemm1"; }

bool parse_moe_shape_key(const char* text, MoeShapeKey* key) {
  if (!text) return false;
  const char* p = text;
  MoeShapeKey out;
  out.gemm = key->gemm;
  if (!eat(&p, "e") || !eat_positive(&p, &out.experts) || !eat(&p, "_topk") || !eat_positive(&p, &out.top_k) ||
      !eat(&p, "_") || !parse_linear_shape_key(p, &out.expert))
    return false;
  *key = out;
  return true;
}

void format_moe_shape_key(const MoeShapeKey& key, char* buf, size_t size) {
  char expert[96];
  format_linear_shape_key(key.expert, expert, sizeof expert);
  std::snprintf(buf, size, "e%lld_topk%lld_%s", static_cast<long long>(key.experts),
                static_cast<long long>(key.top_k), expert);
}

const char* moe_shape_problem(const MoeShapeKey& key) {
  const LinearShapeKey& e = key.expert;
  if (key.experts < 1 || key.experts > moe::kMaxExperts) return "the expert count must be in [1, 1024]";
  if (key.top_k < 1 || key.top_k > key.experts) return "top_k must be in [1, experts]";
  if (e.n < 1 || e.k < 1 || e.n > INT_MAX || e.k > INT_MAX) return "N and K must be positive ints";
  if (e.group != 0 && e.group != 32 && e.group != 64 && e.group != 128)
    return "the group size must be 32, 64, 128 or per-channel";
  if (e.n % 64 != 0) return "N must be a multiple of 64";
  if (e.k % 32 != 0) return "K must be a multiple of 32";
  if (e.k % e.effective_group() != 0) return "K must be a multiple of the group size";
  return nullptr;
}

bool generic_can_do(const LinearShapeKey& key) {
  const int64_t g = key.effective_group();
  return key.n > 0 && key.k > 0 && key.n <= INT_MAX && key.k <= INT_MAX && key.group >= 0 && key.n % 8 == 0 &&
         key.k % 32 == 0 && g % 32 == 0 && key.k % g == 0;
}

bool parse_linear_config_key(const char* text, LinearConfigKey* config) {
  if (!text) return false;
  const char* p = text;
  int64_t v[6];
  const char* const labels[6] = {"bm", "_bn", "_bk", "_w", "_sk", "_s"};
  for (int i = 0; i < 6; ++i)
    if (!eat(&p, labels[i]) || !eat_positive(&p, &v[i]) || v[i] > 65536) return false;
  int64_t stream_blocks = 0;
  if (eat(&p, "_stk") && (!eat_positive(&p, &stream_blocks) || stream_blocks > 65536)) return false;
  const bool swapped = eat(&p, "_sw");
  const bool silu = eat(&p, "_silu");
  const bool red = !silu && eat(&p, "_red");
  if (*p != '\0') return false;
  *config = {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]),
             static_cast<int>(v[3]), static_cast<int>(v[4]), static_cast<int>(v[5]), silu, red, swapped,
             static_cast<int>(stream_blocks)};
  return true;
}

bool operator<(const MlaShapeKey& a, const MlaShapeKey& b) {
  return std::tie(a.heads, a.topk, a.bf16, a.extras) < std::tie(b.heads, b.topk, b.bf16, b.extras);
}

bool operator==(const MlaShapeKey& a, const MlaShapeKey& b) { return same_mla_family(a, b) && a.extras == b.extras; }

bool same_mla_family(const MlaShapeKey& a, const MlaShapeKey& b) {
  return a.heads == b.heads && a.topk == b.topk && a.bf16 == b.bf16;
}

bool parse_mla_shape_key(const char* text, MlaShapeKey* key) {
  if (!text) return false;
  const char* p = text;
  MlaShapeKey out;
  if (!eat(&p, "h") || !eat_positive(&p, &out.heads) || !eat(&p, "_topk") || !eat_positive(&p, &out.topk) ||
      !eat(&p, "_x") || !eat_count(&p, &out.extras) || !eat(&p, "_"))
    return false;
  if (eat(&p, "bf16"))
    out.bf16 = true;
  else if (eat(&p, "fp16"))
    out.bf16 = false;
  else
    return false;
  if (*p != '\0') return false;
  *key = out;
  return true;
}

void format_mla_shape_key(const MlaShapeKey& key, char* buf, size_t size) {
  std::snprintf(buf, size, "h%lld_topk%lld_x%lld_%s", static_cast<long long>(key.heads),
                static_cast<long long>(key.topk), static_cast<long long>(key.extras), key.bf16 ? "bf16" : "fp16");
}

const char* mla_shape_problem(const MlaShapeKey& key) {
  if (key.heads < 16 || key.heads > 256 || key.heads % 16 != 0) return "H must be a multiple of 16 from 16 to 256";
  if (key.topk < 1 || key.topk > 65536) return "topk must be in [1, 65536]";
  if (key.extras < 0 || key.extras > 65536) return "extras must be in [0, 65536]";
  return nullptr;
}

bool parse_mla_config_key(const char* text, MlaConfigKey* config) {
  if (!text) return false;
  const char* p = text;
  int64_t v[5];
  const char* const labels[5] = {"bh", "_bk", "_w", "_sp", "_s"};
  for (int i = 0; i < 5; ++i)
    if (!eat(&p, labels[i]) || !eat_positive(&p, &v[i]) || v[i] > 65536) return false;
  if (*p != '\0') return false;
  *config = {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]), static_cast<int>(v[3]),
             static_cast<int>(v[4])};
  return true;
}

bool operator<(const Mxfp4ShapeKey& a, const Mxfp4ShapeKey& b) {
  return std::tie(a.gemm, a.experts, a.top_k, a.n, a.k, a.swiglu) <
         std::tie(b.gemm, b.experts, b.top_k, b.n, b.k, b.swiglu);
}

bool operator==(const Mxfp4ShapeKey& a, const Mxfp4ShapeKey& b) {
  return a.gemm == b.gemm && a.experts == b.experts && a.top_k == b.top_k && a.n == b.n && a.k == b.k &&
         a.swiglu == b.swiglu;
}

int mxfp4_gemm_of_op(const char* op) {
  if (!op) return 0;
  if (std::strcmp(op, "mxfp4_moe_gemm1") == 0) return 1;
  if (std::strcmp(op, "mxfp4_moe_gemm2") == 0) return 2;
  return 0;
}

const char* mxfp4_op_name(int gemm) { return gemm == 2 ? "mxfp4_moe_gemm2" : "mxfp4_moe_gemm1"; }

bool parse_mxfp4_shape_key(const char* text, Mxfp4ShapeKey* key) {
  if (!text) return false;
  const char* p = text;
  Mxfp4ShapeKey out;
  out.gemm = key->gemm;
  if (!eat(&p, "e") || !eat_positive(&p, &out.experts) || !eat(&p, "_topk") || !eat_positive(&p, &out.top_k) ||
      !eat(&p, "_n") || !eat_positive(&p, &out.n) || !eat(&p, "_k") || !eat_positive(&p, &out.k))
    return false;
  out.swiglu = eat(&p, "_swiglu");
  if (*p != '\0') return false;
  *key = out;
  return true;
}

void format_mxfp4_shape_key(const Mxfp4ShapeKey& key, char* buf, size_t size) {
  std::snprintf(buf, size, "e%lld_topk%lld_n%lld_k%lld%s", static_cast<long long>(key.experts),
                static_cast<long long>(key.top_k), static_cast<long long>(key.n), static_cast<long long>(key.k),
                key.swiglu ? "_swiglu" : "");
}

const char* mxfp4_shape_problem(const Mxfp4ShapeKey& key) {
  if (key.experts < 1 || key.experts > moe::kMaxExperts) return "the expert count must be in [1, 1024]";
  if (key.top_k < 1 || key.top_k > key.experts) return "top_k must be in [1, experts]";
  if (key.n < 1 || key.k < 1 || key.n > INT_MAX || key.k > INT_MAX) return "N and K must be positive ints";
  if (key.k % 32 != 0) return "K must be a multiple of 32 (the MXFP4 block)";
  if (key.n % 32 != 0) return "N must be a multiple of 32";
  if (key.swiglu && key.gemm != 1) return "the fused SwiGLU is gemm1's (gate_up) only";
  return nullptr;
}

bool parse_mxfp4_config_key(const char* text, Mxfp4ConfigKey* config) {
  if (!text) return false;
  const char* p = text;
  int64_t v[6];
  const char* const labels[6] = {"bm", "_bn", "_bk", "_w", "_s", "_ep"};
  for (int i = 0; i < 6; ++i)
    if (!eat(&p, labels[i]) || !eat_positive(&p, &v[i]) || v[i] > 65536) return false;
  int64_t persistent = 0, split_k = 1;
  if (eat(&p, "_p") && (!eat_positive(&p, &persistent) || persistent > 64)) return false;
  if (eat(&p, "_sk") && (!eat_positive(&p, &split_k) || split_k < 2 || split_k > 64)) return false;
  if (*p != '\0') return false;
  *config = {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]),
             static_cast<int>(v[3]), static_cast<int>(v[4]), static_cast<int>(v[5]),
             static_cast<int>(persistent), static_cast<int>(split_k)};
  return true;
}

}  // namespace rt
}  // namespace kf
