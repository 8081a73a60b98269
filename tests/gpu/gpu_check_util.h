// What the GPU check programs share: the CUDA driver table in `cu` (CU_CHECK expects it),
// a device buffer, the device start-up that exits 77 without a GPU, reading a pack's
// kernels read-only (never migrating a tracked DB), and the common command line.
#pragma once
#include <sqlite3.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cu_check.h"
#include "cuda_driver.h"

namespace kf {
namespace gpu_check {

inline const cuda::Driver* cu = nullptr;

struct Buf {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  explicit Buf(size_t n) : bytes(std::max<size_t>(n, 256)) { CU_CHECK(cu->cuMemAlloc(&ptr, bytes)); }
  Buf(const Buf&) = delete;
  ~Buf() { cu->cuMemFree(ptr); }
  template <class T>
  void up(const std::vector<T>& v) {
    if (!v.empty()) CU_CHECK(cu->cuMemcpyHtoD(ptr, v.data(), v.size() * sizeof(T)));
  }
  template <class T>
  std::vector<T> down(size_t count) const {
    std::vector<T> v(count);
    if (count) CU_CHECK(cu->cuMemcpyDtoH(v.data(), ptr, count * sizeof(T)));
    return v;
  }
  template <class T = void>
  T* p() const { return reinterpret_cast<T*>(ptr); }
};

// Loads the driver and makes device 0's primary context current; its name in *name.
// Without a driver or a device: prints that nothing was checked and exits 77 (ctest's
// skip code), so a machine without a GPU never reports a pass.
inline void start_device(std::string* name) {
  int devices = 0;
  const char* why = "no CUDA device";
  cu = cuda::driver(&why);
  if (!cu || cu->cuInit(0) != CUDA_SUCCESS || cu->cuDeviceGetCount(&devices) != CUDA_SUCCESS || devices == 0) {
    std::printf("skipped: no GPU (%s); nothing was checked\n", cu ? "no CUDA device on this machine" : why);
    std::exit(77);
  }
  CUdevice dev;
  CU_CHECK(cu->cuDeviceGet(&dev, 0));
  char buf[256];
  CU_CHECK(cu->cuDeviceGetName(buf, sizeof buf, dev));
  *name = buf;
  CUcontext ctx;
  CU_CHECK(cu->cuDevicePrimaryCtxRetain(&ctx, dev));
  CU_CHECK(cu->cuCtxSetCurrent(ctx));
}

struct KernelRow {
  std::string name, op, kind, shape, config;
  std::vector<uint8_t> code_object;
  int threads = 0;
};

// The kernels of `ops` for `arch` with status ok and a code object, by name. Throws
// std::runtime_error naming the pack when it cannot be read.
inline std::vector<KernelRow> read_kernels(const std::string& pack, const std::string& arch,
                                           const std::vector<std::string>& ops) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(pack.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("cannot open pack '" + pack + "': " + msg);
  }
  std::string sql = "SELECT name, op, kind, shape, config, code_object, threads FROM kernels WHERE arch = ?"
                    " AND status = 'ok' AND code_object IS NOT NULL AND op IN (";
  for (size_t i = 0; i < ops.size(); ++i) sql += i ? ", ?" : "?";
  sql += ") ORDER BY name";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    const std::string msg = sqlite3_errmsg(db);
    sqlite3_close(db);
    throw std::runtime_error("pack '" + pack + "': " + msg);
  }
  sqlite3_bind_text(st, 1, arch.c_str(), -1, SQLITE_TRANSIENT);
  for (size_t i = 0; i < ops.size(); ++i) sqlite3_bind_text(st, static_cast<int>(i) + 2, ops[i].c_str(), -1, SQLITE_TRANSIENT);
  std::vector<KernelRow> rows;
  auto text = [&](int col) {
    const unsigned char* t = sqlite3_column_text(st, col);
    return std::string(t ? reinterpret_cast<const char*>(t) : "");
  };
  while (sqlite3_step(st) == SQLITE_ROW) {
    KernelRow r{text(0), text(1), text(2), text(3), text(4), {}, sqlite3_column_int(st, 6)};
    const auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(st, 5));
    r.code_object.assign(blob, blob + sqlite3_column_bytes(st, 5));
    rows.push_back(std::move(r));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

// read_kernels for a program that cannot go on without them: the reason on stderr, exit 1.
inline std::vector<KernelRow> read_kernels_or_exit(const std::string& pack, const std::string& arch,
                                                   const std::vector<std::string>& ops) {
  try {
    return read_kernels(pack, arch, ops);
  } catch (const std::runtime_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::exit(1);
  }
}

// --pack FILE (required), --arch, --filter RE (kernel names), --<sizes> 1,3,8 (each >= 1),
// --seed N (default: the clock), and whatever options `more` adds for one program. Bad
// or missing options print the usage and exit 2.
struct Options {
  std::string pack, arch = "sm_90a", filter = ".*";
  std::vector<int64_t> sizes;
  uint64_t seed = 0;
};

inline Options parse_options(int argc, char** argv, const std::string& what, const std::string& sizes_flag,
                             const std::string& sizes_help, std::vector<int64_t> default_sizes,
                             const std::function<void(CLI::App&)>& more = {}) {
  Options o;
  o.sizes = std::move(default_sizes);
  o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  CLI::App app{what};
  app.add_option("--pack", o.pack, "the pack (kforge.sqlite) whose kernels are checked")->required();
  app.add_option("--arch", o.arch, "the pack's arch")->capture_default_str();
  app.add_option("--filter", o.filter, "only kernels whose name matches this regex");
  app.add_option("--" + sizes_flag, o.sizes, sizes_help)
      ->delimiter(',')
      ->check(CLI::Validator(
          [](std::string& v) { return std::stoll(v) >= 1 ? std::string() : "every value must be >= 1, got " + v; },
          "INT >= 1"));
  app.add_option("--seed", o.seed, "random data seed (default: the clock)");
  if (more) more(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e) == 0 ? 0 : 2);
  }
  return o;
}

}  // namespace gpu_check
}  // namespace kf
