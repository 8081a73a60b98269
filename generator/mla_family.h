// The sparse_mla family: DeepSeek-V3.2-style sparse attention decode over a latent KV
// cache (templates/sparse_mla/args.h). Two kinds: `decode` (the arch's 16x16x16 matrix
// instruction, configured by heads per block, KV rows per step, warps, KV splits and
// pipeline stages) and `wgmma` (sm_90a's warpgroup MMA, 64 heads and 64 KV rows per step,
// two warpgroups, Q and two KV stages in dynamic shared memory; only the KV splits vary).
// Split configs need the shape-independent combine kernel (sparse_mla_combine_any_<dtype>),
// which every pack with MLA kernels carries.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "arch.h"
#include "candidate.h"

namespace kf {

constexpr const char* kMlaDecodeOp = "sparse_mla_decode";
constexpr const char* kMlaCombineOp = "sparse_mla_combine";

struct MlaShape {
  int64_t heads = 0;   // query heads per rank (H)
  int64_t topk = 0;    // index slots per query
  int64_t extras = 0;  // tuning bucket of extra rows per query (0 = none; the kernels take any count)
  bool bf16 = true;    // q, kv and o: bf16 or fp16

  // h128_topk2048_x0_bf16
  std::string key() const;
};

// Inverse of MlaShape::key(); throws kf::Error naming the bad part.
MlaShape parse_mla_shape(const std::string& key);

// What the family can do: H a multiple of 16 from 16 to 256, 1 <= topk <= 65536,
// 0 <= extras <= 65536. Throws kf::Error naming the layer and the bad value.
void validate_mla_shape(const MlaShape& shape, const std::string& layer);

enum class MlaKind { decode, wgmma };

struct MlaConfig {
  int block_h = 16;  // heads per block: a multiple of 16 (one matrix atom row)
  int block_k = 16;  // KV rows gathered per step
  int warps = 4;     // head tiles x d-slices (decode.h)
  int splits = 1;    // KV splits per query (> 1: partials + combine)
  int stages = 1;    // KV steps in flight
  MlaKind kind = MlaKind::decode;  // the pack row's kind; not part of key()

  // bh16_bk16_w4_sp1_s2: fixed order, every knob.
  std::string key() const;
  bool operator==(const MlaConfig& o) const { return key() == o.key() && kind == o.kind; }
};

// `kind` is the pack row's: "decode" or "wgmma".
MlaConfig parse_mla_config(const std::string& key, const std::string& kind = "decode");
const char* mla_kind_name(MlaKind kind);

// The dynamic shared memory a config's kernel launches with (and opts in to at load):
// the wgmma kind's Q, stages and exchange buffers; 0 for the decode kind.
int mla_dynamic_shared(const MlaConfig& cfg);

// sparse_mla_decode_<shape key>_<config key>, sparse_mla_decode_wgmma_<...>
std::string mla_kernel_name(const MlaShape& shape, const MlaConfig& cfg);

// Why the template cannot take this config for this shape on this arch ("" = it can).
std::string mla_config_problem(const MlaShape& shape, const MlaConfig& cfg, const ArchInfo& arch);

// Every config the template accepts for the shape on this arch.
std::vector<MlaConfig> enumerate_mla_configs(const MlaShape& shape, const ArchInfo& arch);

Candidate make_mla_candidate(const MlaShape& shape, const MlaConfig& cfg, const ArchInfo& arch);
// sparse_mla_combine_any_<dtype>: run-time Q, H and split count.
Candidate make_mla_combine_candidate(bool bf16, const ArchInfo& arch);

// Scratch of a split launch over Q queries (0 for unsplit configs).
int64_t mla_part_floats(const MlaShape& shape, const MlaConfig& cfg, int64_t queries);

}  // namespace kf
