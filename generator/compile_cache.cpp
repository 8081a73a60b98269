#include "compile_cache.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <regex>
#include <thread>

#include "error.h"
#include "process.h"

namespace fs = std::filesystem;

namespace kf {

namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

// Write-then-rename, so a killed run never leaves a half-written cache entry.
void write_file_atomic(const std::string& path, const std::string& data) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) throw Error("cannot write cache file '" + tmp + "'");
  }
  fs::rename(tmp, path);
}

// Bump when the way matrix instructions are counted changes: old counts are then
// recomputed instead of trusted.
const char* const kMmaSuffix = ".mma.v2";

}  // namespace

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

std::string include_digest(const std::string& dir, const std::string& text) {
  static const std::regex include_re("^[ \\t]*#[ \\t]*include[ \\t]*\"([^\"]+)\"");
  auto includes_of = [](const std::string& t) {
    std::vector<std::string> out;
    std::stringstream ss(t);
    std::smatch m;
    for (std::string line; std::getline(ss, line);)
      if (std::regex_search(line, m, include_re)) out.push_back(m[1]);
    return out;
  };
  std::map<std::string, std::string> files;  // sorted: the digest does not depend on order
  std::vector<std::string> todo = includes_of(text);
  while (!todo.empty()) {
    const std::string name = todo.back();
    todo.pop_back();
    if (files.count(name)) continue;
    std::string content;
    if (!read_file(dir + "/" + name, content)) continue;  // not a template: the compiler's own
    files[name] = content;
    for (const auto& inc : includes_of(content)) todo.push_back(inc);
  }
  std::string all;
  for (const auto& [name, content] : files) all += name + '\0' + std::to_string(content.size()) + '\0' + content;
  return sha256_hex(all);
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("KF_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/kforge";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/kforge";
  return ".kforge-cache";
}

std::string build_key(const Backend& backend, const std::string& source_text, const std::string& template_digest) {
  return sha256_hex(source_text + '\0' + template_digest + '\0' + backend.compiler_identity() + '\0' +
                    backend.flags());
}

CompileCache::CompileCache(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_))
    throw Error("cannot create compile cache directory '" + dir_ + "': " + ec.message());
}

CompiledObject CompileCache::compile(const Backend& backend, const std::string& source_text,
                                     const std::string& source_path, const std::string& kernel,
                                     const std::string& include_dir,
                                     const std::string& template_digest, bool want_mma) const {
  CompiledObject r;
  r.key = build_key(backend, source_text, template_digest);
  const std::string base = dir_ + "/" + r.key.substr(0, 2) + "/" + r.key;
  fs::create_directories(dir_ + "/" + r.key.substr(0, 2));

  std::string text;
  if (read_file(base + ".err", text)) {
    r.cached = true;
    r.log = text;
    return r;
  }
  if (read_file(base + ".co", text)) {
    r.cached = true;
    r.ok = true;
    r.object.assign(text.begin(), text.end());
    read_file(base + ".log", r.log);
  } else {
    static std::atomic<unsigned> counter{0};
    const std::string tmp_obj = base + ".obj.tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
    const ProcessResult p = run_process(backend.compile_command(source_path, tmp_obj, include_dir));
    r.log = p.output;
    std::string obj;
    if (p.exit_code != 0 || !read_file(tmp_obj, obj) || obj.empty()) {
      std::remove(tmp_obj.c_str());
      if (r.log.empty()) r.log = "compiler exited with status " + std::to_string(p.exit_code);
      // A compiler that could not start is an environment problem, not a property of
      // the source: do not cache it.
      if (p.exit_code >= 0) write_file_atomic(base + ".err", r.log);
      return r;
    }
    std::remove(tmp_obj.c_str());
    write_file_atomic(base + ".log", r.log);
    write_file_atomic(base + ".co", obj);
    r.ok = true;
    r.object.assign(obj.begin(), obj.end());
  }
  if (want_mma) {
    if (read_file(base + kMmaSuffix, text)) {
      r.mma_count = std::stoi(text);
    } else {
      r.mma_count = backend.count_mma(r.object, kernel);
      if (r.mma_count >= 0) write_file_atomic(base + kMmaSuffix, std::to_string(r.mma_count));
    }
  }
  return r;
}

}  // namespace kf
