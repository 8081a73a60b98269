// Resource use of NVIDIA kernels, from two sources that should agree: the text ptxas
// prints with -v, and the cubin itself. Both come from outside (tool versions vary), so
// the parsers are tolerant of extra lines and items but strict about numbers and bounds.
#include "resources.h"

#include <elf.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <sstream>

#include "error.h"

namespace kf::nvptx {
namespace {

// ---- ptxas -v report ------------------------------------------------------------------
//
// CUDA 13 prints, per entry function (other tool versions add or drop items such as
// "N bytes cmem[0]", "N bytes cumulative stack size", or the barriers count):
//   ptxas info    : Compiling entry function 'NAME' for 'sm_90a'
//   ptxas info    : Function properties for NAME
//       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
//   ptxas info    : Used 10 registers, used 1 barriers, 1024 bytes smem
//   ptxas info    : Compile time = 1.106 ms
// Warnings ("ptxas warning : ...") and "Function properties" of non-entry functions
// (after the entry's "Compile time", or anywhere with -rdc) are interleaved.

constexpr char kEntryPrefix[] = "Compiling entry function '";
constexpr char kPropsPrefix[] = "Function properties for ";

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// The text after "ptxas info    :" (or the whole line if there is no such prefix).
std::string message(const std::string& line) {
  const size_t tag = line.find("ptxas info");
  if (tag == std::string::npos) return trim(line);
  const size_t colon = line.find(':', tag);
  return colon == std::string::npos ? trim(line) : trim(line.substr(colon + 1));
}

// The NAME of a "Compiling entry function 'NAME' ..." line, or "" for other lines.
std::string entry_name(const std::string& line) {
  const size_t p = line.find(kEntryPrefix);
  if (p == std::string::npos) return "";
  const size_t b = p + sizeof(kEntryPrefix) - 1;
  const size_t e = line.find('\'', b);
  return e == std::string::npos ? "" : line.substr(b, e - b);
}

// Splits "Used 10 registers, used 1 barriers, 1024 bytes smem" into items keyed by the
// words without the number ("Used registers", "bytes smem", "bytes cmem[0]"), so an
// unknown or reordered item is simply ignored. Items without a leading count are skipped.
std::vector<std::pair<std::string, int>> items(const std::string& text, const std::string& kernel) {
  std::vector<std::pair<std::string, int>> out;
  std::stringstream all(text);
  std::string item;
  while (std::getline(all, item, ',')) {
    std::istringstream words(item);
    std::string w, key;
    long value = -1;
    while (words >> w) {
      const bool number = value < 0 && w.find_first_not_of("0123456789") == std::string::npos;
      if (number) {
        if (w.size() > 9) throw Error("ptxas report: kernel '" + kernel + "': number " + w + " out of range");
        value = std::stol(w);
      } else {
        key += (key.empty() ? "" : " ") + w;
      }
    }
    if (value >= 0) out.emplace_back(key, static_cast<int>(value));
  }
  return out;
}

int item(const std::vector<std::pair<std::string, int>>& list, const std::string& key) {
  for (const auto& [k, v] : list)
    if (k == key) return v;
  return -1;
}

// ---- cubin ----------------------------------------------------------------------------

struct Bytes {
  const uint8_t* data;
  size_t size;

  bool contains(uint64_t off, uint64_t len) const { return off <= size && len <= size - off; }
  template <class T>
  T read(uint64_t off, const char* what) const {
    if (!contains(off, sizeof(T)))
      throw Error(std::string("cubin truncated: ") + what + " lies past the end of the file");
    T v;
    std::memcpy(&v, data + off, sizeof(T));  // the file gives no alignment guarantee
    return v;
  }
};

// NVIDIA's section type for .nv.info* and two of its attributes (as nvdisasm names them).
constexpr uint32_t kShtCudaInfo = SHT_LOPROC;  // 0x70000000
constexpr uint8_t kEifmtSval = 0x04;           // u16 size, then that many bytes
constexpr uint8_t kEiattrRegcount = 0x2f;      // SVAL: u32 symbol index, u32 registers

class Cubin {
 public:
  explicit Cubin(const std::vector<uint8_t>& elf) : f_{elf.data(), elf.size()} {
    if (f_.size < EI_NIDENT || std::memcmp(f_.data, ELFMAG, SELFMAG) != 0)
      throw Error("cubin is not an ELF file (bad magic)");
    if (f_.data[EI_CLASS] != ELFCLASS64 || f_.data[EI_DATA] != ELFDATA2LSB)
      throw Error("cubin is not a little-endian ELF64 file");
    const auto eh = f_.read<Elf64_Ehdr>(0, "ELF header");
    if (eh.e_machine != EM_CUDA)
      throw Error("ELF file is not a cubin (e_machine " + std::to_string(eh.e_machine) + ", expected " +
                  std::to_string(EM_CUDA) + ")");
    if (eh.e_shnum == 0) throw Error("cubin has no section headers");
    if (eh.e_shentsize < sizeof(Elf64_Shdr)) throw Error("cubin: section header entry size too small");
    if (!f_.contains(eh.e_shoff, uint64_t{eh.e_shnum} * eh.e_shentsize))
      throw Error("cubin truncated: section header table lies past the end of the file");
    for (uint64_t i = 0; i < eh.e_shnum; ++i) {
      const auto sh = f_.read<Elf64_Shdr>(eh.e_shoff + i * eh.e_shentsize, "section header");
      if (sh.sh_type != SHT_NOBITS && !f_.contains(sh.sh_offset, sh.sh_size))
        throw Error("cubin truncated: section " + std::to_string(i) + " lies past the end of the file");
      sh_.push_back(sh);
    }
    if (eh.e_shstrndx >= sh_.size()) throw Error("cubin: bad section name table index");
    shstrtab_ = eh.e_shstrndx;
  }

  size_t sections() const { return sh_.size(); }
  const Elf64_Shdr& section(size_t i) const { return sh_[i]; }
  std::string section_name(size_t i) const { return string_at(shstrtab_, sh_[i].sh_name); }

  // Index in .symtab of the symbol `name` defined in section `shndx`, or -1.
  long symbol_index(const std::string& name, size_t shndx) const {
    for (size_t s = 0; s < sh_.size(); ++s) {
      if (sh_[s].sh_type != SHT_SYMTAB) continue;
      if (sh_[s].sh_entsize < sizeof(Elf64_Sym) || sh_[s].sh_link >= sh_.size())
        throw Error("cubin: malformed symbol table");
      const uint64_t count = sh_[s].sh_size / sh_[s].sh_entsize;
      for (uint64_t i = 0; i < count; ++i) {
        const auto sym = f_.read<Elf64_Sym>(sh_[s].sh_offset + i * sh_[s].sh_entsize, "symbol");
        if (sym.st_shndx == shndx && string_at(sh_[s].sh_link, sym.st_name) == name)
          return static_cast<long>(i);
      }
    }
    return -1;
  }

  // Calls fn(attribute, value bytes, value size) for each record of a .nv.info section.
  template <class Fn>
  void for_each_info(size_t i, Fn fn) const {
    const Elf64_Shdr& sh = sh_[i];
    uint64_t pos = 0;
    while (sh.sh_size - pos >= 4) {
      const uint8_t* rec = f_.data + sh.sh_offset + pos;
      if (rec[0] != kEifmtSval) {  // the other formats carry at most 2 bytes inline
        pos += 4;
        continue;
      }
      uint16_t len;
      std::memcpy(&len, rec + 2, 2);
      if (len > sh.sh_size - pos - 4)
        throw Error("cubin: malformed " + section_name(i) + " (attribute runs past the section)");
      fn(rec[1], rec + 4, len);
      pos += 4 + len;
    }
  }

 private:
  // A NUL-terminated string at `off` inside string table section `s`.
  std::string string_at(size_t s, uint64_t off) const {
    const Elf64_Shdr& sh = sh_[s];
    if (sh.sh_type != SHT_STRTAB || off >= sh.sh_size) throw Error("cubin: bad string table reference");
    const char* b = reinterpret_cast<const char*>(f_.data + sh.sh_offset + off);
    const void* nul = std::memchr(b, 0, sh.sh_size - off);
    if (!nul) throw Error("cubin: unterminated string in string table");
    return std::string(b, static_cast<const char*>(nul));
  }

  Bytes f_;
  std::vector<Elf64_Shdr> sh_;
  size_t shstrtab_ = 0;
};

}  // namespace

KernelResources parse_ptxas_report(const std::string& report, const std::string& kernel) {
  std::vector<std::string> lines;
  {
    std::istringstream in(report);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }

  // With several targets in one nvcc call each entry appears once per target; the first
  // block is used (callers that care compile one target per report).
  size_t begin = lines.size();
  std::string seen;
  for (size_t i = 0; i < lines.size() && begin == lines.size(); ++i) {
    const std::string name = entry_name(lines[i]);
    if (name == kernel && !name.empty()) begin = i + 1;
    else if (!name.empty()) seen += (seen.empty() ? "" : ", ") + name;
  }
  if (begin == lines.size())
    throw Error("kernel '" + kernel + "' not in ptxas report (has: " + (seen.empty() ? "none" : seen) +
                "); was it compiled with -Xptxas -v?");

  KernelResources r;
  r.symbol = kernel;
  r.wave_size = 32;
  bool have_stack = false, have_used = false;
  for (size_t i = begin; i < lines.size(); ++i) {
    const std::string msg = message(lines[i]);
    // The entry's block ends at its "Compile time" line or at the next entry.
    if (!entry_name(lines[i]).empty() || msg.rfind("Compile time", 0) == 0) break;
    if (msg.rfind(kPropsPrefix, 0) == 0 && trim(msg.substr(sizeof(kPropsPrefix) - 1)) == kernel &&
        i + 1 < lines.size()) {
      const auto list = items(lines[i + 1], kernel);
      const int frame = item(list, "bytes stack frame");
      const int stores = item(list, "bytes spill stores");
      const int loads = item(list, "bytes spill loads");
      if (frame < 0 || stores < 0 || loads < 0)
        throw Error("ptxas report: kernel '" + kernel + "': expected 'N bytes stack frame, N bytes spill "
                    "stores, N bytes spill loads' after its Function properties line, got '" +
                    trim(lines[i + 1]) + "'");
      r.scratch_bytes = frame;
      r.spills = stores + loads;  // each is below 10^9, so the sum fits an int
      have_stack = true;
    } else if (msg.rfind("Used ", 0) == 0 && !have_used) {
      const auto list = items(msg, kernel);
      r.vgprs_or_regs = item(list, "Used registers");
      if (r.vgprs_or_regs < 0)
        throw Error("ptxas report: kernel '" + kernel + "': no register count in '" + msg + "'");
      r.lds_bytes = std::max(0, item(list, "bytes smem"));  // absent when no shared memory
      have_used = true;
    }
  }
  // The serialization and fence notices come before the entry's block and name the function.
  for (const std::string& l : lines) {
    if (l.find("'" + kernel + "'") == std::string::npos) continue;
    if (l.find("wgmma.mma_async instructions are serialized") != std::string::npos) r.mma_serialized = true;
    if (l.find("warpgroup.arrive is injected") != std::string::npos) r.mma_fenced = true;
  }
  if (!have_used) throw Error("ptxas report: kernel '" + kernel + "' has no 'Used N registers' line");
  if (!have_stack)
    throw Error("ptxas report: kernel '" + kernel + "' has no 'Function properties' / stack frame lines");
  return r;
}

int cubin_register_count(const std::vector<uint8_t>& cubin, const std::string& kernel) {
  const Cubin c(cubin);
  const std::string text = ".text." + kernel;
  size_t text_index = 0;
  std::string seen;
  for (size_t i = 0; i < c.sections() && text_index == 0; ++i) {
    const std::string name = c.section_name(i);
    if (name == text) text_index = i;
    else if (name.rfind(".text.", 0) == 0) seen += (seen.empty() ? "" : ", ") + name.substr(6);
  }
  if (text_index == 0)
    throw Error("kernel '" + kernel + "' not in cubin (has: " + (seen.empty() ? "none" : seen) + ")");

  // Where the count lives (checked on CUDA 13.0 cubins): every target tested (sm_75,
  // sm_80, sm_89, sm_90a, sm_100) records EIATTR_REGCOUNT {symbol index, registers} in
  // .nv.info; the top byte of .text.<kernel>'s sh_info also holds it up to sm_89 but is
  // 0 from sm_90 on, so it is only a fallback for cubins without the attribute.
  const long sym = c.symbol_index(kernel, text_index);
  if (sym >= 0) {
    for (size_t i = 0; i < c.sections(); ++i) {
      if (c.section(i).sh_type != kShtCudaInfo || c.section_name(i).rfind(".nv.info", 0) != 0) continue;
      int found = -1;
      c.for_each_info(i, [&](uint8_t attr, const uint8_t* v, uint16_t len) {
        if (attr != kEiattrRegcount || len < 8) return;
        uint32_t index, regs;
        std::memcpy(&index, v, 4);
        std::memcpy(&regs, v + 4, 4);
        if (index == static_cast<uint64_t>(sym) && regs <= INT_MAX) found = static_cast<int>(regs);
      });
      if (found >= 0) return found;
    }
  }
  const int from_info = static_cast<int>(c.section(text_index).sh_info >> 24);
  if (from_info > 0) return from_info;
  throw Error("cubin: no register count for kernel '" + kernel +
              "' (no EIATTR_REGCOUNT in .nv.info, none in the sh_info of " + text + ")");
}

}  // namespace kf::nvptx
