#include "arch.h"

#include <algorithm>
#include <sstream>

#include "error.h"

namespace kf {

namespace {

const std::vector<ArchInfo>& arch_table() {
  // RDNA3 gfx1100 and RDNA3.5 gfx1151 have the 192 KiB register file per SIMD
  // (LLVM FeatureGFX11FullVGPRs: 1536 VGPRs per lane in wave32, granule 24); a WGP
  // holds 128 KiB LDS and 4 SIMD32s, 64 KiB per workgroup.
  // CDNA3 gfx942: 512 unified VGPR+AGPR per lane per SIMD, granule 8, 8 waves per SIMD,
  // 64 KiB LDS per CU.
  // Hopper sm_90a: 64K registers per SM allocated per warp in units of 256, 64 warps,
  // 32 blocks, 228 KiB shared per SM; a block may use 227 KiB only as dynamic shared
  // memory after an opt-in (the skinny kind's deep rings: Candidate::dynamic_shared),
  // 48 KiB statically. It has the warpgroup MMA (wgmma), which no other target does.
  static const std::vector<ArchInfo> table = {
      {"gfx1151", Vendor::amd, "v_wmma", 32, 65536, 131072, 4, 16, 1536, 24, 32},
      {"gfx1100", Vendor::amd, "v_wmma", 32, 65536, 131072, 4, 16, 1536, 24, 32},
      {"gfx942", Vendor::amd, "v_mfma", 64, 65536, 65536, 4, 8, 512, 8, 32},
      {"sm_90a", Vendor::nvidia, "HMMA", 32, 49152, 233472, 4, 16, 65536, 256, 32, 232448, true, 132},
  };
  return table;
}

int round_up(int v, int g) { return (v + g - 1) / g * g; }

}  // namespace

std::vector<std::string> supported_archs() {
  std::vector<std::string> names;
  for (const auto& a : arch_table()) names.push_back(a.name);
  return names;
}

std::string supported_archs_text() {
  std::string known;
  for (const auto& n : supported_archs()) known += (known.empty() ? "" : ", ") + n;
  return known;
}

const ArchInfo& arch_info(const std::string& name) {
  for (const auto& a : arch_table())
    if (a.name == name) return a;
  throw Error("unknown arch '" + name + "' (supported: " + supported_archs_text() + ")");
}

std::vector<std::string> parse_arch_list(const std::string& csv) {
  std::vector<std::string> out;
  if (!csv.empty() && csv.back() == ',') throw Error("empty entry in --arch list '" + csv + "'");
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) throw Error("empty entry in --arch list '" + csv + "'");
    arch_info(item);  // validates
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  if (out.empty()) throw Error("--arch needs at least one arch");
  return out;
}

int occupancy(const ArchInfo& arch, const KernelResources& res, int threads) {
  const int waves_per_block = (threads + arch.wave_size - 1) / arch.wave_size;
  if (res.lds_bytes > arch.max_lds_per_block || waves_per_block == 0) return 0;
  const int blocks_by_lds =
      res.lds_bytes > 0 ? arch.lds_per_cu / res.lds_bytes : arch.max_blocks_per_cu;

  if (arch.vendor == Vendor::amd) {
    const int vgprs = std::max(1, res.vgprs_or_regs);
    const int waves_by_regs =
        std::min(arch.max_waves_per_simd, arch.regs_per_simd_lane / round_up(vgprs, arch.reg_granule));
    // Workgroups are resident whole: count how many fit, then spread their waves over
    // the CU's SIMDs (rounding up: a 1-wave block still occupies a SIMD).
    const int blocks_by_regs = waves_by_regs * arch.simds_per_cu / waves_per_block;
    const int blocks = std::min({blocks_by_lds, blocks_by_regs, arch.max_blocks_per_cu});
    return (blocks * waves_per_block + arch.simds_per_cu - 1) / arch.simds_per_cu;
  }
  const int regs_per_warp = round_up(std::max(1, res.vgprs_or_regs) * arch.wave_size, arch.reg_granule);
  const int warps_by_regs = arch.regs_per_simd_lane / regs_per_warp;
  const int max_warps = arch.max_waves_per_simd * arch.simds_per_cu;
  const int blocks = std::min({blocks_by_lds, arch.max_blocks_per_cu, warps_by_regs / waves_per_block,
                               max_warps / waves_per_block});
  return (blocks * waves_per_block + arch.simds_per_cu - 1) / arch.simds_per_cu;
}

}  // namespace kf
