// Content-addressed cache of compiled code objects: the key hashes the generated
// source, every template it may include, the compiler's identity and its flags, so a
// rerun with nothing changed compiles nothing, and any change recompiles exactly what
// it touches. Failures are cached too (same inputs, same error).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"

namespace kf {

std::string sha256_hex(const std::string& data);

// Hash of the template headers `text` includes from `dir`, followed transitively
// (`#include "..."` lines; system headers are the compiler's, covered by its identity):
// a change to one family's template rebuilds that family's kernels only.
std::string include_digest(const std::string& dir, const std::string& text);

struct CompiledObject {
  bool ok = false;
  bool cached = false;
  std::string key;                // cache key (hex): what the pack stores as source_hash
  std::vector<uint8_t> object;    // code object when ok
  std::string log;                // compiler output (errors, ptxas report)
  int mma_count = -2;             // -2: not asked; -1: cannot tell; else count
};

// The cache key of a build: generated source, the digest of the templates it includes,
// compiler identity and flags. A pack stores it as source_hash, so a kernel whose key
// changed was built from other sources or by another compiler.
std::string build_key(const Backend& backend, const std::string& source_text, const std::string& template_digest);

class CompileCache {
 public:
  // Creates `dir` if needed; throws kf::Error if it cannot.
  explicit CompileCache(std::string dir);

  // Compiles `source_path` (whose text is `source_text`) unless a cached result exists.
  // With `want_mma`, also counts the kernel's matrix instructions (cached alongside).
  CompiledObject compile(const Backend& backend, const std::string& source_text,
                         const std::string& source_path, const std::string& kernel,
                         const std::string& include_dir, const std::string& template_digest,
                         bool want_mma) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// Default cache location: $KF_CACHE_DIR, else $XDG_CACHE_HOME/kforge, else ~/.cache/kforge.
std::string default_cache_dir();

}  // namespace kf
