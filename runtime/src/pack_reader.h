// Reads what the runtime needs from a kforge pack (schema: generator/pack.cpp, versions
// 1 and 2): the kernels of one arch that a winners row names (w4a16_linear,
// w4a16_moe_gemm1/2, sparse_mla_decode, mxfp4_moe_gemm1/2), plus the generic kernels, the MoE helpers
// (moe_align, moe_silu_mul, moe_sum), the sparse MLA combine kernels when the pack has
// sparse_mla_decode winners, and the winners rows of that arch. Version 2 adds a `routing`
// column to winners: only the routing-robust rows (routing = '') are read; the
// per-archetype ones are the tuner's evidence, not the runtime's choice. Files that are
// not packs are refused from their header before SQLite touches them; packs are read
// with query_only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kforge/kforge.h"

namespace kf {
namespace rt {

// The schema versions this runtime reads.
constexpr int kPackSchemaVersionMin = 1;
constexpr int kPackSchemaVersionMax = 2;

struct KernelRow {
  std::string name, op, kind, shape, config;
  int threads = 0;
  std::vector<uint8_t> code;
};

struct WinnerRow {
  std::string device, op, shape, kernel;
  int64_t m_lo = 0, m_hi = 0;
  int cold_l2 = 0;
};

struct PackRows {
  std::vector<KernelRow> kernels;
  std::vector<WinnerRow> winners;
  std::string archs;  // every arch with kernels, "gfx1151, sm_90a": for messages
};

// Checks without SQLite that `path` can be a pack of a readable schema version: KF_ERR_IO
// when it is missing, unreadable or a directory, KF_ERR_SCHEMA when its header says it
// is not SQLite or of another user_version. Messages name the path.
kf_status check_pack_file(const char* path);

// KF_ERR_IO (cannot open or read), KF_ERR_SCHEMA (not SQLite, not a kforge pack, a
// schema version outside [min, max]); messages name the path.
kf_status read_pack(const char* path, const char* arch, PackRows* rows);

}  // namespace rt
}  // namespace kf
