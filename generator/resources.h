// Resource use of one compiled kernel, read from the code object (AMDGPU) or the
// assembler's report (NVIDIA). Target-neutral: each backend fills it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kf {

struct KernelResources {
  std::string symbol;
  // AMD: VGPRs per lane as the code object states them (on gfx90a/gfx942, once AGPRs
  // are used, that is the unified count: arch VGPRs rounded to 4 plus AGPRs);
  // NVIDIA: registers per thread.
  int vgprs_or_regs = 0;
  int agprs = 0;          // AMD CDNA accumulation VGPRs (0 elsewhere)
  int sgprs = 0;          // AMD scalar registers (0 on NVIDIA)
  int lds_bytes = 0;      // static LDS / shared memory per workgroup
  int scratch_bytes = 0;  // private segment / stack frame per lane
  int spills = 0;         // AMD: VGPR + SGPR spill count; NVIDIA: spill store + load bytes
  int wave_size = 0;      // 32 or 64 (0 if the object does not say)
  // NVIDIA: ptxas made the kernel's warpgroup MMAs wait for each other ("Potential
  // Performance Loss: wgmma.mma_async instructions are serialized ...", C751x/C752x:
  // too few registers, or accumulators touched while a product is in flight).
  bool mma_serialized = false;
  // NVIDIA: ptxas fenced the accumulators around products ("warpgroup.arrive is injected
  // ... to allow use of registers in GMMA", C7519): registers a product uses were touched
  // where it could not prove the product done, so the products no longer overlap either.
  bool mma_fenced = false;
};

namespace amdgpu {
// Reads the NT_AMDGPU_METADATA note (msgpack) of an AMDGPU code object and returns the
// resources of `kernel` (its `.name`). Throws kf::Error if the ELF or note is malformed
// or the kernel is absent, naming what was missing.
KernelResources read_resources(const std::vector<uint8_t>& elf, const std::string& kernel);
// All kernels of the object (used by tests and `--list`-style inspection).
std::vector<KernelResources> read_all_resources(const std::vector<uint8_t>& elf);
}  // namespace amdgpu

namespace nvptx {
// Parses `ptxas -v` output (as printed through nvcc -Xptxas -v) for `kernel`:
// "Used N registers", "... bytes smem", "N bytes stack frame, N bytes spill stores,
// N bytes spill loads", and whether a line names the kernel's wgmma instructions as
// serialized. Throws kf::Error if the kernel's lines are absent.
KernelResources parse_ptxas_report(const std::string& report, const std::string& kernel);
// Registers per thread of `kernel` as recorded in the cubin itself (the EIATTR_REGCOUNT
// record of .nv.info; sm_90+ cubins no longer put it in the .text section's sh_info);
// used to cross-check the report. Throws if absent.
int cubin_register_count(const std::vector<uint8_t>& cubin, const std::string& kernel);
}  // namespace nvptx

}  // namespace kf
