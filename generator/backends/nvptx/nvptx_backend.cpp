// NVIDIA through nvcc: one cubin per kernel for sm_90a; ptxas prints the resource
// report we read back (registers, shared memory, stack, spills).
#include <cstdlib>
#include <regex>

#include "backend.h"
#include "error.h"
#include "process.h"

namespace kf {
namespace nvptx {

namespace {

std::string gencode(const std::string& arch) {
  const std::string sm = arch.substr(3);  // "90a"
  return "-gencode=arch=compute_" + sm + ",code=sm_" + sm;
}

class NvptxBackend : public Backend {
 public:
  NvptxBackend(const ArchInfo& arch, std::string nvcc, std::string identity)
      : arch_(arch), nvcc_(std::move(nvcc)), identity_(std::move(identity)) {}

  const std::string& compiler_identity() const override { return identity_; }

  std::string flags() const override { return "-cubin " + gencode(arch_.name) + " -O3 -std=c++17 -Xptxas -v"; }

  std::vector<std::string> compile_command(const std::string& source, const std::string& object,
                                           const std::string& include_dir) const override {
    return {nvcc_, "-cubin", gencode(arch_.name), "-O3", "-std=c++17", "-Xptxas", "-v",
            "-I" + include_dir, "-o", object, source};
  }

  KernelResources read_resources(const std::vector<uint8_t>& object, const std::string& log,
                                 const std::string& kernel) const override {
    KernelResources r = parse_ptxas_report(log, kernel);
    const int regs = cubin_register_count(object, kernel);
    if (regs != r.vgprs_or_regs)
      throw Error("ptxas report says " + std::to_string(r.vgprs_or_regs) + " registers for '" + kernel +
                  "' but its cubin says " + std::to_string(regs));
    return r;
  }

  // No SASS disassembler is assumed on the build machine; the device checks HMMA there.
  int count_mma(const std::vector<uint8_t>&, const std::string&) const override { return -1; }

 private:
  ArchInfo arch_;
  std::string nvcc_, identity_;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const ArchInfo& arch, const ToolPaths& tools) {
  std::string nvcc = tools.nvcc;
  if (nvcc.empty() && std::getenv("KF_NVCC")) nvcc = std::getenv("KF_NVCC");
  const std::vector<std::string> names =
      nvcc.empty() ? std::vector<std::string>{"nvcc", "/usr/local/cuda/bin/nvcc"} : std::vector<std::string>{nvcc};
  const std::string found = find_program(names);
  if (found.empty())
    throw Error("no nvcc for " + arch.name + ": looked for " +
                (nvcc.empty() ? std::string("nvcc on PATH and /usr/local/cuda/bin/nvcc") : "'" + nvcc + "'") +
                " (install the CUDA toolkit 12.0 or newer, or pass --nvcc)");
  const ProcessResult v = run_process({found, "--version"});
  std::smatch m;
  if (v.exit_code != 0 || !std::regex_search(v.output, m, std::regex("release ([0-9]+)\\.([0-9]+)[^\\n]*")))
    throw Error("'" + found + "' does not look like nvcc: '" + v.output.substr(0, 200) + "'");
  if (std::stoi(m[1]) < 12)
    throw Error("'" + found + "' is CUDA " + std::string(m[1]) + "." + std::string(m[2]) +
                "; sm_90a needs CUDA 12.0 or newer");
  return std::make_unique<NvptxBackend>(arch, found, "nvcc " + m.str(0));
}

}  // namespace nvptx
}  // namespace kf
