// AMDGPU through clang's HIP front end: device-only, no HIP headers and no ROCm device
// libraries (-nogpuinc -nogpulib), linked by lld into a code object (.hsaco).
#include <cstdlib>
#include <fstream>
#include <regex>

#include "backend.h"
#include "error.h"
#include "process.h"

namespace kf {
namespace amdgpu {

namespace {

class AmdgpuBackend : public Backend {
 public:
  AmdgpuBackend(const ArchInfo& arch, std::string clang, std::string identity, std::string objdump)
      : arch_(arch), clang_(std::move(clang)), identity_(std::move(identity)),
        objdump_(std::move(objdump)) {}

  const std::string& compiler_identity() const override { return identity_; }

  std::string flags() const override {
    std::string joined;
    for (const auto& f : device_flags()) joined += (joined.empty() ? "" : " ") + f;
    return joined;
  }

  std::vector<std::string> compile_command(const std::string& source, const std::string& object,
                                           const std::string& include_dir) const override {
    std::vector<std::string> cmd = {clang_};
    for (const auto& f : device_flags()) cmd.push_back(f);
    for (const auto& a : {"-I" + include_dir, std::string("-o"), object, source}) cmd.push_back(a);
    return cmd;
  }

  KernelResources read_resources(const std::vector<uint8_t>& object, const std::string&,
                                 const std::string& kernel) const override {
    return amdgpu::read_resources(object, kernel);
  }

  int count_mma(const std::vector<uint8_t>& object, const std::string& kernel) const override {
    if (objdump_.empty()) return -1;
    char tmpl[] = "/tmp/kforge-mma-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) return -1;
    {
      std::ofstream f(tmpl, std::ios::binary);
      f.write(reinterpret_cast<const char*>(object.data()), static_cast<std::streamsize>(object.size()));
    }
    const ProcessResult r = run_process({objdump_, "-d", "--disassemble-symbols=" + kernel, tmpl});
    std::remove(tmpl);
    if (r.exit_code != 0) return -1;
    int count = 0;
    for (size_t at = 0; (at = r.output.find("v_wmma_", at)) != std::string::npos; ++at) ++count;
    for (size_t at = 0; (at = r.output.find("v_mfma_", at)) != std::string::npos; ++at) ++count;
    return count;
  }

 private:
  // -fuse-cuid=none: no per-source hash in the object (clang names a variable after one),
  // so a template change that leaves a kernel's code alone leaves its code object byte
  // for byte the same, and its measurements stand (Pack::drop_stale_results).
  std::vector<std::string> device_flags() const {
    return {"-x", "hip", "--offload-arch=" + arch_.name, "--cuda-device-only", "-nogpulib", "-nogpuinc", "-O3",
            "-std=c++17", "--no-gpu-bundle-output", "-fuse-cuid=none"};
  }

  ArchInfo arch_;
  std::string clang_, identity_, objdump_;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const ArchInfo& arch, const ToolPaths& tools) {
  std::string clang = tools.clang;
  if (clang.empty() && std::getenv("KF_CLANG")) clang = std::getenv("KF_CLANG");
  const std::vector<std::string> names =
      clang.empty() ? std::vector<std::string>{"clang++-19", "clang-19", "/usr/lib/llvm-19/bin/clang++"}
                    : std::vector<std::string>{clang};
  const std::string found = find_program(names);
  if (found.empty())
    throw Error("no clang for " + arch.name + ": looked for " +
                (clang.empty() ? std::string("clang++-19, clang-19 on PATH") : "'" + clang + "'") +
                " (install clang-19 lld-19 llvm-19, e.g. with tools/bootstrap.sh, or pass --clang)");
  const ProcessResult v = run_process({found, "--version"});
  const std::string first_line = v.output.substr(0, v.output.find('\n'));
  std::smatch m;
  if (v.exit_code != 0 || !std::regex_search(first_line, m, std::regex("clang version ([0-9]+)")))
    throw Error("'" + found + "' does not look like clang: '" + first_line + "'");
  if (std::stoi(m[1]) < 19)
    throw Error("'" + found + "' is clang " + std::string(m[1]) + "; kforge needs clang 19 or newer for " +
                arch.name);
  std::string objdump = find_program({"llvm-objdump-19", "/usr/lib/llvm-19/bin/llvm-objdump"});
  return std::make_unique<AmdgpuBackend>(arch, found, first_line, objdump);
}

}  // namespace amdgpu
}  // namespace kf
