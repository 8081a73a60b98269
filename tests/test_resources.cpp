// Resource readers against real compiler output committed under data/resources/ (each
// .cu there says how its artifacts were built). The expected numbers are the ones
// `llvm-readelf-19 --notes` and `ptxas -v` printed for those files. Damaged inputs must
// fail with kf::Error, never crash or throw anything else.
#include <doctest/doctest.h>

#include "test_util.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "error.h"
#include "resources.h"

namespace {

using namespace kf_test;

const std::string kDir = KF_TEST_DATA_DIR "/data/resources/";

std::vector<uint8_t> bytes(const std::string& name) {
  std::ifstream in(kDir + name, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << kDir + name);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string text(const std::string& name) {
  const std::vector<uint8_t> b = bytes(name);
  return std::string(b.begin(), b.end());
}

// Outcome of one call on damaged input: 'k' kf::Error, 'o' other exception, 'r' returned.
template <class F>
char outcome(F f) {
  try {
    f();
  } catch (const kf::Error&) {
    return 'k';
  } catch (...) {
    return 'o';
  }
  return 'r';
}

// Offset of the first occurrence of `needle` in `hay`, or npos.
size_t search(const std::vector<uint8_t>& hay, const std::string& needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (std::memcmp(hay.data() + i, needle.data(), needle.size()) == 0) return i;
  return std::string::npos;
}

}  // namespace

TEST_SUITE("resources") {

// ---- AMDGPU -------------------------------------------------------------------------

TEST_CASE("amdgpu: gfx1151 object lists both kernels with wave32 and no AGPR field") {
  const auto all = kf::amdgpu::read_all_resources(bytes("amd_gfx1151.hsaco"));
  REQUIRE(all.size() == 2);
  CHECK(all[0].symbol == "scale");
  CHECK(all[1].symbol == "add");

  const auto& add = all[1];
  CHECK(add.vgprs_or_regs == 3);
  CHECK(add.sgprs == 8);
  CHECK(add.agprs == 0);  // RDNA objects carry no .agpr_count at all
  CHECK(add.lds_bytes == 0);
  CHECK(add.scratch_bytes == 0);
  CHECK(add.spills == 0);
  CHECK(add.wave_size == 32);

  const auto scale = kf::amdgpu::read_resources(bytes("amd_gfx1151.hsaco"), "scale");
  CHECK(scale.symbol == "scale");
  CHECK(scale.vgprs_or_regs == 2);
  CHECK(scale.sgprs == 4);
}

TEST_CASE("amdgpu: gfx942 LDS, scratch, spills and AGPRs") {
  const auto elf = bytes("amd_gfx942.hsaco");

  const auto lds = kf::amdgpu::read_resources(elf, "lds_reverse");
  CHECK(lds.lds_bytes == 1024);  // __attribute__((shared)) float[256]
  CHECK(lds.scratch_bytes == 0);
  CHECK(lds.vgprs_or_regs == 3);
  CHECK(lds.sgprs == 8);
  CHECK(lds.wave_size == 64);

  const auto scratch = kf::amdgpu::read_resources(elf, "scratch_lookup");
  CHECK(scratch.scratch_bytes == 272);  // dynamically indexed private float[64]
  CHECK(scratch.lds_bytes == 0);
  CHECK(scratch.vgprs_or_regs == 66);
  CHECK(scratch.sgprs == 44);
  CHECK(scratch.spills == 0);
  CHECK(scratch.agprs == 0);

  const auto spill = kf::amdgpu::read_resources(elf, "spill_sum");
  CHECK(spill.spills == 67);           // .vgpr_spill_count 67 + .sgpr_spill_count 0
  CHECK(spill.agprs == 24);
  CHECK(spill.vgprs_or_regs == 48);    // gfx942: unified count, arch VGPRs + AGPRs
  CHECK(spill.scratch_bytes == 272);
  CHECK(spill.sgprs == 8);
  CHECK(spill.wave_size == 64);
}

TEST_CASE("amdgpu: an absent kernel is named, with the kernels that exist") {
  const std::string msg =
      error_of([] { kf::amdgpu::read_resources(bytes("amd_gfx1151.hsaco"), "scal"); });
  CHECK(msg.find("'scal'") != std::string::npos);
  CHECK(msg.find("has: scale, add") != std::string::npos);
}

TEST_CASE("amdgpu: inputs that are not AMDGPU code objects") {
  CHECK(error_of([] { kf::amdgpu::read_all_resources({}); }).find("not an ELF") != std::string::npos);
  const std::string junk = "this is not an ELF file, just text that is long enough....";
  CHECK(error_of([&] { kf::amdgpu::read_all_resources({junk.begin(), junk.end()}); })
            .find("not an ELF") != std::string::npos);
  CHECK(error_of([] { kf::amdgpu::read_all_resources(bytes("nv_sm90a.cubin")); })
            .find("not an AMDGPU code object") != std::string::npos);

  // An AMDGPU ELF whose note is not the metadata one: retype the note.
  auto elf = bytes("amd_gfx1151.hsaco");
  const size_t owner = search(elf, std::string("AMDGPU\0", 7));
  REQUIRE(owner != std::string::npos);
  elf[owner - 4] = 33;  // n_type sits just before the name
  CHECK(error_of([&] { kf::amdgpu::read_all_resources(elf); }).find("no NT_AMDGPU_METADATA note") !=
        std::string::npos);
}

TEST_CASE("amdgpu: every truncation of a code object throws kf::Error") {
  // lld writes the section header table last, so every strict prefix loses part of it.
  for (const char* name : {"amd_gfx1151.hsaco", "amd_gfx942.hsaco"}) {
    const auto elf = bytes(name);
    size_t bad = 0, first_bad = 0;
    for (size_t len = 0; len < elf.size(); ++len) {
      const std::vector<uint8_t> cut(elf.begin(), elf.begin() + len);
      if (outcome([&] { kf::amdgpu::read_all_resources(cut); }) != 'k' && bad++ == 0) first_bad = len;
    }
    INFO(name << ": first prefix length without kf::Error: " << first_bad);
    CHECK(bad == 0);
  }
}

TEST_CASE("amdgpu: corrupting any single byte never crashes or escapes as another exception") {
  const auto elf = bytes("amd_gfx942.hsaco");
  size_t other = 0, first_other = 0;
  for (size_t i = 0; i < elf.size(); ++i) {
    for (uint8_t x : {uint8_t{0xff}, uint8_t{0x80}, uint8_t{0x01}}) {
      auto bad = elf;
      bad[i] ^= x;
      if (outcome([&] { kf::amdgpu::read_all_resources(bad); }) == 'o' && other++ == 0) first_other = i;
    }
  }
  INFO("first offset giving a non-kf exception: " << first_other);
  CHECK(other == 0);
}

TEST_CASE("amdgpu: a corrupt msgpack length is rejected without a huge allocation") {
  auto elf = bytes("amd_gfx942.hsaco");
  const size_t owner = search(elf, std::string("AMDGPU\0", 7));
  REQUIRE(owner != std::string::npos);
  const size_t desc = owner + 8;  // name padded to 4 bytes
  REQUIRE(elf[desc] >= 0x80);     // the root is a fixmap
  // array32 with 2^32-1 elements: only the limit derived from the note size stops the
  // unpacker from reserving ~100 GB for it.
  for (int i = 0; i < 5; ++i) elf[desc + i] = i == 0 ? 0xdd : 0xff;
  CHECK(error_of([&] { kf::amdgpu::read_all_resources(elf); }).find("not valid msgpack") !=
        std::string::npos);
}

TEST_CASE("amdgpu: a missing required field names the kernel and the field") {
  auto elf = bytes("amd_gfx942.hsaco");
  const size_t key = search(elf, ".vgpr_count");  // the first kernel's, lds_reverse
  REQUIRE(key != std::string::npos);
  elf[key + 1] = 'w';  // ".wgpr_count": same length, so the msgpack stays well formed
  const std::string msg = error_of([&] { kf::amdgpu::read_all_resources(elf); });
  CHECK(msg.find("lds_reverse") != std::string::npos);
  CHECK(msg.find(".vgpr_count") != std::string::npos);
}

// ---- NVIDIA: ptxas -v report ----------------------------------------------------------

TEST_CASE("nvptx: ptxas report values for each kernel") {
  const std::string report = text("nv_sm90a.ptxas.txt");

  const auto spill = kf::nvptx::parse_ptxas_report(report, "spill_sum");
  CHECK(spill.symbol == "spill_sum");
  CHECK(spill.vgprs_or_regs == 24);
  CHECK(spill.scratch_bytes == 256);
  CHECK(spill.spills == 260 + 280);
  CHECK(spill.lds_bytes == 0);
  CHECK(spill.wave_size == 32);
  CHECK(spill.sgprs == 0);
  CHECK(spill.agprs == 0);

  const auto stack = kf::nvptx::parse_ptxas_report(report, "stack_lookup");
  CHECK(stack.vgprs_or_regs == 14);
  CHECK(stack.scratch_bytes == 256);
  CHECK(stack.spills == 0);

  const auto smem = kf::nvptx::parse_ptxas_report(report, "smem_reverse");
  CHECK(smem.vgprs_or_regs == 10);
  CHECK(smem.lds_bytes == 1024);
  CHECK(smem.scratch_bytes == 0);

  const auto axpy = kf::nvptx::parse_ptxas_report(report, "axpy");
  CHECK(axpy.vgprs_or_regs == 10);
  CHECK(axpy.lds_bytes == 0);

  // sm_80 reports add "N bytes cmem[0]" to the Used line.
  const auto scale = kf::nvptx::parse_ptxas_report(text("nv_sm80.ptxas.txt"), "scale");
  CHECK(scale.vgprs_or_regs == 8);
  CHECK(scale.lds_bytes == 0);
}

TEST_CASE("nvptx: a non-inlined callee's properties do not leak into the entry") {
  // Real CUDA 13 output for an entry calling a __noinline__ function (-rdc=true): the
  // callee's block follows the entry's and has its own stack frame.
  const std::string report =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Function properties for _Z6helperPfi$1\n"
      "    136 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Compile time = 5.332 ms\n"
      "ptxas info    : Compiling entry function 'caller' for 'sm_90a'\n"
      "ptxas info    : Function properties for caller\n"
      "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 24 registers, used 0 barriers\n"
      "ptxas info    : Compile time = 1.893 ms\n"
      "ptxas info    : Function properties for _Z6helperPfi\n"
      "    136 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Compile time = 3.447 ms\n";
  const auto r = kf::nvptx::parse_ptxas_report(report, "caller");
  CHECK(r.vgprs_or_regs == 24);
  CHECK(r.scratch_bytes == 0);
}

TEST_CASE("nvptx: ptxas's notice that a kernel's wgmma instructions are serialized") {
  // As CUDA 13 prints it, before the entry's own block, naming the function; another
  // kernel's notice in the same report does not mark this one.
  const std::string report =
      "ptxas info    : (C7512) Potential Performance Loss: wgmma.mma_async instructions are serialized due to "
      "insufficient register resources for the function 'wide_tile'\n"
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'wide_tile' for 'sm_90a'\n"
      "ptxas info    : Function properties for wide_tile\n"
      "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 168 registers, used 1 barriers\n"
      "ptxas info    : Compile time = 361.091 ms\n"
      "ptxas info    : Compiling entry function 'wide_tile_2' for 'sm_90a'\n"
      "ptxas info    : Function properties for wide_tile_2\n"
      "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 90 registers, used 1 barriers\n"
      "ptxas info    : Compile time = 300.0 ms\n";
  CHECK(kf::nvptx::parse_ptxas_report(report, "wide_tile").mma_serialized);
  CHECK_FALSE(kf::nvptx::parse_ptxas_report(report, "wide_tile_2").mma_serialized);
  CHECK_FALSE(kf::nvptx::parse_ptxas_report(text("nv_sm90a.ptxas.txt"), "axpy").mma_serialized);
}

TEST_CASE("nvptx: ptxas's notice that it fenced a kernel's wgmma accumulators") {
  // As CUDA 13 prints it, once per fence, before the entry's block; another kernel's
  // notice does not mark this one, nor does it mark the products serialized.
  const std::string report =
      "ptxas info    : (C7519) warpgroup.arrive is injected in around line 1087 by compiler to allow use of "
      "registers in GMMA in function 'narrow_tile'\n"
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'narrow_tile' for 'sm_90a'\n"
      "ptxas info    : Function properties for narrow_tile\n"
      "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 122 registers, used 1 barriers\n"
      "ptxas info    : Compiling entry function 'narrow_tile_2' for 'sm_90a'\n"
      "ptxas info    : Function properties for narrow_tile_2\n"
      "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 90 registers, used 1 barriers\n";
  const kf::KernelResources fenced = kf::nvptx::parse_ptxas_report(report, "narrow_tile");
  CHECK(fenced.mma_fenced);
  CHECK_FALSE(fenced.mma_serialized);
  CHECK_FALSE(kf::nvptx::parse_ptxas_report(report, "narrow_tile_2").mma_fenced);
}

TEST_CASE("nvptx: absent kernels and damaged reports") {
  const std::string report = text("nv_sm90a.ptxas.txt");
  const std::string msg = error_of([&] { kf::nvptx::parse_ptxas_report(report, "axp"); });
  CHECK(msg.find("'axp'") != std::string::npos);
  CHECK(msg.find("has: spill_sum, stack_lookup, smem_reverse, axpy") != std::string::npos);

  CHECK(error_of([] { kf::nvptx::parse_ptxas_report("", "axpy"); }).find("'axpy'") != std::string::npos);

  // Cut just before axpy's Used line: the kernel is there but its register count is not.
  const std::string cut = report.substr(0, report.rfind("ptxas info    : Used 10 registers, used 0 barriers\n"));
  CHECK(error_of([&] { kf::nvptx::parse_ptxas_report(cut, "axpy"); }).find("Used N registers") !=
        std::string::npos);

  std::string huge = report;
  const std::string used = "Used 10 registers, used 0 barriers\n";
  huge.replace(huge.rfind(used), used.size(), "Used 99999999999 registers, used 0 barriers\n");
  CHECK(error_of([&] { kf::nvptx::parse_ptxas_report(huge, "axpy"); }).find("out of range") !=
        std::string::npos);

  // Every prefix either parses or fails with kf::Error.
  size_t other = 0;
  for (size_t len = 0; len <= report.size(); ++len)
    for (const char* k : {"spill_sum", "axpy"})
      if (outcome([&] { kf::nvptx::parse_ptxas_report(report.substr(0, len), k); }) == 'o') ++other;
  CHECK(other == 0);
}

// ---- NVIDIA: cubin ----------------------------------------------------------------------

TEST_CASE("nvptx: cubin register count matches the ptxas report") {
  const auto cubin = bytes("nv_sm90a.cubin");
  const std::string report = text("nv_sm90a.ptxas.txt");
  for (const char* k : {"spill_sum", "stack_lookup", "smem_reverse", "axpy"}) {
    INFO(k);
    CHECK(kf::nvptx::cubin_register_count(cubin, k) ==
          kf::nvptx::parse_ptxas_report(report, k).vgprs_or_regs);
  }
  CHECK(kf::nvptx::cubin_register_count(bytes("nv_sm80.cubin"), "scale") ==
        kf::nvptx::parse_ptxas_report(text("nv_sm80.ptxas.txt"), "scale").vgprs_or_regs);
}

TEST_CASE("nvptx: the sh_info fallback holds before sm_90 and is absent after") {
  // Rename every EIATTR_REGCOUNT record (format 0x04, attribute 0x2f, size 8) to an
  // unknown attribute so only the .text section's sh_info is left.
  auto strip = [](std::vector<uint8_t> b) {
    for (size_t i = 0; i + 4 <= b.size(); ++i)
      if (b[i] == 0x04 && b[i + 1] == 0x2f && b[i + 2] == 0x08 && b[i + 3] == 0x00) b[i + 1] = 0x7f;
    return b;
  };
  CHECK(kf::nvptx::cubin_register_count(strip(bytes("nv_sm80.cubin")), "scale") == 8);
  const std::string msg =
      error_of([&] { kf::nvptx::cubin_register_count(strip(bytes("nv_sm90a.cubin")), "axpy"); });
  CHECK(msg.find("no register count") != std::string::npos);
}

TEST_CASE("nvptx: damaged or foreign cubins") {
  const auto cubin = bytes("nv_sm90a.cubin");
  const std::string msg = error_of([&] { kf::nvptx::cubin_register_count(cubin, "axp"); });
  CHECK(msg.find("'axp'") != std::string::npos);
  CHECK(msg.find("axpy") != std::string::npos);
  CHECK(error_of([] { kf::nvptx::cubin_register_count({}, "axpy"); }).find("not an ELF") !=
        std::string::npos);
  CHECK(error_of([] { kf::nvptx::cubin_register_count(bytes("amd_gfx942.hsaco"), "spill_sum"); })
            .find("not a cubin") != std::string::npos);

  // Prefixes: the cubin keeps program headers after the section headers, so long prefixes
  // may still read correctly; anything else must be kf::Error.
  const int want = kf::nvptx::cubin_register_count(cubin, "spill_sum");
  size_t bad = 0;
  for (size_t len = 0; len < cubin.size(); ++len) {
    const std::vector<uint8_t> cut(cubin.begin(), cubin.begin() + len);
    int got = -1;
    const char o = outcome([&] { got = kf::nvptx::cubin_register_count(cut, "spill_sum"); });
    if (o == 'o' || (o == 'r' && got != want)) ++bad;
  }
  CHECK(bad == 0);

  size_t other = 0;
  for (size_t i = 0; i < cubin.size(); ++i) {
    auto b = cubin;
    b[i] ^= 0xff;
    if (outcome([&] { kf::nvptx::cubin_register_count(b, "spill_sum"); }) == 'o') ++other;
  }
  CHECK(other == 0);
}

}  // TEST_SUITE
