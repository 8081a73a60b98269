// The genkernels executable as a user runs it: exit codes, what goes to stdout and
// stderr, and that --list and rejected command lines write nothing.
#include <doctest/doctest.h>

#include "test_util.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>

namespace {

using namespace kf_test;

namespace fs = std::filesystem;

struct Run {
  int status = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs genkernels with `args` (already shell-quoted as needed) in `cwd`; stdout through
// the pipe, stderr through a file.
Run genkernels(const std::string& args, const TempDir& cwd) {
  const std::string err_path = (cwd.path / ".stderr").string();
  const std::string cmd = "cd " + quote(cwd.path.string()) + " && " + quote(KF_GENKERNELS_EXE) + " " + args +
                          " 2>" + quote(err_path);
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_path, std::ios::binary);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  fs::remove(err_path);
  return r;
}

bool empty_dir(const fs::path& dir) { return fs::is_empty(dir); }

}  // namespace

TEST_SUITE("cli") {

TEST_CASE("--help") {
  TempDir cwd;
  const Run r = genkernels("--help", cwd);
  CHECK(r.status == 0);
  CHECK(contains(r.out, "--arch"));
  CHECK(contains(r.out, "--list"));
  CHECK(empty_dir(cwd.path));
}

TEST_CASE("--arch bogus: exit 2, stderr names it, nothing written") {
  TempDir cwd;
  const Run r = genkernels("--arch bogus -q", cwd);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "'bogus'"));
  CHECK(r.out.empty());
  CHECK(empty_dir(cwd.path));  // not even the default ./kforge-pack
}

TEST_CASE("--list: candidate names and a count, nothing written") {
  TempDir cwd;
  const fs::path out_dir = cwd.path / "pack-out";
  const fs::path cache = cwd.path / "cache";
  const Run r = genkernels("--list --arch gfx1151 --out " + quote(out_dir.string()) + " --cache " +
                               quote(cache.string()),
                           cwd);
  INFO("stderr: " << r.err);
  CHECK(r.status == 0);
  CHECK(contains(r.out, "gfx1151  w4a16_linear_decode_n12288_k2048_g128_bf16_sym_bm1_bn64_bk32_w4_sk1_s1"));
  CHECK(contains(r.out, "w4a16_linear_prefill_n12288_k2048_g128_bf16_sym_bm64_bn128_bk64_w4_sk1_s2  threads=128"));
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("\n([0-9]+) candidates for model qwen3-35b\n$")));
  // The count matches the listed lines.
  size_t lines = 0;
  for (size_t at = 0; (at = r.out.find("\ngfx1151  ", at)) != std::string::npos; ++at) ++lines;
  lines += r.out.rfind("gfx1151  ", 0) == 0;  // the first line has no newline before it
  CHECK(std::stoul(m[1]) == lines);
  CHECK(lines > 100);
  CHECK_FALSE(contains(r.out, "sm_90a"));
  CHECK(empty_dir(cwd.path));
}

TEST_CASE("--group-size 7x: exit 2 naming it") {
  TempDir cwd;
  const Run r = genkernels("--group-size 7x --list", cwd);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "'7x'"));
  CHECK(r.out.empty());
  CHECK(empty_dir(cwd.path));
  // A well-formed but unsupported size is refused too, by the shape check.
  const Run s = genkernels("--group-size 96 --list", cwd);
  CHECK(s.status == 2);
  CHECK(contains(s.err, "group size 96"));
}

}  // TEST_SUITE
