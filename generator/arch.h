// The GPU targets kforge generates for, and the per-arch limits that static pruning
// and occupancy need. Numbers come from the vendors' ISA documents and LLVM's target
// descriptions; `occupancy()` turns a kernel's resource use into resident waves.
#pragma once
#include <string>
#include <vector>

#include "resources.h"

namespace kf {

enum class Vendor { amd, nvidia };

struct ArchInfo {
  std::string name;         // gfx1151, gfx1100, gfx942, sm_90a
  Vendor vendor;
  std::string mma;          // matrix instruction the prefill kind uses (for reports/checks)
  int wave_size;            // threads per wave/warp
  int max_lds_per_block;    // bytes a workgroup may allocate
  int lds_per_cu;           // bytes shared by the workgroups resident on one CU/WGP/SM
  int simds_per_cu;         // issue units per CU/WGP/SM (AMD SIMDs, NVIDIA schedulers)
  int max_waves_per_simd;   // hardware wave slots per issue unit
  int regs_per_simd_lane;   // AMD: VGPRs per lane per SIMD; NVIDIA: 32-bit registers per SM
  int reg_granule;          // allocation unit (AMD VGPRs per lane; NVIDIA registers per warp)
  int max_blocks_per_cu;    // hardware workgroup/block slots per CU/SM
  int max_dynamic_lds_per_block = 0;  // with a launch-time opt-in (NVIDIA); 0: none beyond max_lds_per_block
  bool warpgroup_mma = false;         // Hopper's wgmma (the w4a16_linear wgmma kind)
  // SMs of the arch's largest common part (H100 SXM and H200: 132): the most blocks a
  // stream-K grid is built for (a launch takes fewer on a smaller part); 0: no stream-K.
  int stream_blocks = 0;
};

// Throws kf::Error naming the unknown arch and the supported ones.
const ArchInfo& arch_info(const std::string& name);
std::vector<std::string> supported_archs();
// "gfx1151, gfx1100, gfx942, sm_90a": the supported archs for an error message.
std::string supported_archs_text();
// "gfx1151,sm_90a" -> {"gfx1151", "sm_90a"}, each checked, duplicates removed.
std::vector<std::string> parse_arch_list(const std::string& csv);

// Resident waves (warps) per SIMD (scheduler) for a kernel with these resources and
// `threads` per block; 0 when the block cannot be resident at all.
int occupancy(const ArchInfo& arch, const KernelResources& res, int threads);

}  // namespace kf
