// Helpers shared by the runtime suites (test_runtime*.cpp).
#pragma once
#include <doctest/doctest.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "kforge/kforge.h"
#include "test_pack.h"
#include "test_util.h"

namespace kf_rt_test {

using kf_testing::kTestDevice;
using kf_testing::TempDir;
using kf_testing::TestPackBuilder;

struct CloseDb {
  void operator()(kf_db* db) const { kf_close(db); }
};
using DbPtr = std::unique_ptr<kf_db, CloseDb>;

inline DbPtr open_for_arch(const std::string& path, const char* arch = "sm_90a", const char* device = kTestDevice) {
  kf_db* db = nullptr;
  const kf_status status = kf_open_for_arch(path.c_str(), arch, device, &db);
  REQUIRE_MESSAGE(status == KF_OK, kf_last_error());
  return DbPtr(db);
}

// Name of the kernel kf_select_linear picks for a bf16 sym g128 shape, or "" on failure.
inline std::string pick(const kf_db* db, int64_t n, int64_t k, int64_t m, int group = 128, int bf16 = 1,
                        int asym = 0) {
  const kf_kernel* kernel = nullptr;
  if (kf_select_linear(db, n, k, group, bf16, asym, m, &kernel) != KF_OK) return "";
  return kf_kernel_name(kernel);
}

using kf_test::contains;

inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Redirects this process's stderr (fd 2) into a file for its lifetime; text() reads it.
class CaptureStderr {
 public:
  explicit CaptureStderr(const TempDir& dir) : path_(dir.file("stderr.txt")) {
    fflush(stderr);
    saved_ = dup(2);
    FILE* f = fopen(path_.c_str(), "w");
    REQUIRE(f);
    dup2(fileno(f), 2);
    fclose(f);
  }
  ~CaptureStderr() { restore(); }
  std::string text() {
    restore();
    return file_bytes(path_);
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

// The pack at `path` opened for sm_90a, and what opening it wrote to stderr (the
// warnings about rows it ignores).
struct OpenedPack {
  DbPtr db;
  std::string warnings;
};
inline OpenedPack open_capturing_stderr(const TempDir& dir, const std::string& path) {
  OpenedPack opened;
  CaptureStderr err(dir);
  opened.db = open_for_arch(path);
  opened.warnings = err.text();
  return opened;
}

inline int count_of(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace kf_rt_test
