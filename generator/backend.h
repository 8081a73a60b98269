// A device compiler for one vendor: how to turn a generated source into a code object,
// who the compiler is (for the cache key and the pack's provenance), and how to read
// the object's resource use back.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "arch.h"
#include "resources.h"

namespace kf {

// Where to find the tools; empty = discover (environment KF_CLANG / KF_NVCC, then PATH).
struct ToolPaths {
  std::string clang;
  std::string nvcc;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // e.g. "Debian clang version 19.1.7 (3+b1)"; fixed for the backend's lifetime.
  virtual const std::string& compiler_identity() const = 0;
  // Flags that change the object, for the cache key.
  virtual std::string flags() const = 0;
  virtual std::vector<std::string> compile_command(const std::string& source,
                                                   const std::string& object,
                                                   const std::string& include_dir) const = 0;
  // `log` is the compiler's output (the ptxas report on NVIDIA).
  virtual KernelResources read_resources(const std::vector<uint8_t>& object, const std::string& log,
                                         const std::string& kernel) const = 0;
  // Number of matrix instructions in `kernel`, or -1 when no disassembler is at hand.
  virtual int count_mma(const std::vector<uint8_t>& object, const std::string& kernel) const = 0;
};

// Throws kf::Error when the compiler is missing or too old, naming what was looked for
// and how to install it.
std::unique_ptr<Backend> make_backend(const ArchInfo& arch, const ToolPaths& tools);

namespace amdgpu {
std::unique_ptr<Backend> make_backend(const ArchInfo& arch, const ToolPaths& tools);
}
namespace nvptx {
std::unique_ptr<Backend> make_backend(const ArchInfo& arch, const ToolPaths& tools);
}

}  // namespace kf
