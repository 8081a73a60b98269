// Reads what the runtime needs from a kforge pack (schema: generator/pack.cpp, version
// 1): the w4a16_linear kernels of one arch that a winners row names, plus the generic
// kernels, and every winners row of that arch. Files that are not packs are refused
// from their header before SQLite touches them; packs are read with query_only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kforge/kforge.h"

namespace kf {
namespace rt {

constexpr int kPackSchemaVersion = 1;

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

// Checks without SQLite that `path` can be a pack of this schema version: KF_ERR_IO
// when it is missing, unreadable or a directory, KF_ERR_SCHEMA when its header says it
// is not SQLite or of another user_version. Messages name the path.
kf_status check_pack_file(const char* path);

// KF_ERR_IO (cannot open or read), KF_ERR_SCHEMA (not SQLite, not a kforge pack, other
// schema version); messages name the path.
kf_status read_pack(const char* path, const char* arch, PackRows* rows);

}  // namespace rt
}  // namespace kf
