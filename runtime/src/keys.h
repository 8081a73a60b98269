// The pack's key strings as numbers: w4a16_linear shape keys (n12288_k2048_g128_bf16_sym,
// per-channel "gch"), the generic kernels' shape keys (any_bf16_sym) and config keys
// (bm64_bn128_bk64_w4_sk1_s2). The formats are the generator's (linear_family.h); the
// runtime parses them itself, without allocating, because kf_select parses a caller's
// key on every call for shapes that were never tuned.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kf {
namespace rt {

struct LinearShapeKey {
  int64_t n = 0;
  int64_t k = 0;
  int64_t group = 0;  // 0 = per-channel
  bool bf16 = true;
  bool asym = false;

  int64_t effective_group() const { return group == 0 ? k : group; }
};

// Ordering for binary search over tuned shapes.
bool operator<(const LinearShapeKey& a, const LinearShapeKey& b);
bool operator==(const LinearShapeKey& a, const LinearShapeKey& b);

// Exactly the generator's format; false for anything else (trailing text included).
bool parse_linear_shape_key(const char* text, LinearShapeKey* key);
// "any_<bf16|fp16>_<sym|asym>".
bool parse_generic_shape_key(const char* text, bool* bf16, bool* asym);
// Writes the canonical key (as the generator writes it) into buf.
void format_linear_shape_key(const LinearShapeKey& key, char* buf, size_t size);

// What the generic kernel can do (generic.h): N % 8 == 0, K % 32 == 0, the group size a
// multiple of 32 that divides K (per-channel: K), and sizes that fit its int arguments.
bool generic_can_do(const LinearShapeKey& key);

struct LinearConfigKey {
  int block_m = 0, block_n = 0, block_k = 0, warps = 0, split_k = 0, stages = 0;
};

bool parse_linear_config_key(const char* text, LinearConfigKey* config);

}  // namespace rt
}  // namespace kf
