// Helpers shared by the doctest suites.
#pragma once
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "error.h"

namespace kf_test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag = "test") {
    std::string tmpl = (fs::temp_directory_path() / ("kforge-" + tag + "-XXXXXX")).string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string sub(const std::string& name) const { return (path / name).string(); }
};

// The kf::Error message of f(), or "" when it did not throw (which fails every
// "message names X" check). Other exceptions escape and fail the test case.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const kf::Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// Runs SQL statements on the SQLite file at `path` (test set-up: fake rows, damage).
inline void sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &err);
  const std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

}  // namespace kf_test
