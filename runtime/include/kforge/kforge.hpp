// C++ convenience over the C ABI (kforge.h): an owning kforge::Db that closes itself,
// and exceptions for the set-up calls. The per-forward calls (select, run_linear,
// launch) return the status instead of throwing, so an engine's hot path decides what
// a failure means. Header-only: it adds nothing to the library's ABI.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "kforge/kforge.h"

namespace kforge {

class Error : public std::runtime_error {
 public:
  Error(kf_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  kf_status status() const { return status_; }

 private:
  kf_status status_;
};

inline void check(kf_status status) {
  if (status != KF_OK) throw Error(status, std::string(kf_status_name(status)) + ": " + kf_last_error());
}

struct Workspace {
  int64_t floats = 0;    // for kf_linear_args::workspace
  int64_t counters = 0;  // for kf_linear_args::counters, zeroed once
};

class Db {
 public:
  // The pack for the calling thread's GPU (kf_open).
  static Db open(const std::string& path) {
    kf_db* db = nullptr;
    check(kf_open(path.c_str(), &db));
    return Db(db);
  }
  // The pack for an arch, without a GPU (kf_open_for_arch); empty name = any device.
  static Db open_for_arch(const std::string& path, const std::string& arch, const std::string& device_name = "") {
    kf_db* db = nullptr;
    check(kf_open_for_arch(path.c_str(), arch.c_str(), device_name.empty() ? nullptr : device_name.c_str(), &db));
    return Db(db);
  }

  Db(Db&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Db& operator=(Db&& other) noexcept {
    if (this != &other) {
      kf_close(db_);
      db_ = std::exchange(other.db_, nullptr);
    }
    return *this;
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { kf_close(db_); }

  kf_db* get() const { return db_; }
  std::string arch() const { return kf_db_arch(db_); }
  std::string device_name() const { return kf_db_device_name(db_); }

  void prepare() { check(kf_prepare(db_)); }
  Workspace max_workspace(int64_t max_m) const {
    Workspace w;
    check(kf_db_max_workspace(db_, max_m, &w.floats, &w.counters));
    return w;
  }
  // Sparse MLA decode scratch for Q up to max_queries (kf_mla_scratch_bytes).
  size_t mla_scratch_bytes(const kf_mla_shape& shape, int64_t max_queries) const {
    size_t bytes = 0;
    check(kf_mla_scratch_bytes(db_, &shape, max_queries, &bytes));
    return bytes;
  }
  // MXFP4 MoE layer scratch for T up to max_t (kf_mxfp4_moe_scratch_bytes).
  size_t mxfp4_moe_scratch_bytes(const kf_mxfp4_moe_shape& shape, int64_t max_t) const {
    size_t bytes = 0;
    check(kf_mxfp4_moe_scratch_bytes(db_, &shape, max_t, &bytes));
    return bytes;
  }

  // Hot path: status, no exception.
  kf_status select_linear(int64_t n, int64_t k, int group, bool bf16, bool asym, int64_t m,
                          const kf_kernel** kernel) const noexcept {
    return kf_select_linear(db_, n, k, group, bf16, asym, m, kernel);
  }
  kf_status run_linear(const kf_linear_args& args, bool bf16, bool asym, void* stream) const noexcept {
    return kf_run_linear(db_, &args, bf16, asym, stream);
  }
  kf_status select_mla(const kf_mla_shape& shape, int64_t queries, const kf_kernel** kernel) const noexcept {
    return kf_select_mla(db_, &shape, queries, kernel);
  }
  kf_status run_mla(const kf_mla_shape& shape, const kf_mla_decode_args& args, void* scratch, size_t scratch_bytes,
                    void* stream) const noexcept {
    return kf_run_mla(db_, &shape, &args, scratch, scratch_bytes, stream);
  }
  kf_status select_mxfp4_moe(int gemm, const kf_mxfp4_moe_shape& shape, int64_t t,
                             const kf_kernel** kernel) const noexcept {
    return kf_select_mxfp4_moe(db_, gemm, &shape, t, kernel);
  }
  kf_status run_mxfp4_moe(const kf_mxfp4_moe_shape& shape, const kf_mxfp4_moe_layer_args& args,
                          void* stream) const noexcept {
    return kf_run_mxfp4_moe(db_, &shape, &args, stream);
  }

 private:
  explicit Db(kf_db* db) : db_(db) {}
  kf_db* db_ = nullptr;
};

}  // namespace kforge
