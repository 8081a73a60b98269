// The fragment index math of templates/kf_mma_layouts.h against independent sources:
//  - AMD: the register-layout tables of AMD's matrix instruction calculator
//    (KF_AMD_LAYOUT_DIR, beside the project), parsed here and compared in both
//    directions, so the functions produce every table entry and nothing else;
//  - NVIDIA: the PTX ISA's m16n8k16 fragment description, written out below as
//    per-element formulas, with the 16x16 atom as two n8 halves.
#include <doctest/doctest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

#include "kf_mma_layouts.h"
#include "kf_wgmma_forms_layout.h"
#include "kf_wgmma_layout.h"
#include "sparse_mla/wgmma_tiling.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/tiling.h"

namespace {

namespace fs = std::filesystem;
using kf::layout::RC;

// One location listed in a table cell: register `gpr` of `lane`, bits [hi:lo]
// (D cells name whole 32-bit registers: lo 0, hi 31).
struct Loc {
  int gpr, lane, lo, hi;
  bool operator==(const Loc& o) const {
    return gpr == o.gpr && lane == o.lane && lo == o.lo && hi == o.hi;
  }
};

using Cell = std::vector<Loc>;
using Table = std::array<std::array<Cell, 16>, 16>;  // [row][col] as the table prints them

struct Layout {
  Table a, b, d;  // A[M][K], B[K][N], D[M][N]
};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t at; (at = s.find(sep, start)) != std::string::npos; start = at + sep.size())
    out.push_back(s.substr(start, at - start));
  out.push_back(s.substr(start));
  return out;
}

// Parses the A, B and D tables of one calculator output file; every cell must be
// well-formed and every one of the 3 x 16 x 16 cells present.
Layout parse_layout(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  static const std::regex entry(R"(v([0-9]+)\{([0-9]+)\}(?:\.\[([0-9]+):([0-9]+)\])?)");
  Layout L;
  Table* table = nullptr;
  std::array<int, 16> cols{};
  int ncols = 0;
  int rows_seen[3] = {0, 0, 0};
  int which = -1;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.rfind("## ", 0) == 0) {
      table = nullptr;
      which = -1;
      continue;
    }
    if (line.empty() || line[0] != '|') continue;
    std::vector<std::string> cells = split(line, "|");
    // "| a | b |" splits into "", " a ", " b ", "".
    REQUIRE_MESSAGE(cells.size() >= 3, path << ":" << lineno << ": not a table row");
    cells = std::vector<std::string>(cells.begin() + 1, cells.end() - 1);
    const std::string head = trim(cells[0]);
    if (head == "A[M][K]" || head == "B[K][N]" || head == "D[M][N]") {
      which = head[0] == 'A' ? 0 : head[0] == 'B' ? 1 : 2;
      table = which == 0 ? &L.a : which == 1 ? &L.b : &L.d;
      ncols = static_cast<int>(cells.size()) - 1;
      REQUIRE_MESSAGE(ncols == 16, path << ":" << lineno << ": expected 16 columns");
      for (int c = 0; c < ncols; ++c) cols[c] = std::stoi(trim(cells[c + 1]));
      continue;
    }
    if (!table || head.find_first_not_of('-') == std::string::npos) continue;  // separator
    const int row = std::stoi(head);
    REQUIRE_MESSAGE((row >= 0 && row < 16 && static_cast<int>(cells.size()) == ncols + 1),
                    path << ":" << lineno << ": bad row");
    for (int c = 0; c < ncols; ++c) {
      Cell& cell = (*table)[row][cols[c]];
      for (const std::string& raw : split(trim(cells[c + 1]), "<br />")) {
        const std::string text = trim(raw);
        std::smatch m;
        REQUIRE_MESSAGE(std::regex_match(text, m, entry),
                        path << ":" << lineno << ": cannot read cell entry '" << text << "'");
        Loc loc{std::stoi(m[1]), std::stoi(m[2]), 0, 31};
        if (m[3].matched) {
          loc.hi = std::stoi(m[3]);
          loc.lo = std::stoi(m[4]);
        }
        cell.push_back(loc);
      }
    }
    ++rows_seen[which];
  }
  for (int t = 0; t < 3; ++t) REQUIRE_MESSAGE(rows_seen[t] == 16, path << ": table " << "ABD"[t] << " incomplete");
  for (const Table* t : {&L.a, &L.b, &L.d})
    for (const auto& r : *t)
      for (const auto& cell : r) REQUIRE_MESSAGE(!cell.empty(), path << ": empty cell");
  return L;
}

bool has(const Cell& cell, const Loc& want) {
  for (const Loc& l : cell)
    if (l == want) return true;
  return false;
}

std::string str(const Loc& l) {
  return "v" + std::to_string(l.gpr) + "{" + std::to_string(l.lane) + "}.[" + std::to_string(l.hi) + ":" +
         std::to_string(l.lo) + "]";
}

bool in16(RC rc) { return rc.row >= 0 && rc.row < 16 && rc.col >= 0 && rc.col < 16; }

// Both directions for one atom and one table file.
template <class Atom>
void check_against_table(const Layout& L, const std::string& file) {
  INFO("table " << file);
  size_t a_entries = 0, b_entries = 0, d_entries = 0;
  for (const auto& r : L.a)
    for (const auto& c : r) a_entries += c.size();
  for (const auto& r : L.b)
    for (const auto& c : r) b_entries += c.size();
  for (const auto& r : L.d)
    for (const auto& c : r) d_entries += c.size();
  // Every (lane, register, half) is listed once: the functions must produce that many.
  CHECK(a_entries == size_t(Atom::kWave) * Atom::kAPairs * 2);
  CHECK(b_entries == size_t(Atom::kWave) * Atom::kBPairs * 2);
  CHECK(d_entries == size_t(Atom::kWave) * Atom::kCElems);

  // Functions -> table.
  for (int lane = 0; lane < Atom::kWave; ++lane) {
    for (int p = 0; p < Atom::kAPairs; ++p) {
      const RC rc = Atom::a_pair(lane, p);  // (row, k)
      INFO("a_pair(" << lane << ", " << p << ") = (" << rc.row << ", " << rc.col << ")");
      REQUIRE((in16(rc) && rc.col + 1 < 16));
      CHECK(has(L.a[rc.row][rc.col], {p, lane, 0, 15}));
      CHECK(has(L.a[rc.row][rc.col + 1], {p, lane, 16, 31}));
    }
    for (int p = 0; p < Atom::kBPairs; ++p) {
      const RC rc = Atom::b_pair(lane, p);  // (n, k); the table is B[k][n]
      INFO("b_pair(" << lane << ", " << p << ") = (" << rc.row << ", " << rc.col << ")");
      REQUIRE((in16(rc) && rc.col + 1 < 16));
      CHECK(has(L.b[rc.col][rc.row], {p, lane, 0, 15}));
      CHECK(has(L.b[rc.col + 1][rc.row], {p, lane, 16, 31}));
    }
    for (int e = 0; e < Atom::kCElems; ++e) {
      const RC rc = Atom::c_elem(lane, e);
      INFO("c_elem(" << lane << ", " << e << ") = (" << rc.row << ", " << rc.col << ")");
      REQUIRE(in16(rc));
      CHECK(has(L.d[rc.row][rc.col], {e, lane, 0, 31}));
    }
  }

  // Table -> functions: every listed location is one the functions map there.
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      for (const Loc& l : L.a[i][j]) {
        INFO("A[" << i << "][" << j << "] lists " << str(l));
        REQUIRE((l.gpr < Atom::kAPairs && l.lane < Atom::kWave));
        const bool high = l.lo == 16;
        CHECK(((l.lo == 0 && l.hi == 15) || (l.lo == 16 && l.hi == 31)));
        const RC rc = Atom::a_pair(l.lane, l.gpr);
        CHECK(rc.row == i);
        CHECK(rc.col + (high ? 1 : 0) == j);
      }
      for (const Loc& l : L.b[i][j]) {  // B[k = i][n = j]
        INFO("B[" << i << "][" << j << "] lists " << str(l));
        REQUIRE((l.gpr < Atom::kBPairs && l.lane < Atom::kWave));
        const bool high = l.lo == 16;
        CHECK(((l.lo == 0 && l.hi == 15) || (l.lo == 16 && l.hi == 31)));
        const RC rc = Atom::b_pair(l.lane, l.gpr);
        CHECK(rc.row == j);
        CHECK(rc.col + (high ? 1 : 0) == i);
      }
      for (const Loc& l : L.d[i][j]) {
        INFO("D[" << i << "][" << j << "] lists " << str(l));
        REQUIRE((l.gpr < Atom::kCElems && l.lane < Atom::kWave));
        const RC rc = Atom::c_elem(l.lane, l.gpr);
        CHECK(rc.row == i);
        CHECK(rc.col == j);
      }
    }
}

// Returns the tables directory, or "" after reporting why the check is skipped (a
// failure where CI promises the directory).
std::string layout_dir() {
  const std::string dir = fs::path(KF_AMD_LAYOUT_DIR).lexically_normal().string();
  if (fs::is_directory(dir)) return dir;
  if (std::getenv("CI"))
    FAIL("AMD layout tables not found at " << dir << " (CI is set, and CI has them)");
  MESSAGE("skipped: AMD layout tables not found at " << dir
                                                     << " (shared/amd-matrix-layouts beside the project)");
  return "";
}

// --- PTX ISA, mma.m16n8k16 with .f16/.bf16 inputs, written per element ---------------
int group_id(int lane) { return lane >> 2; }
int tig(int lane) { return lane % 4; }

// A fragment element a_i (i = 0..7) of one m16n8k16: (row, col) of the 16x16 A tile.
RC ptx_a(int lane, int i) {
  const int row = group_id(lane) + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0);
  const int col = tig(lane) * 2 + (i & 1) + (i >= 4 ? 8 : 0);
  return {row, col};
}
// B fragment element b_i (i = 0..3) of one m16n8k16: (k, n) of the 16x8 B tile.
RC ptx_b(int lane, int i) { return {tig(lane) * 2 + (i & 1) + (i >= 2 ? 8 : 0), group_id(lane)}; }
// C fragment element c_i (i = 0..3) of one m16n8k16: (row, col) of the 16x8 C tile.
RC ptx_c(int lane, int i) { return {group_id(lane) + (i >= 2 ? 8 : 0), tig(lane) * 2 + (i & 1)}; }

// The (k, n) of the low and high half of B register p of `lane`, from an independent
// source (a vendor table or the PTX formulas): [lane][p][half].
using BTruth = std::vector<std::array<std::array<RC, 2>, 8>>;

BTruth b_truth_from_table(const Layout& L, int wave) {
  BTruth t(wave);
  for (auto& l : t)
    for (auto& p : l) p = {RC{-1, -1}, RC{-1, -1}};
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < 16; ++n)
      for (const Loc& l : L.b[k][n]) {
        REQUIRE((l.lane < wave && l.gpr < 8));
        t[l.lane][l.gpr][l.lo == 16 ? 1 : 0] = {k, n};
      }
  return t;
}

// The pipelined prefill dequantises B straight from the raw GPTQ words of a stage
// (word [k/8][n], k % 8 == 0 in the low nibble): for every lane and register, the word
// and nibbles raw_b_pair names must hold exactly the two B elements the source assigns
// to that register, for atoms anywhere in the tile. Returns the registers that do not
// (reporting the first few when `report`).
template <class Atom>
int raw_pair_mismatches(const BTruth& truth, bool report = true) {
  int bad = 0;
  for (int block_n : {64, 128})
    for (int n_atom = 0; n_atom < block_n; n_atom += 16)
      for (int kk : {0, 16, 32, 48})
        for (int lane = 0; lane < Atom::kWave; ++lane)
          for (int p = 0; p < Atom::kBPairs; ++p) {
            const kf::w4a16::RawPair rp = kf::w4a16::raw_b_pair<Atom>(lane, p, n_atom, kk, block_n);
            const int n = rp.word % block_n, krow = rp.word / block_n;
            const int k_lo = krow * 8 + rp.shift / 4;
            const RC lo = truth[lane][p][0], hi = truth[lane][p][1];
            const bool ok = rp.shift >= 0 && rp.shift <= 24 && rp.shift % 8 == 0 &&  // both nibbles in the word
                            lo.row >= 0 && hi.row >= 0 &&                              // the source lists it
                            k_lo == kk + lo.row && k_lo + 1 == kk + hi.row && n == n_atom + lo.col &&
                            n == n_atom + hi.col;
            if (!ok && ++bad <= 4 && report)
              MESSAGE("block_n " << block_n << " atom at n " << n_atom << ", k " << kk << ": lane " << lane << " reg "
                                 << p << " reads word " << rp.word << " >> " << rp.shift << " (n " << n << ", k "
                                 << k_lo << "), the source says (n " << n_atom + lo.col << ", k " << kk + lo.row << ")");
          }
  return bad;
}

BTruth ptx_b_truth() {
  BTruth truth(32);
  for (int lane = 0; lane < 32; ++lane)
    for (int p = 0; p < 4; ++p) {
      const int h = p / 2, r = p % 2;
      const RC lo = ptx_b(lane, 2 * r), hi = ptx_b(lane, 2 * r + 1);  // (k, n within half h)
      truth[lane][p] = {RC{lo.row, lo.col + 8 * h}, RC{hi.row, hi.col + 8 * h}};
    }
  return truth;
}

}  // namespace

TEST_SUITE("mma_layouts") {

TEST_CASE("atom sizes") {
  using W = kf::layout::Wmma16Gfx11;
  using M = kf::layout::Mfma16Gfx9;
  using N = kf::layout::Mma16Sm80;
  CHECK(W::kWave == 32);
  CHECK(M::kWave == 64);
  CHECK(N::kWave == 32);
  // 16x16 fp16 A (and B) = 256 values = kWave * pairs * 2, once per copy.
  CHECK(M::kWave * M::kAPairs * 2 == 256);
  CHECK(N::kWave * N::kAPairs * 2 == 256);
  CHECK(W::kWave * W::kAPairs * 2 == 2 * 256);  // RDNA3 wave32 keeps two copies
  CHECK(M::kWave * M::kCElems == 256);
  CHECK(W::kWave * W::kCElems == 256);
  CHECK(N::kWave * N::kCElems == 256);
}

TEST_CASE("Wmma16Gfx11 matches the RDNA3 v_wmma_f32_16x16x16 tables") {
  const std::string dir = layout_dir();
  if (dir.empty()) return;
  for (const char* f : {"rdna3_v_wmma_f32_16x16x16_f16.md", "rdna3_v_wmma_f32_16x16x16_bf16.md"})
    check_against_table<kf::layout::Wmma16Gfx11>(parse_layout(dir + "/" + f), f);
}

TEST_CASE("Mfma16Gfx9 matches the CDNA3 v_mfma_f32_16x16x16 tables") {
  const std::string dir = layout_dir();
  if (dir.empty()) return;
  for (const char* f : {"cdna3_v_mfma_f32_16x16x16_f16.md", "cdna3_v_mfma_f32_16x16x16_bf16.md"})
    check_against_table<kf::layout::Mfma16Gfx9>(parse_layout(dir + "/" + f), f);
}

TEST_CASE("the table check rejects a wrong layout") {
  // A deliberately wrong atom (Mfma16Gfx9 with D rows and columns swapped) must not
  // pass, or the checks above prove nothing.
  struct Swapped : kf::layout::Mfma16Gfx9 {
    static constexpr RC c_elem(int lane, int e) { return {lane % 16, 4 * (lane / 16) + e}; }
  };
  const std::string dir = layout_dir();
  if (dir.empty()) return;
  const Layout L = parse_layout(dir + "/cdna3_v_mfma_f32_16x16x16_f16.md");
  int mismatches = 0;
  for (int lane = 0; lane < 64; ++lane)
    for (int e = 0; e < 4; ++e) {
      const RC rc = Swapped::c_elem(lane, e);
      mismatches += !has(L.d[rc.row][rc.col], {e, lane, 0, 31});
    }
  CHECK(mismatches > 0);
  // And the parser read the cell format: A[0][1] of the RDNA3 table is the high half of
  // v0 in lane 0 and its copy in lane 16.
  const Layout R = parse_layout(dir + "/rdna3_v_wmma_f32_16x16x16_f16.md");
  REQUIRE(R.a[0][1].size() == 2);
  CHECK(R.a[0][1][0] == Loc{0, 0, 16, 31});
  CHECK(R.a[0][1][1] == Loc{0, 16, 16, 31});
  CHECK(R.d[1][0] == Cell{Loc{0, 16, 0, 31}});
}

TEST_CASE("Mma16Sm80 matches the PTX ISA m16n8k16 fragments (two n8 halves)") {
  using N = kf::layout::Mma16Sm80;
  int a_seen[16][16] = {}, b_seen[16][16] = {}, c_seen[16][16] = {};
  for (int lane = 0; lane < 32; ++lane) {
    // A: register p holds a_{2p} (low half) and a_{2p+1} (high half, next k).
    for (int p = 0; p < N::kAPairs; ++p) {
      const RC got = N::a_pair(lane, p);
      const RC lo = ptx_a(lane, 2 * p), hi = ptx_a(lane, 2 * p + 1);
      INFO("lane " << lane << " A reg " << p);
      CHECK(got.row == lo.row);
      CHECK(got.col == lo.col);
      CHECK(hi.row == lo.row);
      CHECK(hi.col == lo.col + 1);
      ++a_seen[lo.row][lo.col];
      ++a_seen[hi.row][hi.col];
    }
    // B: registers 2h, 2h+1 are b0b1, b2b3 of the half covering columns 8h .. 8h+7.
    for (int p = 0; p < N::kBPairs; ++p) {
      const int h = p / 2, r = p % 2;
      const RC lo = ptx_b(lane, 2 * r), hi = ptx_b(lane, 2 * r + 1);  // (k, n within half)
      const RC got = N::b_pair(lane, p);                              // (n, k)
      INFO("lane " << lane << " B reg " << p);
      CHECK(got.row == lo.col + 8 * h);
      CHECK(got.col == lo.row);
      CHECK(hi.col == lo.col);
      CHECK(hi.row == lo.row + 1);
      ++b_seen[lo.row][lo.col + 8 * h];
      ++b_seen[hi.row][hi.col + 8 * h];
    }
    // C: elements 4h .. 4h+3 are c0..c3 of half h.
    for (int e = 0; e < N::kCElems; ++e) {
      const int h = e / 4;
      const RC want = ptx_c(lane, e % 4);
      const RC got = N::c_elem(lane, e);
      INFO("lane " << lane << " C elem " << e);
      CHECK(got.row == want.row);
      CHECK(got.col == want.col + 8 * h);
      ++c_seen[got.row][got.col];
    }
  }
  // Each half-tile element is covered exactly once.
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      INFO("(" << i << ", " << j << ")");
      CHECK(a_seen[i][j] == 1);
      CHECK(b_seen[i][j] == 1);
      CHECK(c_seen[i][j] == 1);
    }
}

TEST_CASE("raw_b_pair reads the nibbles the RDNA3 and CDNA3 B tables assign") {
  const std::string dir = layout_dir();
  if (dir.empty()) return;
  for (const char* f : {"rdna3_v_wmma_f32_16x16x16_f16.md", "rdna3_v_wmma_f32_16x16x16_bf16.md"}) {
    INFO(f);
    CHECK(raw_pair_mismatches<kf::layout::Wmma16Gfx11>(b_truth_from_table(parse_layout(dir + "/" + f), 32)) == 0);
  }
  for (const char* f : {"cdna3_v_mfma_f32_16x16x16_f16.md", "cdna3_v_mfma_f32_16x16x16_bf16.md"}) {
    INFO(f);
    CHECK(raw_pair_mismatches<kf::layout::Mfma16Gfx9>(b_truth_from_table(parse_layout(dir + "/" + f), 64)) == 0);
  }
}

TEST_CASE("raw_b_pair reads the nibbles the PTX m16n8k16 B fragments assign") {
  CHECK(raw_pair_mismatches<kf::layout::Mma16Sm80>(ptx_b_truth()) == 0);
}

TEST_CASE("the raw pair check rejects a wrong nibble or column") {
  // Atoms whose b_pair is off by one k pair, or by one column, must not pass.
  struct KShifted : kf::layout::Mma16Sm80 {
    static constexpr RC b_pair(int lane, int p) { return {lane / 4 + 8 * (p / 2), (2 * (lane % 4) + 2) % 8 + 8 * (p % 2)}; }
  };
  struct NShifted : kf::layout::Mma16Sm80 {
    static constexpr RC b_pair(int lane, int p) { return {(lane / 4 + 1) % 8 + 8 * (p / 2), 2 * (lane % 4) + 8 * (p % 2)}; }
  };
  CHECK(raw_pair_mismatches<KShifted>(ptx_b_truth(), false) > 0);
  CHECK(raw_pair_mismatches<NShifted>(ptx_b_truth(), false) > 0);
}

// The skinny kind (templates/w4a16_linear/skinny.h) feeds m16n8k16 atoms straight from
// 16-byte GPTQ loads with k and n permuted (skinny_tiling.h). Rebuild each lane's
// fragments from those functions, place them where the Mma16Sm80 layout says the
// hardware reads them, run the atoms on the host, and map the accumulators back: the
// result must be the plain product of the span, every input and output used once.
int skinny_span_mismatches(int (*a_k)(int, int, int), int (*b_nibble)(int, int)) {
  using L = kf::layout::Mma16Sm80;
  namespace sk = kf::w4a16::skinny;
  int A[16][32], B[32][32];  // A[row][actual k], B[actual k][actual column of the chunk]
  unsigned seed = 7;
  auto next = [&] { return static_cast<int>((seed = seed * 1103515245u + 12345u) >> 16) % 15 - 7; };
  for (auto& r : A)
    for (int& v : r) v = next();
  for (auto& r : B)
    for (int& v : r) v = next();
  long long D[2][16][16] = {};  // per atom, logical (row, column)
  for (int s = 0; s < 2; ++s) {
    int Alog[16][16], Blog[2][16][16];  // [row][k], [atom][n][k]
    int a_seen[16][16] = {}, b_seen[2][16][16] = {};
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4, t = lane % 4;
      for (int p = 0; p < 4; ++p) {
        const kf::layout::RC rc = L::a_pair(lane, p);
        const int row = sk::a_row(lane, p), k = a_k(lane, s, p);
        Alog[rc.row][rc.col] = A[row][k];
        Alog[rc.row][rc.col + 1] = A[row][k + 4];
        ++a_seen[rc.row][rc.col];
        ++a_seen[rc.row][rc.col + 1];
        for (int atom = 0; atom < 2; ++atom) {
          // word `w` of the lane is column 4g + w of word row t (actual k 8t .. 8t + 7)
          const int col = 4 * g + sk::b_word(atom, p), nib = b_nibble(s, p);
          const kf::layout::RC bc = L::b_pair(lane, p);
          Blog[atom][bc.row][bc.col] = B[8 * t + nib][col];
          Blog[atom][bc.row][bc.col + 1] = B[8 * t + nib + 4][col];
          ++b_seen[atom][bc.row][bc.col];
          ++b_seen[atom][bc.row][bc.col + 1];
        }
      }
    }
    for (int r = 0; r < 16; ++r)
      for (int k = 0; k < 16; ++k) REQUIRE(a_seen[r][k] == 1);
    for (int atom = 0; atom < 2; ++atom)
      for (int n = 0; n < 16; ++n)
        for (int k = 0; k < 16; ++k) REQUIRE(b_seen[atom][n][k] == 1);
    for (int atom = 0; atom < 2; ++atom)
      for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 16; ++n)
          for (int k = 0; k < 16; ++k) D[atom][r][n] += Alog[r][k] * Blog[atom][n][k];
  }
  int mismatches = 0, c_seen[16][32] = {};
  for (int lane = 0; lane < 32; ++lane)
    for (int atom = 0; atom < 2; ++atom)
      for (int e = 0; e < L::kCElems; ++e) {
        const kf::layout::RC rc = L::c_elem(lane, e);
        const int row = sk::c_row(lane, e), col = sk::c_col(lane, atom, e);
        if (row != rc.row) ++mismatches;
        ++c_seen[row][col];
        long long want = 0;
        for (int k = 0; k < 32; ++k) want += A[row][k] * B[k][col];
        if (D[atom][rc.row][rc.col] != want) ++mismatches;
      }
  for (auto& r : c_seen)
    for (int v : r)
      if (v != 1) ++mismatches;
  return mismatches;
}

TEST_CASE("skinny: fragments from 16-byte GPTQ loads with permuted k and n give the plain product") {
  CHECK(skinny_span_mismatches(kf::w4a16::skinny::a_k, kf::w4a16::skinny::b_nibble) == 0);
}

// One 32-k span of a 32-column chunk in small integers: x (ROWS rows), int4 weights q,
// per-column zero points and scales, drawn from `seed`; `want` is the plain sum of
// (q - z) x s that the skinny kind must leave for (row, column), `biased` what its atoms
// accumulate from weights offset by kBias.
template <int ROWS>
struct SkinnySpan {
  static constexpr int kBias = 128;
  int x[ROWS][32], q[32][32], z[32], scale[32];  // rows x k, k x column, per column
  explicit SkinnySpan(unsigned seed) {
    auto next = [&](int n) { return static_cast<int>((seed = seed * 1103515245u + 12345u) >> 16) % n; };
    for (auto& r : x)
      for (int& v : r) v = next(15) - 7;
    for (auto& r : q)
      for (int& v : r) v = next(16);
    for (int c = 0; c < 32; ++c) z[c] = next(16), scale[c] = 1 + next(5);
  }
  long long want(int row, int col) const {
    long long sum = 0;
    for (int k = 0; k < 32; ++k) sum += static_cast<long long>(x[row][k]) * (q[k][col] - z[col]) * scale[col];
    return sum;
  }
  long long biased(int row, int col) const {
    long long sum = 0;
    for (int k = 0; k < 32; ++k) sum += static_cast<long long>(x[row][k]) * (kBias + q[k][col]);
    return sum;
  }
};

// The fold (skinny.h fold_group): the biased products minus (bias + z) times the x sums
// of A against ones, scaled, must give the plain sum of (q - z) x s for every element,
// which holds only if fold_col names the element's column and xsum_elem its row.
int skinny_fold_mismatches(int (*fold_col)(int, int), int (*xsum_elem)(int)) {
  using L = kf::layout::Mma16Sm80;
  namespace sk = kf::w4a16::skinny;
  const SkinnySpan<16> d(11);
  int mismatches = 0;
  for (int lane = 0; lane < 32; ++lane) {
    const int t = lane % 4;
    // The x-sum fragment of this lane (m16n8 C layout), over the span's 32 k.
    long long xs[4];
    for (int v = 0; v < 4; ++v) {
      const kf::layout::RC rc = L::c_elem(lane, v);
      xs[v] = 0;
      for (int k = 0; k < 32; ++k) xs[v] += d.x[rc.row][k];
    }
    for (int atom = 0; atom < 2; ++atom)
      for (int e = 0; e < L::kCElems; ++e) {
        const int row = sk::c_row(lane, e), col = sk::c_col(lane, atom, e);
        const int c = 8 * t + fold_col(atom, e);  // the column the fold takes z and s of
        const long long got = d.scale[c] * (d.biased(row, col) - (d.kBias + d.z[c]) * xs[xsum_elem(e)]);
        mismatches += got != d.want(row, col);
      }
  }
  return mismatches;
}

TEST_CASE("skinny: the fold removes the bias with the right row's x sum and the right column's zero") {
  CHECK(skinny_fold_mismatches(kf::w4a16::skinny::fold_col, kf::w4a16::skinny::xsum_elem) == 0);
  auto other_row = [](int e) { return 2 - kf::w4a16::skinny::xsum_elem(e); };
  auto other_col = [](int atom, int e) { return kf::w4a16::skinny::fold_col(1 - atom, e); };
  CHECK(skinny_fold_mismatches(kf::w4a16::skinny::fold_col, +other_row) > 0);
  CHECK(skinny_fold_mismatches(+other_col, kf::w4a16::skinny::xsum_elem) > 0);
}

// The swapped forms (block_m 8, and block_m 16 paired, _sw): the lanes' A registers
// (biased weight pairs of their own words) and B registers (pairs from their x unit, of
// x rows g and, paired, g + 8) placed where the m16n8k16 layout says (the first half of
// Mma16Sm80: B registers 0-1, accumulators 0-3), multiplied, one product per half, and
// folded with each half's x sums (ones times its B): every accumulator element must
// hold, for the column and M row the template stores it at, the plain sum of (q - z) x s
// over the span's 32 k.
template <int HALVES>
int skinny_swapped_mismatches(int (*b_k)(int, int), int (*xsum_elem)(int), int (*row_of)(int, int),
                              int (*col_of)(int, int)) {
  using L = kf::layout::Mma16Sm80;
  namespace sk = kf::w4a16::skinny;
  const SkinnySpan<8 * HALVES> d(3 + 2 * HALVES);  // 8 M rows per half
  long long D[HALVES][2][16][8] = {}, XS[HALVES][16][8] = {};  // [half][atom][logical row][n]; ones x B
  for (int s = 0; s < 2; ++s) {
    int A[2][16][16], B[HALVES][16][8];  // [atom][row][k], [half][k][n]
    int a_seen[2][16][16] = {}, b_seen[HALVES][16][8] = {};
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4, t = lane % 4;
      for (int atom = 0; atom < 2; ++atom)
        for (int p = 0; p < 4; ++p) {
          const kf::layout::RC rc = L::a_pair(lane, p);
          const int col = 4 * g + sk::swapped_a_word(atom, p), nib = sk::swapped_a_nibble(s, p);
          A[atom][rc.row][rc.col] = d.kBias + d.q[8 * t + nib][col];
          A[atom][rc.row][rc.col + 1] = d.kBias + d.q[8 * t + nib + 4][col];
          ++a_seen[atom][rc.row][rc.col];
          ++a_seen[atom][rc.row][rc.col + 1];
        }
      for (int h = 0; h < HALVES; ++h)
        for (int p = 0; p < 2; ++p) {
          const kf::layout::RC bc = L::b_pair(lane, p);  // (n, k)
          const int k = 8 * t + b_k(s, p);
          B[h][bc.col][bc.row] = d.x[8 * h + g][k];
          B[h][bc.col + 1][bc.row] = d.x[8 * h + g][k + 4];
          ++b_seen[h][bc.col][bc.row];
          ++b_seen[h][bc.col + 1][bc.row];
        }
    }
    for (int atom = 0; atom < 2; ++atom)
      for (int r = 0; r < 16; ++r)
        for (int k = 0; k < 16; ++k) REQUIRE(a_seen[atom][r][k] == 1);
    for (int h = 0; h < HALVES; ++h)
      for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 8; ++n) REQUIRE(b_seen[h][k][n] == 1);
    for (int h = 0; h < HALVES; ++h)
      for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 8; ++n)
          for (int k = 0; k < 16; ++k) {
            for (int atom = 0; atom < 2; ++atom) D[h][atom][r][n] += A[atom][r][k] * B[h][k][n];
            XS[h][r][n] += B[h][k][n];
          }
  }
  int mismatches = 0, seen[8 * HALVES][32] = {};
  for (int lane = 0; lane < 32; ++lane)
    for (int atom = 0; atom < 2; ++atom)
      for (int e = 0; e < 4 * HALVES; ++e) {
        const int h = e / 4;
        const kf::layout::RC rc = L::c_elem(lane, e % 4), xc = L::c_elem(lane, xsum_elem(e % 4));
        const int col = 4 * (lane / 4) + col_of(atom, e), row = row_of(lane, e);
        ++seen[row][col];
        const long long got =
            d.scale[col] * (D[h][atom][rc.row][rc.col] - (d.kBias + d.z[col]) * XS[h][xc.row][xc.col]);
        mismatches += got != d.want(row, col);
      }
  for (auto& r : seen)
    for (int v : r) mismatches += v != 1;
  return mismatches;
}

TEST_CASE("skinny, swapped form: weights as A, x as B, every element its column's and row's folded sum") {
  namespace sk = kf::w4a16::skinny;
  auto sw = [](int (*b_k)(int, int), int (*xsum_elem)(int)) {
    return skinny_swapped_mismatches<1>(b_k, xsum_elem, sk::swapped_row, sk::swapped_col);
  };
  CHECK(sw(sk::swapped_b_k, sk::swapped_xsum_elem) == 0);
  auto b_k_swapped_halves = [](int s, int p) { return sk::swapped_b_k(s, 1 - p); };
  auto other_row = [](int v) { return 1 - sk::swapped_xsum_elem(v); };
  CHECK(sw(+b_k_swapped_halves, sk::swapped_xsum_elem) > 0);
  CHECK(sw(sk::swapped_b_k, +other_row) > 0);
}

TEST_CASE("skinny, paired swapped form: one A, two 8-row halves of x, every element its column's and row's folded sum") {
  namespace sk = kf::w4a16::skinny;
  auto paired = [](int (*row_of)(int, int), int (*col_of)(int, int)) {
    return skinny_swapped_mismatches<2>(sk::swapped_b_k, sk::swapped_xsum_elem, row_of, col_of);
  };
  CHECK(paired(sk::paired_row, sk::paired_col) == 0);
  auto halves_swapped = [](int lane, int e) { return sk::paired_row(lane, (e + 4) % 8); };
  auto other_atom = [](int atom, int e) { return sk::paired_col(1 - atom, e); };
  CHECK(paired(+halves_swapped, sk::paired_col) > 0);
  CHECK(paired(sk::paired_row, +other_atom) > 0);
}

TEST_CASE("skinny: the product check rejects A and B that disagree on k") {
  auto a_k_off = [](int lane, int s, int p) { return kf::w4a16::skinny::a_k(lane, 1 - s, p); };
  auto b_swap = [](int s, int p) { return kf::w4a16::skinny::b_nibble(s, 1 - p % 2 + 2 * (p / 2)); };
  CHECK(skinny_span_mismatches(+a_k_off, kf::w4a16::skinny::b_nibble) > 0);
  CHECK(skinny_span_mismatches(kf::w4a16::skinny::a_k, +b_swap) > 0);
}

// The ring's copy and read-back (skinny.h request / read_slot), emulated: each copy lane
// stores the (word row, chunk, column) it read at the swizzled slot position; each lane
// must then find, for every chunk, its own fragment words (word row t, columns 4g .. 4g + 3).
// `swz` is the slot position function under test (skinny::swizzled or a wrong one), `frag`
// the read-back unit (skinny::fragment_unit or a wrong one).
struct SlotCheck {
  int wrong_words = 0, read_conflicts = 0, write_conflicts = 0;
};
SlotCheck skinny_slot_check(int block_n, int (*swz)(int, int),
                            int (*frag)(int, int, int) = kf::w4a16::skinny::fragment_unit) {
  using namespace kf::w4a16::skinny;
  const int chunks = block_n / 32, units = 32 * chunks;
  std::vector<std::array<int, 3>> slot(units, {-1, -1, -1});
  SlotCheck r;
  for (int c = 0; c < chunks; ++c) {
    std::array<int, 8> groups{};
    for (int lane = 0; lane < 32; ++lane) {
      const int u = 32 * c + lane, p = swz(block_n, u);
      REQUIRE(p >= 0);
      REQUIRE(p < units);
      CHECK(slot[p][0] == -1);  // a permutation: no unit lands on another
      slot[p] = {unit_row(block_n, u), unit_chunk(block_n, u), unit_col(block_n, u)};
      if (lane % 8 == 7) {  // a quarter-warp's 8 stores: 8 different 16-byte bank groups
        for (int l = lane - 7; l <= lane; ++l) ++groups[swz(block_n, 32 * c + l) % 8];
        for (int& n : groups) r.write_conflicts += n > 1, n = 0;
      }
    }
  }
  for (int j = 0; j < chunks; ++j)
    for (int q = 0; q < 4; ++q) {
      std::array<int, 8> groups{};
      for (int lane = 8 * q; lane < 8 * q + 8; ++lane) {
        const int p = swz(block_n, frag(block_n, lane, j));
        ++groups[p % 8];
        const std::array<int, 3> want{lane % 4, j, 4 * (lane / 4)};
        r.wrong_words += slot[p] != want;
      }
      for (int n : groups) r.read_conflicts += n > 1;
    }
  return r;
}

TEST_CASE("skinny: the ring's whole-row copies reach every lane's fragment words, without bank conflicts") {
  constexpr auto swizzled = kf::w4a16::skinny::swizzled;
  for (int bn : {32, 64, 128}) {
    CAPTURE(bn);
    const SlotCheck r = skinny_slot_check(bn, +swizzled);
    CHECK(r.wrong_words == 0);
    CHECK(r.read_conflicts == 0);
    CHECK(r.write_conflicts == 0);
    // Copies read whole row pieces: a copy's 32 lanes cover 32 / row_units rows.
    CHECK(32 / kf::w4a16::skinny::row_units(bn) == (bn == 32 ? 4 : bn == 64 ? 2 : 1));
  }
  // Without the swizzle the words still arrive, but a quarter-warp's 4 lanes of one g
  // read one bank group; a read-back unit with g and t swapped delivers wrong words.
  auto plain = [](int, int u) { return u; };
  const SlotCheck p = skinny_slot_check(64, +plain);
  CHECK(p.wrong_words == 0);
  CHECK(p.read_conflicts > 0);
  auto swapped = [](int bn, int lane, int j) { return lane / 4 % 4 * (bn / 4) + 8 * j + lane % 4 + 4 * (lane / 16); };
  CHECK(skinny_slot_check(64, +swizzled, +swapped).wrong_words > 0);
}

TEST_CASE("skinny: config validity") {
  using kf::w4a16::skinny::valid;
  CHECK(valid(12288, 2048, 128, 64, 4, 1, 2));
  CHECK_FALSE(valid(12288, 2048, 128, 48, 4, 1, 1));  // not whole 32-column chunks
  CHECK(valid(1024, 2048, 128, 64, 8, 4, 1));         // 64 k per warp: half a group, folded once
  CHECK_FALSE(valid(1024, 768, 128, 64, 8, 1, 1));    // 96 k per warp would straddle two groups
  CHECK(valid(2048, 512, 32, 64, 4, 4, 1));            // 32 k per warp = one g32 group, one span
  CHECK_FALSE(valid(2048, 512, 32, 64, 4, 4, 2));      // more ring slots than the slice has spans
  CHECK(valid(2048, 4096, 4096, 64, 4, 2, 4));         // per-channel: one fold per warp slice
  CHECK(valid(2048, 4096, 4096, 64, 8, 16, 1));        // one span per warp is still a slice
  CHECK_FALSE(valid(2048, 4096, 4096, 64, 8, 32, 1));  // 16 k per warp: not a span
}

}  // TEST_SUITE

// Hopper's warpgroup MMA (kf_wgmma_layout.h). The device check (gpu_check_wgmma_layout)
// proves the layouts against the hardware; these pin the index math's own properties.
TEST_CASE("wgmma layouts: A and D per warp are the m16n8k16 fragments shifted by 16 rows") {
  for (int warp = 0; warp < 4; ++warp)
    for (int lane = 0; lane < 32; ++lane) {
      for (int p = 0; p < 4; ++p) {
        const kf::layout::RC w = kf::wg::a_pair(warp, lane, p), m = kf::layout::Mma16Sm80::a_pair(lane, p);
        CHECK(w.row == 16 * warp + m.row);
        CHECK(w.col == m.col);
      }
      for (int e = 0; e < 128; ++e) {  // N = 256: 32 column groups of 8
        const kf::layout::RC d = kf::wg::d_elem(warp, lane, e), c = kf::layout::Mma16Sm80::c_elem(lane, e % 4);
        CHECK(d.row == 16 * warp + c.row);
        CHECK(d.col == 8 * (e / 4) + c.col);
      }
    }
}

// The MN-major reading (kf_wgmma_forms_layout.h) of a 128-byte swizzled tile: every
// element once, and the strides its descriptor states (the next 64-element n block, the
// next 8 rows of k) hold for every element; within an 8-row atom the rows are 128 bytes
// apart whatever the swizzle, so a k16 step starting at a multiple of 8 rows keeps it.
TEST_CASE("wgmma MN-major tiles: a bijection with the descriptor's strides") {
  for (int k_extent : {16, 64, 128})
    for (int n_extent : {64, 256, 512}) {
      CAPTURE(k_extent);
      CAPTURE(n_extent);
      std::set<int> offsets;
      for (int k = 0; k < k_extent; ++k)
        for (int n = 0; n < n_extent; ++n) {
          const int off = kf::wg::mn_tile_offset_sw128(k, n, k_extent);
          offsets.insert(off);
          if (n + 64 < n_extent)
            CHECK(kf::wg::mn_tile_offset_sw128(k, n + 64, k_extent) - off == kf::wg::mn_leading_bytes(k_extent));
          if (k + 8 < k_extent) CHECK(kf::wg::mn_tile_offset_sw128(k + 8, n, k_extent) - off == kf::wg::kMnStrideBytes);
          // 16-byte chunks hold 8 consecutive n of one k row.
          CHECK(off / 16 == kf::wg::mn_tile_offset_sw128(k, n / 8 * 8, k_extent) / 16);
        }
      CHECK(offsets.size() == static_cast<size_t>(k_extent) * n_extent);
      CHECK(*offsets.rbegin() == 2 * k_extent * n_extent - 2);
    }
}

TEST_CASE("wgmma B tiles: both layouts place every element once, core matrices conflict-free") {
  for (int n_extent : {64, 128, 256}) {
    for (int k_extent : {16, 64, 128}) {
      std::set<int> plain, swizzled;
      for (int n = 0; n < n_extent; ++n)
        for (int k = 0; k < k_extent; ++k) {
          plain.insert(kf::wg::b_tile_offset(n, k, k_extent));
          if (k_extent % 64 == 0) swizzled.insert(kf::wg::b_tile_offset_sw128(n, k, n_extent));
        }
      const size_t elems = static_cast<size_t>(n_extent) * k_extent;
      CHECK(plain.size() == elems);
      CHECK(*plain.rbegin() == 2 * static_cast<int>(elems) - 2);
      if (k_extent % 64 == 0) {
        CHECK(swizzled.size() == elems);
        CHECK(*swizzled.rbegin() == 2 * static_cast<int>(elems) - 2);
      }
    }
    // Eight rows of one 8-k chunk (a core matrix's rows, or eight copies of one phase)
    // land in eight different 16-byte bank groups of a 128-byte line.
    for (int k = 0; k < 64; k += 8)
      for (int n0 = 0; n0 < n_extent; n0 += 8) {
        std::set<int> groups;
        for (int r = 0; r < 8; ++r) groups.insert(kf::wg::b_tile_offset_sw128(n0 + r, k, n_extent) / 16 % 8);
        CHECK(groups.size() == 8);
      }
  }
}

// The sparse MLA wgmma kind hands S's accumulators to P V as A registers
// (acc_pair_elem) and gathers rows by row_piece_offset: both against the layouts above.
TEST_CASE("wgmma: an accumulator pair is the A register of the next product's k16 step") {
  for (int warp = 0; warp < 4; ++warp)
    for (int lane = 0; lane < 32; ++lane)
      for (int j = 0; j < 4; ++j)
        for (int p = 0; p < 4; ++p) {
          CAPTURE(warp);
          CAPTURE(lane);
          CAPTURE(j);
          CAPTURE(p);
          const int e = kf::wg::acc_pair_elem(j, p);
          const kf::layout::RC a = kf::wg::a_pair(warp, lane, p), d0 = kf::wg::d_elem(warp, lane, e),
                               d1 = kf::wg::d_elem(warp, lane, e + 1);
          CHECK(d0.row == a.row);
          CHECK(d0.col == 16 * j + a.col);
          CHECK(d1.row == a.row);
          CHECK(d1.col == d0.col + 1);
        }
}

TEST_CASE("sparse MLA wgmma: a row piece lands where the swizzled tile puts it, from any 8-row base") {
  namespace t = kf::mla::wgmma;
  std::set<int> seen;
  for (int r = 0; r < t::kBlockK; ++r)
    for (int piece = 0; piece < kf::mla::kHeadDim / 8; ++piece) {
      CAPTURE(r);
      CAPTURE(piece);
      const int off = t::row_piece_offset(r, piece);
      CHECK(off == kf::wg::b_tile_offset_sw128(r, 8 * piece, t::kBlockK));
      CHECK(off == (r / 8 * 8) * 128 + t::row_piece_offset(r % 8, piece));  // a warp's run from its first row
      seen.insert(off);
    }
  CHECK(seen.size() == static_cast<size_t>(t::kBlockK) * kf::mla::kHeadDim / 8);
  CHECK(*seen.rbegin() + 16 == t::kTileBytes);
}

TEST_CASE("sparse MLA wgmma: the gather's four-row copies cover a warp's rows once, at row_piece_offset") {
  namespace t = kf::mla::wgmma;
  constexpr int kRowsPerWarp = t::kBlockK / 4, kBlocks = kf::mla::kHeadDim / 64;
  std::set<std::pair<int, int>> copied;
  for (int lane = 0; lane < 32; ++lane)
    for (int g = 0; g < kRowsPerWarp / t::kGatherRows; ++g)
      for (int b = 0; b < kBlocks; ++b) {
        CAPTURE(lane);
        CAPTURE(g);
        CAPTURE(b);
        const int r = t::gather_row(lane, g), piece = t::gather_piece(lane, b);
        CHECK(r < kRowsPerWarp);
        CHECK(t::gather_lane_base(lane, g % 2) + t::gather_step(g, b) == t::row_piece_offset(r, piece));
        copied.insert({r, piece});
      }
  CHECK(copied.size() == static_cast<size_t>(kRowsPerWarp) * kf::mla::kHeadDim / 8);
  // One copy instruction (fixed g, b) writes four whole 128-byte lines: no bank conflict.
  for (int g = 0; g < kRowsPerWarp / t::kGatherRows; ++g)
    for (int b = 0; b < kBlocks; ++b) {
      std::set<int> lines, chunks;
      for (int lane = 0; lane < 32; ++lane) {
        const int off = t::gather_lane_base(lane, g % 2) + t::gather_step(g, b);
        lines.insert(off / 128);
        chunks.insert(off / 16);
      }
      CHECK(lines.size() == 4);
      CHECK(chunks.size() == 32);
    }
}

TEST_CASE("wgmma: advancing a descriptor by a byte offset equals building it at the new address") {
  const uint64_t flags = uint64_t{1} << 16 | uint64_t{1024 >> 4} << 32 | uint64_t{1} << 62;
  constexpr uint32_t kShared = 232448;  // sm_90a's largest block allocation
  for (uint32_t base = 0; base < kShared; base += 1024)
    for (uint32_t bytes = 0; base + bytes < kShared; bytes += 2064) {  // 16-byte multiples
      CAPTURE(base);
      CAPTURE(bytes);
      CHECK(kf::wg::desc_advance(kf::wg::desc_start_field(base) | flags, bytes) ==
            (kf::wg::desc_start_field(base + bytes) | flags));
    }
  // The field is the address's bits 4..17: an address past 2^18 would wrap, which no
  // shared-memory tile reaches.
  CHECK(kf::wg::desc_start_field(0x40000u) == 0);
}
