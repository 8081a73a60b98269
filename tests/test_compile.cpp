// End to end with the real device compilers: a decode and a prefill kernel per arch go
// through kf::run_genkernels into a fresh pack, and the pack, the emitted sources and
// the compile cache are checked. A compile error must be recorded, not abort the run.
//
// Without a compiler the arch is skipped with a message, except where the environment
// variable CI is set (CI has every compiler), where it fails.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include "test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <iterator>
#include <sstream>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "arch.h"
#include "backend.h"
#include "error.h"
#include "genkernels.h"
#include "mla_family.h"
#include "mxfp4_family.h"
#include "mxfp4_moe/decode_tiling.h"
#include "mxfp4_moe/tiling.h"
#include "pack.h"
#include "process.h"
#include "sparse_mla/launch.h"
#include "sparse_mla/wgmma_tiling.h"
#include "w4a16_linear/tiling.h"
#include "w4a16_linear/wgmma_tiling.h"

namespace {

using namespace kf_test;

namespace fs = std::filesystem;

// The smallest shape of the default model, one decode and one prefill config that
// every arch enumerates.
const char* const kShape = "n2048_k512_g128_bf16_sym";
const char* const kFilter =
    "_n2048_k512_g128_bf16_sym_(bm1_bn64_bk32_w4_sk1_s1|bm64_bn64_bk64_w4_sk1_s1)$";

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// True when the arch's compiler is usable; otherwise skips (MESSAGE) or, under CI, fails.
bool have_compiler(const std::string& arch) {
  try {
    kf::make_backend(kf::arch_info(arch), {});
    return true;
  } catch (const kf::Error& e) {
    if (std::getenv("CI")) FAIL("no compiler for " << arch << " under CI: " << std::string(e.what()));
    MESSAGE("skipped " << arch << ": " << std::string(e.what()));
    return false;
  }
}

kf::GenOptions options(const TempDir& tmp, const std::string& arch) {
  kf::GenOptions opt;
  opt.archs = {arch};
  opt.ops = {"w4a16_linear"};
  opt.filter = kFilter;
  opt.out_dir = tmp.sub("out");
  opt.cache_dir = tmp.sub("cache");
  opt.progress = false;
  opt.jobs = 2;
  return opt;
}

bool have_objdump() {
  return !kf::find_program({"llvm-objdump-19", "/usr/lib/llvm-19/bin/llvm-objdump"}).empty();
}

// Disassembles `kernel` of an AMDGPU code object, or "" without llvm-objdump-19.
std::string disassemble(const TempDir& tmp, const std::vector<uint8_t>& object, const std::string& kernel) {
  const std::string objdump = kf::find_program({"llvm-objdump-19", "/usr/lib/llvm-19/bin/llvm-objdump"});
  if (objdump.empty()) return "";
  const std::string path = tmp.sub(kernel + ".hsaco");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(object.data()), static_cast<std::streamsize>(object.size()));
  const kf::ProcessResult r = kf::run_process({objdump, "-d", "--disassemble-symbols=" + kernel, path});
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  return r.output;
}

void compile_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  const kf::GenOptions opt = options(tmp, arch);
  std::ostringstream out, err;
  const kf::GenStats first = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(first.candidates == 2);
  CHECK(first.compiled == 2);
  CHECK(first.cached == 0);
  CHECK(first.compile_errors == 0);
  CHECK(first.ok + first.pruned == 2);

  std::vector<kf::PackKernel> rows;
  {
    const kf::Pack pack = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false);
    rows = pack.kernels();
    bool has_layer = false;
    for (const auto& s : pack.shapes())
      has_layer |= s.layer == "shared_expert.down_proj" && s.shape == kShape && s.count == 40;
    CHECK(has_layer);
  }
  REQUIRE(rows.size() == 2);
  int decode = 0, prefill = 0;
  for (const auto& r : rows) {
    INFO(r.arch << " " << r.name << " status " << r.status << "\nlog:\n" << r.log);
    CHECK(r.arch == arch);
    CHECK(r.shape == kShape);
    CHECK((r.status == "ok" || starts_with(r.status, "pruned:")));
    CHECK_FALSE(r.code_object.empty());
    CHECK(r.vgprs_or_regs > 0);
    CHECK(r.lds_bytes > 0);  // both kinds stage through shared memory
    CHECK(r.threads == 4 * info.wave_size);
    CHECK(r.occupancy > 0);
    CHECK_FALSE(r.compiler.empty());
    CHECK(r.source_hash.size() == 64);
    if (info.vendor == kf::Vendor::amd) {
      CHECK(r.sgprs > 0);
      // An AMDGPU code object is an ELF.
      CHECK((r.code_object.size() > 4 && r.code_object[0] == 0x7f && r.code_object[1] == 'E'));
    }
    if (r.kind == "decode") {
      ++decode;
      CHECK(r.mma_count == -1);  // not asked for a kind without matrix instructions
    } else {
      ++prefill;
      if (info.vendor == kf::Vendor::amd && !have_objdump()) {
        // The count needs llvm-objdump-19 (-1 = could not count).
        if (std::getenv("CI")) FAIL("llvm-objdump-19 missing under CI");
        MESSAGE("mma check skipped for " << r.name << ": llvm-objdump-19 not found");
      } else if (info.vendor == kf::Vendor::amd) {
        CHECK(r.mma_count > 0);
        const std::string want = info.mma == "v_wmma" ? "v_wmma_f32_16x16x16_bf16" : "v_mfma_f32_16x16x16";
        const std::string other = info.mma == "v_wmma" ? "v_mfma_" : "v_wmma_";
        const std::string dis = disassemble(tmp, r.code_object, r.name);
        if (!dis.empty()) {
          CHECK(contains(dis, want));
          CHECK_FALSE(contains(dis, other));
        }
      }
    }
    // The emitted source, in the output tree, marked as generated.
    const std::string src = opt.out_dir + "/src/" + arch + "/" + r.name + ".cu";
    REQUIRE(fs::exists(src));
    const std::string text = read_text(src);
    CHECK(starts_with(text, "// Generated by kforge"));
    CHECK(contains(text, " void " + r.name + "("));
  }
  CHECK(decode == 1);
  CHECK(prefill == 1);

  // Nothing changed: everything comes from the cache, with the same results.
  std::ostringstream out2, err2;
  const kf::GenStats second = kf::run_genkernels(opt, out2, err2);
  CHECK(second.candidates == first.candidates);
  CHECK(second.cached == second.candidates);
  CHECK(second.compiled == 0);
  CHECK(second.ok == first.ok);
  const auto again = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  REQUIRE(again.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(again[i].name == rows[i].name);
    CHECK(again[i].status == rows[i].status);
    CHECK(again[i].code_object == rows[i].code_object);
    CHECK(again[i].mma_count == rows[i].mma_count);
  }
}

// The MoE family on `arch`: the three helpers and one decode and one prefill kernel of
// each GEMM compile cleanly, and the prefill ones use the matrix instructions.
void compile_moe_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  kf::GenOptions opt = options(tmp, arch);
  opt.ops = {"w4a16_moe_gemm1", "w4a16_moe_gemm2"};
  opt.filter = "^moe_|_decode_.*_bm4_bn64_bk32_w4_sk1_s1$|_prefill_.*_bm32_bn64_bk32_w4_sk1_s2$";
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.compile_errors == 0);
  const auto rows = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  std::map<std::string, int> by_kind;
  for (const auto& r : rows) {
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    if (r.op == "util") continue;
    ++by_kind[r.op + " " + r.kind];
    CHECK(r.status != "compile_error");
    CHECK_FALSE(r.code_object.empty());
    if (r.kind == "prefill" && info.vendor == kf::Vendor::amd && have_objdump()) CHECK(r.mma_count > 0);
    if (r.kind == "prefill" && info.vendor == kf::Vendor::amd) CHECK(r.status == "ok");
  }
  CHECK(by_kind["moe_align align"] == 1);
  CHECK(by_kind["moe_align align_cluster"] == (info.warpgroup_mma ? 1 : 0));
  CHECK(by_kind["moe_silu_mul silu_mul"] == 1);
  CHECK(by_kind["moe_sum sum"] == 1);
  CHECK(by_kind["w4a16_moe_gemm1 prefill"] == 1);
  CHECK(by_kind["w4a16_moe_gemm2 prefill"] == 1);
  CHECK(by_kind["w4a16_moe_gemm1 decode"] == 1);
  CHECK(by_kind["w4a16_moe_gemm2 decode"] == 1);
  bool layers = false;
  for (const auto& s : kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).shapes())
    layers |= s.op == "w4a16_moe_gemm2" && s.layer == "experts.down_proj" && s.shape == "e256_topk8_n2048_k512_g128_bf16_sym";
  CHECK(layers);
}

// Generates what `opt` selects and counts its kernels of `kind`, each of which must have
// compiled ("ok") without spills; `each` adds the caller's checks of every such kernel
// (the failure message names it and shows its compiler log).
int compiled_without_spills(const kf::GenOptions& opt, const std::string& kind,
                            const std::function<void(const kf::PackKernel&)>& each = {}) {
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.compile_errors == 0);
  int count = 0;
  for (const auto& r : kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels()) {
    if (r.kind != kind) continue;
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    ++count;
    CHECK(r.status == "ok");
    CHECK(r.spills == 0);
    if (each) each(r);
  }
  return count;
}

// The skinny kind (sm_90a only): bf16 and fp16, symmetric and asymmetric, group 128 and
// per-channel, unsplit and split-K, rings of 3 to 6; every kernel compiles without
// spilling and uses the tensor cores wherever the backend can count them. (2 warps of
// block_m 16 with a ring of 8 sit at the 168-register cap and spill a word since the
// weight pairs are one lop3 each, with the bias in a register: genkernels prunes them.)
void compile_skinny_sm90a() {
  if (!have_compiler("sm_90a")) return;
  TempDir tmp;
  kf::GenOptions opt = options(tmp, "sm_90a");
  opt.group_sizes = {128, 0};
  opt.dtypes = {"bf16", "fp16"};
  opt.quants = {"sym", "asym"};
  opt.filter = "_skinny_n2048_k4096_.*_(bm16_bn64_bk32_w2_sk1_s6|bm16_bn128_bk32_w4_sk2_s3|bm8_bn64_bk32_w4_sk1_s6)$";
  // Three configs (the deepest ring, the widest tile, the swapped form) x dtype x
  // quantisation x grouping.
  CHECK(compiled_without_spills(opt, "skinny", [](const kf::PackKernel& r) {
          CHECK(r.mma_count != 0);  // -1: not countable here; 0 would mean no tensor-core instruction
        }) == 3 * 2 * 2 * 2);

  // The MoE GEMMs on the skinny body: gemm1 plain and with the fused SiLU, gemm2 plain
  // and summing over top_k.
  TempDir moe_tmp;
  kf::GenOptions mo = options(moe_tmp, "sm_90a");
  mo.ops = {"w4a16_moe_gemm1", "w4a16_moe_gemm2"};
  mo.filter = "_skinny_.*_bm16_bn64_bk32_w4_sk1_s2(_silu|_red)?$";
  CHECK(compiled_without_spills(mo, "skinny") == 4);
}

// The pipelined prefill (stages >= 3) on `arch`: symmetric bf16 unsplit and asymmetric
// fp16 split-K, the linear and the MoE GEMM bodies; every kernel compiles, keeps its
// stages within the static shared memory the tiling counted, and (AMD) uses the matrix
// instructions.
void compile_pipelined_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  kf::GenOptions opt = options(tmp, arch);
  opt.ops = {"w4a16_linear", "w4a16_moe_gemm1"};
  opt.dtypes = {"bf16", "fp16"};
  opt.quants = {"sym", "asym"};
  opt.filter =
      "_prefill_(n2048_k512|e256_topk8_n1024_k2048)_g128_(bf16_sym_bm32_bn64_bk64_w4_sk1_s3|fp16_asym_bm16_bn128_bk64_w4_sk2_s4)$";
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.candidates == 4);
  CHECK(stats.compile_errors == 0);
  const auto rows = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  REQUIRE(rows.size() == 4);
  for (const auto& r : rows) {
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    CHECK(r.kind == "prefill");
    CHECK(r.status == "ok");
    const bool asym = contains(r.name, "_asym_");
    const int bytes = asym ? kf::w4a16::pipelined_smem_bytes(16, 128, 64, 4, true)
                           : kf::w4a16::pipelined_smem_bytes(32, 64, 64, 3, false);
    CHECK(r.lds_bytes >= bytes - 16);  // the stages, and the split-K flag when split
    CHECK(r.lds_bytes <= bytes);
    if (info.vendor == kf::Vendor::amd && have_objdump()) CHECK(r.mma_count > 0);
  }
}

// The sparse_mla family on `arch`: an unsplit and a split decode config, a split wgmma
// config where the arch has the warpgroup MMA, and the combine kernel compile cleanly within the shared memory launch.h counts, and the decode
// kernels use the matrix instructions.
void compile_mla_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  kf::GenOptions opt = options(tmp, arch);
  opt.model = "deepseek-v3.2";
  opt.ops = {"sparse_mla_decode"};
  // The wgmma kind exists on sm_90a only: elsewhere the last alternative matches nothing.
  opt.filter =
      "^sparse_mla_combine|_h32_topk2048_x0_bf16_(bh16_bk16_w8_sp1_s2|bh32_bk16_w16_sp8_s1)$|"
      "^sparse_mla_decode_wgmma_h128_topk2048_x0_bf16_bh64_bk64_w8_sp2_s2$";
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.compile_errors == 0);
  const auto rows = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  std::map<std::string, int> by_kind;
  for (const auto& r : rows) {
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    if (r.op == "util") continue;
    ++by_kind[r.op + " " + r.kind];
    CHECK(r.status == "ok");
    CHECK(r.lds_bytes <= (r.kind == "wgmma" ? kf::mla::wgmma::kMaxShared : info.max_lds_per_block));
    if (r.kind == "wgmma") {  // Q and both KV stages are dynamic shared memory, counted with the static part
      CHECK(r.lds_bytes >= kf::mla_dynamic_shared(kf::parse_mla_config(r.config, r.kind)));
      CHECK(r.spills == 0);
    }
    if (r.kind == "decode") {
      const kf::MlaConfig c = kf::parse_mla_config(r.config);
      CHECK(r.lds_bytes <= kf::mla::decode_smem_bytes(c.block_h, c.block_k, c.warps, c.stages));
      if (info.vendor == kf::Vendor::amd && have_objdump()) CHECK(r.mma_count > 0);
    }
  }
  CHECK(by_kind["sparse_mla_decode decode"] == 2);
  CHECK(by_kind["sparse_mla_decode wgmma"] == (info.warpgroup_mma ? 1 : 0));
  CHECK(by_kind["sparse_mla_combine combine"] == 1);
}

// The wgmma kind (sm_90a only) in each of its tile families, the ones the shipped DB
// serves among them: one to four warpgroups (block_n 64-256; four at 64 rows, since dense
// rows give four warpgroups 104 registers a thread beside the producer, too few for 128:
// wgmma_tiling.h), 32- to 256-row blocks,
// split-K through a cluster; the MoE GEMMs over gathered rows with the fused SiLU and
// the top_k-reducing epilogues. Every kernel compiles without spills and has warpgroup
// products in its SASS.
void compile_wgmma_sm90a() {
  if (!have_compiler("sm_90a")) return;
  TempDir tmp;
  kf::GenOptions opt = options(tmp, "sm_90a");
  opt.ops = {"w4a16_linear", "w4a16_moe_gemm1", "w4a16_moe_gemm2"};
  opt.filter =
      "^w4a16_linear_wgmma_n12288_k2048_g128_bf16_sym_(bm256_bn128_bk64_w8_sk1_s5|bm128_bn192_bk128_w12_sk1_s4|"
      "bm32_bn64_bk128_w4_sk2_s4)$|^w4a16_linear_wgmma_n2048_k4096_g128_bf16_sym_bm64_bn256_bk64_w16_sk1_s4$|"
      "^w4a16_moe_gemm1_wgmma_.*_bm128_bn256_bk128_w16_sk1_s4_silu$|"
      "^w4a16_moe_gemm2_wgmma_.*_(bm128_bn256_bk128_w16_sk1_s3|bm32_bn128_bk64_w8_sk1_s4)_red$";
  CHECK(compiled_without_spills(opt, "wgmma", [](const kf::PackKernel& r) {
          CHECK(r.mma_count != 0);  // -1: not countable here; 0 would mean no warpgroup product
          std::smatch warps;
          REQUIRE(std::regex_search(r.name, warps, std::regex("_w([0-9]+)_")));
          // Dense rows: the warpgroups and a producer warpgroup; gathered rows: the warpgroups.
          const int w = std::stoi(warps[1]);
          CHECK(r.threads == (r.op == "w4a16_linear" ? kf::w4a16::wgmma::block_threads(w) : 32 * w));
        }) == 7);
}

// gemm1 with the fused SiLU-and-mul epilogue (templates/w4a16_linear/silu.h) on `arch`:
// decode unsplit and split-K, the staged, pipelined and split-K pipelined prefill (bf16
// symmetric), an asymmetric fp16 split-K decode and staged prefill. Every kernel
// compiles with its _silu name as the symbol, and (AMD) the prefill ones use the matrix
// instructions.
void compile_silu_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  kf::GenOptions opt = options(tmp, arch);
  opt.ops = {"w4a16_moe_gemm1"};
  opt.dtypes = {"bf16", "fp16"};
  opt.quants = {"sym", "asym"};
  opt.filter =
      "_e256_topk8_n1024_k2048_g128_(bf16_sym_(bm4_bn64_bk32_w4_sk1_s1|bm8_bn128_bk32_w4_sk2_s1|bm32_bn64_bk32_w4_sk1_s2|"
      "bm64_bn128_bk64_w4_sk1_s3|bm16_bn128_bk64_w4_sk4_s4)|fp16_asym_(bm4_bn64_bk32_w4_sk2_s1|bm32_bn128_bk32_w8_sk1_s2))"
      "_silu$";
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.candidates == 7);
  CHECK(stats.compile_errors == 0);
  const auto rows = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  int fused = 0;
  for (const auto& r : rows) {
    if (r.op != "w4a16_moe_gemm1") continue;
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    ++fused;
    CHECK(contains(r.name, "_silu"));
    CHECK(contains(r.config, "_silu"));
    CHECK(r.status != "compile_error");
    CHECK_FALSE(r.code_object.empty());
    CHECK(contains(read_text(opt.out_dir + "/src/" + arch + "/" + r.name + ".cu"), "/*SILU=*/true"));
    if (r.kind == "prefill" && info.vendor == kf::Vendor::amd && have_objdump()) CHECK(r.mma_count > 0);
  }
  CHECK(fused == 7);
}

// gemm2 with the epilogue that sums over top_k with packed 16-bit atomics
// (templates/w4a16_moe/atomic_add.h) on `arch`: decode unsplit and split-K, the staged,
// pipelined and split-K pipelined prefill (bf16 symmetric), an asymmetric fp16 split-K
// decode and staged prefill, on the down projection. Every kernel compiles with its _red name as the
// symbol and no spills, and (AMD) the prefill ones use the matrix instructions.
void compile_red_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  kf::GenOptions opt = options(tmp, arch);
  opt.ops = {"w4a16_moe_gemm2"};
  opt.dtypes = {"bf16", "fp16"};
  opt.quants = {"sym", "asym"};
  opt.filter =
      "_e256_topk8_n2048_k512_g128_(bf16_sym_(bm4_bn64_bk32_w4_sk1_s1|bm2_bn64_bk32_w4_sk2_s1|bm32_bn64_bk32_w4_sk1_s2|"
      "bm64_bn128_bk64_w4_sk1_s3|bm16_bn128_bk64_w4_sk4_s4)|fp16_asym_(bm4_bn64_bk32_w4_sk2_s1|bm32_bn128_bk32_w8_sk1_s2))"
      "_red$";
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.candidates == (info.wave_size == 64 ? 5 : 7));  // wave64: two decode tiles fewer
  CHECK(stats.compile_errors == 0);
  const auto rows = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  int reducing = 0;
  for (const auto& r : rows) {
    if (r.op != "w4a16_moe_gemm2") continue;
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    ++reducing;
    CHECK(contains(r.name, "_red"));
    CHECK(contains(r.config, "_red"));
    CHECK(r.status != "compile_error");
    CHECK(r.spills == 0);
    CHECK_FALSE(r.code_object.empty());
    CHECK(contains(read_text(opt.out_dir + "/src/" + arch + "/" + r.name + ".cu"), "/*RED=*/true"));
    if (r.kind == "prefill" && info.vendor == kf::Vendor::amd && have_objdump()) CHECK(r.mma_count > 0);
  }
  CHECK(reducing == stats.candidates);
}

// The mxfp4_moe family on `arch`: a decode-sized fused-SwiGLU gemm1 and a prefill-sized
// gemm2 compile cleanly within tiling.h's shared memory and use the matrix instructions;
// on sm_90a also a split-K decode config (a thread-block cluster).
void compile_mxfp4_arch(const std::string& arch) {
  if (!have_compiler(arch)) return;
  const kf::ArchInfo& info = kf::arch_info(arch);
  TempDir tmp;
  kf::GenOptions opt = options(tmp, arch);
  opt.model = "gpt-oss-20b";
  opt.ops = {"mxfp4_moe"};
  opt.filter = "^moe_align|_swiglu_bm16_bn64_bk64_w4_s2_ep1$|gemm2_e.*_bm64_bn64_bk32_w4_s2_ep1$|_decode_.*_bm4_bn32_bk32_w4_s1_ep1$|_decode_.*_bm1_bn16_bk32_w8_s1_ep1_sk2$";
  std::ostringstream out, err;
  const kf::GenStats stats = kf::run_genkernels(opt, out, err);
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.compile_errors == 0);
  std::map<std::string, int> by_op;
  for (const auto& r : kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels()) {
    INFO(r.name << " status " << r.status << "\nlog:\n" << r.log);
    ++by_op[r.op];
    CHECK(r.status == "ok");
    if (r.op.rfind("mxfp4_moe_", 0) == 0 && r.kind == "decode") {
      const kf::Mxfp4Config c = kf::parse_mxfp4_config(r.config, "decode");
      CHECK(r.lds_bytes <= kf::mxfp4::decode_smem_bytes(c.block_m, c.block_n, 2880, c.split_k));
    } else if (r.op.rfind("mxfp4_moe_", 0) == 0) {
      const kf::Mxfp4Config c = kf::parse_mxfp4_config(r.config);
      CHECK(r.lds_bytes <= kf::mxfp4::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, c.subtiles));
      if (info.vendor == kf::Vendor::amd && have_objdump()) CHECK(r.mma_count > 0);
    }
  }
  const int split = info.warpgroup_mma ? 1 : 0;  // split-K clusters are sm_90a's
  CHECK(by_op["mxfp4_moe_gemm1"] == 2 + split);  // the matrix kind and the decode kind
  CHECK(by_op["mxfp4_moe_gemm2"] == 2 + split);
  CHECK(by_op["moe_align"] == 1 + split);  // and the cluster form where clusters exist
}

}  // namespace

TEST_SUITE("compile") {

TEST_CASE("compile the MXFP4 MoE family, gfx1151") { compile_mxfp4_arch("gfx1151"); }
TEST_CASE("compile the MXFP4 MoE family, gfx942") { compile_mxfp4_arch("gfx942"); }
TEST_CASE("compile the MXFP4 MoE family, sm_90a") { compile_mxfp4_arch("sm_90a"); }

TEST_CASE("compile the fused SiLU gemm1, gfx1151") { compile_silu_arch("gfx1151"); }
TEST_CASE("compile the fused SiLU gemm1, gfx942") { compile_silu_arch("gfx942"); }
TEST_CASE("compile the fused SiLU gemm1, sm_90a") { compile_silu_arch("sm_90a"); }
TEST_CASE("compile the top_k-reducing gemm2, gfx1151") { compile_red_arch("gfx1151"); }
TEST_CASE("compile the top_k-reducing gemm2, gfx942") { compile_red_arch("gfx942"); }
TEST_CASE("compile the top_k-reducing gemm2, sm_90a") { compile_red_arch("sm_90a"); }

TEST_CASE("compile the sparse MLA family, gfx1151") { compile_mla_arch("gfx1151"); }
TEST_CASE("compile the sparse MLA family, gfx942") { compile_mla_arch("gfx942"); }
TEST_CASE("compile the sparse MLA family, sm_90a") { compile_mla_arch("sm_90a"); }

TEST_CASE("compile the MoE family, gfx1151") { compile_moe_arch("gfx1151"); }
TEST_CASE("compile the MoE family, gfx942") { compile_moe_arch("gfx942"); }
TEST_CASE("compile the MoE family, sm_90a") { compile_moe_arch("sm_90a"); }

TEST_CASE("compile the skinny kind, sm_90a") { compile_skinny_sm90a(); }
TEST_CASE("compile the wgmma kind, sm_90a") { compile_wgmma_sm90a(); }

TEST_CASE("compile the pipelined prefill, gfx1151") { compile_pipelined_arch("gfx1151"); }
TEST_CASE("compile the pipelined prefill, gfx942") { compile_pipelined_arch("gfx942"); }
TEST_CASE("compile the pipelined prefill, sm_90a") { compile_pipelined_arch("sm_90a"); }

TEST_CASE("compile gfx1151") { compile_arch("gfx1151"); }
TEST_CASE("compile gfx1100") { compile_arch("gfx1100"); }
TEST_CASE("compile gfx942") { compile_arch("gfx942"); }
TEST_CASE("compile sm_90a") { compile_arch("sm_90a"); }

TEST_CASE("a compile error is recorded in the pack, not fatal") {
  const std::string arch = "gfx1151";
  if (!have_compiler(arch)) return;
  TempDir tmp;
  const std::string templates = tmp.sub("templates");
  fs::copy(KF_TEMPLATE_DIR, templates, fs::copy_options::recursive);
  {
    std::ofstream f(templates + "/w4a16_linear/prefill.h", std::ios::app);
    f << "\n#error broken on purpose\n";
    REQUIRE(f.good());
  }
  kf::GenOptions opt = options(tmp, arch);
  opt.templates_dir = templates;
  std::ostringstream out, err;
  kf::GenStats stats;
  REQUIRE_NOTHROW(stats = kf::run_genkernels(opt, out, err));
  INFO("genkernels output:\n" << out.str() << err.str());
  CHECK(stats.candidates == 2);
  CHECK(stats.compile_errors == 1);
  CHECK(stats.ok == 1);
  const auto rows = kf::Pack::open(opt.out_dir + "/kforge.sqlite", false).kernels();
  REQUIRE(rows.size() == 2);
  for (const auto& r : rows) {
    INFO(r.name << " status " << r.status);
    if (r.kind == "prefill") {
      CHECK(r.status == "compile_error");
      CHECK(contains(r.log, "broken on purpose"));
      CHECK(r.code_object.empty());
    } else {
      CHECK(r.status == "ok");
      CHECK_FALSE(r.code_object.empty());
      CHECK_FALSE(contains(r.log, "broken on purpose"));
    }
  }
}

// A gfx1151 pack built from a copy of the templates, with one fake measurement per
// kernel of `kind` as autotune would have stored: for the tests of what a rebuild keeps.
struct RebuildFixture {
  TempDir tmp;
  std::string templates = tmp.sub("templates");
  kf::GenOptions opt;
  std::string db;
  std::ostringstream out, err;

  RebuildFixture() {
    fs::copy(KF_TEMPLATE_DIR, templates, fs::copy_options::recursive);
    opt = options(tmp, "gfx1151");
    opt.templates_dir = templates;
    kf::run_genkernels(opt, out, err);
    db = opt.out_dir + "/kforge.sqlite";
  }
  void measure(const std::string& kind) {
    sql(db,
        "INSERT OR REPLACE INTO results (arch, device, op, shape, m, kernel, disposition, median_us, cold_l2,"
        " driver, runtime, compiler, kforge_version) SELECT arch, 'dev', op, shape, 1, name, 'passed', 10.0, 1,"
        " 'd', 'r', compiler, 'v' FROM kernels WHERE kind = '" + kind + "'");
  }
  int count(const std::string& query) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, query.c_str(), -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    const int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
  }
  int results_of(const std::string& kind) {
    return count("SELECT count(*) FROM results WHERE kernel LIKE 'w4a16_linear_" + kind + "_%'");
  }
  // Appends a line to the prefill template: a comment leaves its code alone, a variable
  // does not.
  void touch_prefill(const std::string& line) {
    std::ofstream f(templates + "/w4a16_linear/prefill.h", std::ios::app);
    f << "\n" << line << "\n";
  }
  kf::GenStats rebuild() { return kf::run_genkernels(opt, out, err); }
  // As tools/slim_db.py keeps a shipped DB's non-winners: no code object.
  void slim(const std::string& kind) {
    sql(db, "UPDATE kernels SET code_object = NULL, status = 'pruned:not_a_winner' WHERE kind = '" + kind + "'");
  }
};

TEST_CASE("measurements of a kernel rebuilt to other code are dropped; the same code keeps them") {
  if (!have_compiler("gfx1151")) return;
  RebuildFixture f;
  f.measure("decode");
  f.measure("prefill");
  REQUIRE(f.results_of("decode") == 1);
  REQUIRE(f.results_of("prefill") == 1);

  // Nothing changed: the measurements stay.
  CHECK(f.rebuild().stale_results == 0);
  CHECK(f.results_of("decode") == 1);
  CHECK(f.results_of("prefill") == 1);

  // The prefill template gains a comment: its kernel is rebuilt, to the same code
  // object, so its measurement still holds.
  f.touch_prefill("// changed");
  CHECK(f.rebuild().stale_results == 0);
  CHECK(f.results_of("decode") == 1);
  CHECK(f.results_of("prefill") == 1);

  // The prefill template's code changes (the kernel's object gains a variable): only its
  // kernel's measurement is stale.
  f.touch_prefill("__attribute__((device, used)) int kf_test_changed_prefill = 1;");
  const kf::GenStats stats = f.rebuild();
  CHECK(stats.compile_errors == 0);  // a rebuild that compiled, to other code
  CHECK(stats.stale_results == 1);
  CHECK(f.results_of("decode") == 1);
  CHECK(f.results_of("prefill") == 0);
}

TEST_CASE("a kernel stored without its code object keeps its measurements through a rebuild to the same code") {
  if (!have_compiler("gfx1151")) return;
  RebuildFixture f;
  f.measure("prefill");
  const int measured = f.results_of("prefill");
  REQUIRE(measured > 0);
  // Every built kernel's digest is stored beside it.
  CHECK(f.count("SELECT count(*) FROM code_digests") == f.count("SELECT count(*) FROM kernels WHERE status = 'ok'"));
  f.slim("prefill");

  // A comment: rebuilt to the same code, which the kept digest shows.
  f.touch_prefill("// changed");
  CHECK(f.rebuild().stale_results == 0);
  CHECK(f.results_of("prefill") == measured);

  // Slimmed again without digests (a DB slimmed before they were kept): nothing says the
  // code is the same, so the next rebuild drops the measurements.
  f.slim("prefill");
  sql(f.db, "DELETE FROM code_digests WHERE name LIKE 'w4a16_linear_prefill_%'");
  f.touch_prefill("// changed again");
  CHECK(f.rebuild().stale_results == measured);
  CHECK(f.results_of("prefill") == 0);

  // With the digest kept but the code changed, they go too.
  f.measure("prefill");
  f.slim("prefill");
  f.touch_prefill("__attribute__((device, used)) int kf_test_changed_prefill = 1;");
  CHECK(f.rebuild().stale_results == measured);
  CHECK(f.results_of("prefill") == 0);
}

}  // TEST_SUITE
