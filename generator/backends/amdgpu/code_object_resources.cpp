// Reads per-kernel resource use out of an AMDGPU code object: the NT_AMDGPU_METADATA
// note holds a msgpack map (code object v3+) whose "amdhsa.kernels" array has one map
// per kernel. Everything read from the file is bounds-checked, because code objects
// come from caches and tools we do not control; a bad one must give kf::Error, never a
// crash or a silently wrong number.
#include "resources.h"

#include <elf.h>

#include <climits>
#include <cstring>
#include <exception>

#include "error.h"

// Only the core unpacker is used; keep Boost headers out of this translation unit.
#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

namespace kf::amdgpu {
namespace {

// <elf.h> has EM_AMDGPU but not the note type (LLVM's BinaryFormat/ELF.h defines it).
constexpr uint32_t kNtAmdgpuMetadata = 32;

// A read-only window on the file bytes that refuses out-of-range reads.
struct Bytes {
  const uint8_t* data;
  size_t size;

  bool contains(uint64_t off, uint64_t len) const {
    return off <= size && len <= size - off;
  }
  template <class T>
  T read(uint64_t off, const char* what) const {
    if (!contains(off, sizeof(T)))
      throw Error(std::string("AMDGPU code object truncated: ") + what + " lies past the end of the file");
    T v;
    std::memcpy(&v, data + off, sizeof(T));  // memcpy: the file gives no alignment guarantee
    return v;
  }
};

struct Range {
  uint64_t off, size, align;
};

// Checks the ELF header and tables, then returns the byte ranges that hold notes: the
// SHT_NOTE sections, else the PT_NOTE segments (a stripped object may lack sections).
std::vector<Range> note_ranges(const Bytes& f) {
  if (f.size < EI_NIDENT || std::memcmp(f.data, ELFMAG, SELFMAG) != 0)
    throw Error("AMDGPU code object is not an ELF file (bad magic)");
  if (f.data[EI_CLASS] != ELFCLASS64 || f.data[EI_DATA] != ELFDATA2LSB)
    throw Error("AMDGPU code object is not a little-endian ELF64 file");
  const auto eh = f.read<Elf64_Ehdr>(0, "ELF header");
  if (eh.e_machine != EM_AMDGPU)
    throw Error("ELF file is not an AMDGPU code object (e_machine " + std::to_string(eh.e_machine) +
                ", expected " + std::to_string(EM_AMDGPU) + ")");

  // Both tables are validated even though only one may be used: a table that runs past
  // the end means the file was truncated, and we would rather say so than read on.
  auto check_table = [&](uint64_t off, uint64_t num, uint64_t entsize, uint64_t need,
                         const char* what) {
    if (num == 0) return;
    if (entsize < need)
      throw Error(std::string("AMDGPU code object: ") + what + " entry size " +
                  std::to_string(entsize) + " is too small");
    if (!f.contains(off, num * entsize))  // num, entsize < 2^16: no overflow
      throw Error(std::string("AMDGPU code object truncated: ") + what +
                  " table lies past the end of the file");
  };
  check_table(eh.e_phoff, eh.e_phnum, eh.e_phentsize, sizeof(Elf64_Phdr), "program header");
  check_table(eh.e_shoff, eh.e_shnum, eh.e_shentsize, sizeof(Elf64_Shdr), "section header");

  auto checked = [&](uint64_t off, uint64_t size, uint64_t align, const char* what) {
    if (!f.contains(off, size))
      throw Error(std::string("AMDGPU code object truncated: ") + what + " lies past the end of the file");
    // Notes are 4-byte aligned unless the container asks for 8 (as the gABI allows).
    return Range{off, size, align == 8 ? 8u : 4u};
  };
  std::vector<Range> out;
  for (uint64_t i = 0; i < eh.e_shnum; ++i) {
    const auto sh = f.read<Elf64_Shdr>(eh.e_shoff + i * eh.e_shentsize, "section header");
    if (sh.sh_type == SHT_NOTE) out.push_back(checked(sh.sh_offset, sh.sh_size, sh.sh_addralign, "note section"));
  }
  if (!out.empty()) return out;
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    const auto ph = f.read<Elf64_Phdr>(eh.e_phoff + i * eh.e_phentsize, "program header");
    if (ph.p_type == PT_NOTE) out.push_back(checked(ph.p_offset, ph.p_filesz, ph.p_align, "note segment"));
  }
  return out;
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// Finds the AMDGPU metadata note and returns its descriptor (the msgpack blob).
Range metadata_blob(const Bytes& f) {
  constexpr char kOwner[] = "AMDGPU";  // namesz counts the NUL: 7
  for (const Range& r : note_ranges(f)) {
    uint64_t pos = 0;
    // Fewer than a header's worth of bytes left is padding, not a note.
    while (pos <= r.size && r.size - pos >= sizeof(Elf64_Nhdr)) {
      const auto nh = f.read<Elf64_Nhdr>(r.off + pos, "note header");
      const uint64_t name_off = pos + sizeof(Elf64_Nhdr);
      const uint64_t desc_off = align_up(name_off + nh.n_namesz, r.align);
      const uint64_t next = align_up(desc_off + nh.n_descsz, r.align);
      // The sizes are 32-bit, so these sums cannot overflow 64 bits.
      if (desc_off + nh.n_descsz > r.size)
        throw Error("AMDGPU code object: malformed note (its name or descriptor runs past the note area)");
      const bool owner = nh.n_namesz == sizeof(kOwner) &&
                         std::memcmp(f.data + r.off + name_off, kOwner, sizeof(kOwner)) == 0;
      if (owner && nh.n_type == kNtAmdgpuMetadata) return Range{r.off + desc_off, nh.n_descsz, 1};
      pos = next;
    }
  }
  throw Error("AMDGPU code object has no NT_AMDGPU_METADATA note (owner \"AMDGPU\", type 32); "
              "code object v2 and older are not supported");
}

// msgpack keys and strings are STR (BIN is tolerated: older emitters used it).
bool is_key(const msgpack::object& o, const char* key) {
  if (o.type != msgpack::type::STR && o.type != msgpack::type::BIN) return false;
  const size_t n = std::strlen(key);
  return o.via.str.size == n && std::memcmp(o.via.str.ptr, key, n) == 0;
}

const msgpack::object* lookup(const msgpack::object& map, const char* key) {
  for (uint32_t i = 0; i < map.via.map.size; ++i)
    if (is_key(map.via.map.ptr[i].key, key)) return &map.via.map.ptr[i].val;
  return nullptr;
}

// Reads a non-negative integer field that must fit an int. `required` fields are ones
// the AMDGPU code object v3+ spec makes mandatory; the rest default to 0.
int int_field(const msgpack::object& kernel, const std::string& name, const char* key, bool required) {
  const msgpack::object* v = lookup(kernel, key);
  if (!v) {
    if (required) throw Error("AMDGPU metadata: kernel '" + name + "' has no " + key + " field");
    return 0;
  }
  if (v->type != msgpack::type::POSITIVE_INTEGER || v->via.u64 > static_cast<uint64_t>(INT_MAX))
    throw Error("AMDGPU metadata: kernel '" + name + "' field " + key +
                " is not a non-negative integer that fits an int");
  return static_cast<int>(v->via.u64);
}

KernelResources kernel_resources(const msgpack::object& k, size_t index) {
  if (k.type != msgpack::type::MAP)
    throw Error("AMDGPU metadata: amdhsa.kernels[" + std::to_string(index) + "] is not a map");
  const msgpack::object* name = lookup(k, ".name");
  if (!name || name->type != msgpack::type::STR)
    throw Error("AMDGPU metadata: amdhsa.kernels[" + std::to_string(index) + "] has no string .name");
  KernelResources r;
  r.symbol.assign(name->via.str.ptr, name->via.str.size);
  // On gfx90a/gfx942 (unified register file) .vgpr_count is the total of arch VGPRs
  // (rounded up to 4) plus AGPRs once AGPRs are used; elsewhere it is arch VGPRs only.
  // It is stored as the object says; callers that need the split use .agpr_count.
  r.vgprs_or_regs = int_field(k, r.symbol, ".vgpr_count", true);
  r.agprs = int_field(k, r.symbol, ".agpr_count", false);  // absent before gfx908
  r.sgprs = int_field(k, r.symbol, ".sgpr_count", true);
  r.lds_bytes = int_field(k, r.symbol, ".group_segment_fixed_size", true);
  r.scratch_bytes = int_field(k, r.symbol, ".private_segment_fixed_size", true);
  const long spills = static_cast<long>(int_field(k, r.symbol, ".vgpr_spill_count", false)) +
                      int_field(k, r.symbol, ".sgpr_spill_count", false);
  if (spills > INT_MAX) throw Error("AMDGPU metadata: kernel '" + r.symbol + "' spill count overflows");
  r.spills = static_cast<int>(spills);
  r.wave_size = int_field(k, r.symbol, ".wavefront_size", false);
  if (r.wave_size != 0 && r.wave_size != 32 && r.wave_size != 64)
    throw Error("AMDGPU metadata: kernel '" + r.symbol + "' has .wavefront_size " +
                std::to_string(r.wave_size) + " (expected 32 or 64)");
  return r;
}

}  // namespace

std::vector<KernelResources> read_all_resources(const std::vector<uint8_t>& elf) {
  const Bytes f{elf.data(), elf.size()};
  const Range blob = metadata_blob(f);

  // Every msgpack element takes at least one byte, so no count in a well-formed blob can
  // exceed its size; passing that as the limit stops a corrupt length field from making
  // the unpacker allocate gigabytes up front.
  const size_t n = blob.size;
  const msgpack::unpack_limit limit(n, n, n, n, n, /*depth=*/32);
  msgpack::object_handle handle;
  try {
    size_t off = 0;
    handle = msgpack::unpack(reinterpret_cast<const char*>(f.data + blob.off), n, off, nullptr,
                             nullptr, limit);
  } catch (const std::exception& e) {  // msgpack's errors derive from runtime_error/bad_cast
    throw Error(std::string("AMDGPU metadata note is not valid msgpack: ") + e.what());
  }

  const msgpack::object& root = handle.get();
  if (root.type != msgpack::type::MAP) throw Error("AMDGPU metadata is not a msgpack map");
  const msgpack::object* kernels = lookup(root, "amdhsa.kernels");
  if (!kernels) throw Error("AMDGPU metadata has no amdhsa.kernels entry");
  if (kernels->type != msgpack::type::ARRAY) throw Error("AMDGPU metadata: amdhsa.kernels is not an array");

  std::vector<KernelResources> out;
  for (uint32_t i = 0; i < kernels->via.array.size; ++i)
    out.push_back(kernel_resources(kernels->via.array.ptr[i], i));
  return out;
}

KernelResources read_resources(const std::vector<uint8_t>& elf, const std::string& kernel) {
  std::vector<KernelResources> all = read_all_resources(elf);
  std::string names;
  for (KernelResources& r : all) {
    if (r.symbol == kernel) return std::move(r);
    names += (names.empty() ? "" : ", ") + r.symbol;
  }
  throw Error("kernel '" + kernel + "' not in code object (has: " + (names.empty() ? "none" : names) + ")");
}

}  // namespace kf::amdgpu
