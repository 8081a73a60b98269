#include "linear_family.h"

#include <algorithm>
#include <regex>

#include "error.h"
#include "w4a16_linear/launch.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/tiling.h"
#include "w4a16_linear/wgmma_tiling.h"

namespace kf {

std::string LinearShape::key() const {
  return "n" + std::to_string(n) + "_k" + std::to_string(k) + "_g" +
         (group == 0 ? std::string("ch") : std::to_string(group)) + (bf16 ? "_bf16" : "_fp16") +
         (asym ? "_asym" : "_sym");
}

LinearShape parse_linear_shape(const std::string& key) {
  static const std::regex re("n([1-9][0-9]*)_k([1-9][0-9]*)_g(ch|[1-9][0-9]*)_(bf16|fp16)_(sym|asym)");
  std::smatch m;
  if (!std::regex_match(key, m, re))
    throw Error("bad w4a16_linear shape key '" + key +
                "' (expected like n12288_k2048_g128_bf16_sym)");
  LinearShape s;
  try {
    s.n = std::stoll(m[1]);
    s.k = std::stoll(m[2]);
    s.group = m[3] == "ch" ? 0 : std::stoi(m[3]);
  } catch (const std::out_of_range&) {
    throw Error("w4a16_linear shape key '" + key + "' has a number out of range");
  }
  s.bf16 = m[4] == "bf16";
  s.asym = m[5] == "asym";
  return s;
}

void validate_linear_shape(const LinearShape& s, const std::string& layer) {
  const std::string where = "w4a16_linear layer '" + layer + "' (" + s.key() + "): ";
  if (s.n <= 0 || s.k <= 0) throw Error(where + "N and K must be positive");
  if (s.group != 0 && s.group != 32 && s.group != 64 && s.group != 128)
    throw Error(where + "group size " + std::to_string(s.group) +
                " not supported (32, 64, 128 or per-channel)");
  if (s.k % s.effective_group() != 0)
    throw Error(where + "K = " + std::to_string(s.k) + " is not a multiple of the group size " +
                std::to_string(s.group));
  if (s.k % 32 != 0) throw Error(where + "K = " + std::to_string(s.k) + " is not a multiple of 32");
  if (s.n % 64 != 0) throw Error(where + "N = " + std::to_string(s.n) + " is not a multiple of 64");
}

const char* kind_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::decode: return "decode";
    case LinearKind::prefill: return "prefill";
    case LinearKind::skinny: return "skinny";
    case LinearKind::wgmma: return "wgmma";
    default: return "generic";
  }
}

std::string LinearConfig::key() const {
  return "bm" + std::to_string(block_m) + "_bn" + std::to_string(block_n) + "_bk" +
         std::to_string(block_k) + "_w" + std::to_string(warps) + "_sk" + std::to_string(split_k) +
         "_s" + std::to_string(stages) + (stream_blocks > 0 ? "_stk" + std::to_string(stream_blocks) : "") +
         (swapped ? "_sw" : "") + (silu ? "_silu" : "") + (red ? "_red" : "");
}

std::string linear_kernel_name(const LinearShape& shape, const LinearConfig& cfg) {
  return std::string("w4a16_linear_") + kind_name(cfg.kind) + "_" + shape.key() + "_" + cfg.key();
}

void append_skinny_configs(const LinearShape& s, const ArchInfo& arch, std::initializer_list<int> splits,
                           std::initializer_list<int> stages, std::vector<LinearConfig>& out,
                           std::initializer_list<int> block_ms, std::initializer_list<int> block_ns, bool swapped) {
  // NVIDIA only: the template is written against mma.sync's fragment layouts. block_n
  // 256 holds 16 accumulator atoms twice over (sums and group sums) and spills in nearly
  // every config. 16 warps halve each warp's chain of spans where a layer has too few
  // blocks to fill the SMs (1024x2048 at M = 1: 64 blocks of 8 warps, 7.5-11 cycles per
  // issued instruction; bench/NOTES.md linear v26).
  if (arch.vendor != Vendor::nvidia) return;
  const int n = static_cast<int>(s.n), k = static_cast<int>(s.k), g = s.effective_group();
  for (int bm : block_ms)
    for (int bn : block_ns)
      for (int w : {2, 4, 8, 16})
        for (int sk : splits)
          for (int st : stages)
            if (w4a16::skinny::valid(n, k, g, bn, w, sk, st, bm))
              out.push_back({LinearKind::skinny, bm, bn, w4a16::skinny::kSpan, w, sk, st, false, false, swapped});
}

std::vector<LinearConfig> enumerate_linear_configs(const LinearShape& s, const ArchInfo& arch) {
  std::vector<LinearConfig> out;
  const int n = static_cast<int>(s.n), k = static_cast<int>(s.k), g = s.effective_group();
  // Decode: rows per block up to 16 (the M range where streaming the weights once per
  // 16 rows is cheaper than a tiled MMA kernel), split-K for shapes with few N blocks.
  for (int bm : {1, 2, 4, 8, 16})
    for (int bn : {64, 128, 256})
      for (int bk : {32, 64})
        for (int w : {4, 8})
          for (int sk : {1, 2, 4, 8, 16}) {
            // Deep splits only for the few-row tiles: they exist to put enough blocks in
            // flight on narrow layers (N = 2048 gives 32 column blocks of 64).
            if (sk > 4 && bm > 4) continue;
            const int threads = w * arch.wave_size;
            if (!w4a16::decode_valid(n, k, g, bn, bk, threads, sk)) continue;
            out.push_back({LinearKind::decode, bm, bn, bk, w, sk, 1});
            // Prefetching the next k-step (a register ring of 2, decode.h) only matters
            // when a thread takes several. (A ring of 4 never came within 2% of the best
            // config at any M on the H200: bench/NOTES.md v7.)
            if (k / sk / (threads / (bn / 4) * bk) > 1) out.push_back({LinearKind::decode, bm, bn, bk, w, sk, 2});
          }
  append_skinny_configs(s, arch, {1, 2, 4, 8}, {2, 3, 4, 6, 8}, out, {16, 8});
  // Swapped-form widths that tile N into other block counts: 96 puts 12288 columns on
  // 128 blocks (one per SM of a 132-SM part; 64 gives 192, 1.45 waves) and 9216 on 96;
  // 32 doubles the blocks of the narrow layers.
  append_skinny_configs(s, arch, {1, 2, 4, 8}, {2, 3, 4, 6, 8}, out, {8}, {32, 96});
  // The swapped form at block_m 16 (_sw): M = 9-16 with each weight unpacked once for both
  // 8-row halves, where block_m 8 takes two blocks per column block (bench/NOTES.md v27).
  append_skinny_configs(s, arch, {1, 2}, {2, 4}, out, {16}, {32, 64, 96, 128}, /*swapped=*/true);
  for (int bm : {16, 32, 64, 128})
    for (int bn : {64, 128, 256})
      for (int bk : {32, 64})
        for (int w : {4, 8})
          for (int st : {1, 2}) {
            if (!w4a16::prefill_valid(n, k, g, bm, bn, bk, w)) continue;
            out.push_back({LinearKind::prefill, bm, bn, bk, w, 1, st});
          }
  // Split-K matrix kernels for small M (a few M tiles): enough blocks in flight to
  // stream the weights, the MMA doing the arithmetic the decode kind does on CUDA cores.
  for (int bm : {16, 32})
    for (int bn : {64, 128})
      for (int w : {4, 8})
        for (int sk : {2, 4, 8})
          if (w4a16::prefill_valid(n, k, g, bm, bn, 64, w, sk)) out.push_back({LinearKind::prefill, bm, bn, 64, w, sk, 2});
  append_pipelined_prefill_configs(s, arch, out);
  // Warpgroup MMA: one to four warpgroups (4 to 16 warps) of 64 weight rows, 32-256 rows
  // of x (32 for the M just above the skinny kind's 16), rings of 3-5 stages of 64 or 128
  // k, as many as fit the opt-in shared memory. Three or four warpgroups only up to
  // block_m 128: at 256 their 384 or 512 threads cannot keep 128 accumulators each within
  // the register file without spilling.
  auto wgmma_warps_fit = [](int bm, int w) { return w < 12 || bm <= 128; };
  if (arch.warpgroup_mma) {
    for (int bm : {32, 64, 128, 256})
      for (int w : {4, 8, 12, 16})
        for (int bk : {64, 128})
          for (int st : {3, 4, 5})
            if (wgmma_warps_fit(bm, w) && w4a16::wgmma::valid(n, k, g, bm, 16 * w, bk, w, st, s.asym))
              out.push_back({LinearKind::wgmma, bm, 16 * w, bk, w, 1, st});
    // Split-K for the middle Ms of narrow layers (N = 2048 gives 16 to 32 column
    // blocks): 2, 4 or 8 slices (one thread-block cluster), rings of 4 or 5 (a slice is
    // few stages long, so the ring's depth is most of what hides the memory latency);
    // block_m 256 too, which dequantises each weight once for 256 tokens where one row
    // block covers M.
    for (int bm : {32, 64, 128, 256})
      for (int w : {4, 8, 12, 16})
        for (int bk : {64, 128})
          for (int sk : {2, 4, 8})
            for (int st : {4, 5})
              if (wgmma_warps_fit(bm, w) && w4a16::wgmma::valid(n, k, g, bm, 16 * w, bk, w, st, s.asym, sk))
                out.push_back({LinearKind::wgmma, bm, 16 * w, bk, w, sk, st});
    // Stream-K (_stkB): the tiles' k-steps dealt evenly to one block per SM, for the Ms
    // whose tiles are not a whole number of waves (9216 x 2048 at M = 256 and 1024:
    // 96 and 288 tiles of the best shapes on 132 SMs; bench/NOTES.md linear v30).
    // Rings of 4-6 stages: with a block per SM, only the ring hides the memory latency.
    for (int bm : {64, 128, 256})
      for (int w : {8, 12})
        for (int bk : {64, 128})
          for (int st : {4, 5, 6})
            if (arch.stream_blocks > 0 && wgmma_warps_fit(bm, w) &&
                w4a16::wgmma::stream_valid(n, k, g, bm, 16 * w, bk, w, st, s.asym, arch.stream_blocks)) {
              LinearConfig c{LinearKind::wgmma, bm, 16 * w, bk, w, 1, st};
              c.stream_blocks = arch.stream_blocks;
              out.push_back(c);
            }
  }
  return out;
}

void append_pipelined_prefill_configs(const LinearShape& s, const ArchInfo& arch, std::vector<LinearConfig>& out) {
  const int n = static_cast<int>(s.n), k = static_cast<int>(s.k), g = s.effective_group();
  auto add = [&](int bm, int bn, int bk, int w, int sk, int st) {
    if (w4a16::prefill_pipelined_valid(n, k, g, bm, bn, bk, w, sk, st, s.asym, arch.wave_size, arch.max_lds_per_block))
      out.push_back({LinearKind::prefill, bm, bn, bk, w, sk, st});
  };
  // Asynchronous stage rings (stages 3, 4), as many as fit the static shared memory:
  // block_k 64 up to block_m 64; block_m 128 only with block_k 32 (8 warps), where a
  // block_k 64 stage alone takes ~20 KB.
  for (int bm : {32, 64})
    for (int bn : {64, 128})
      for (int w : {4, 8})
        for (int st : {3, 4}) add(bm, bn, 64, w, 1, st);
  for (int bn : {64, 128})
    for (int st : {3, 4}) add(128, bn, 32, 8, 1, st);
  // Split-K with the deepest ring for the latency-bound tens of rows.
  for (int bm : {16, 32})
    for (int bn : {64, 128})
      for (int sk : {2, 4}) add(bm, bn, 64, 4, sk, 4);
}

Candidate make_linear_candidate(const LinearShape& s, const LinearConfig& cfg, const ArchInfo& arch) {
  if (cfg.swapped && cfg.kind != LinearKind::skinny)
    throw Error("_sw (the swapped form at block_m 16) is a skinny config, not " + std::string(kind_name(cfg.kind)) +
                "'s (" + cfg.key() + ")");
  if (cfg.stream_blocks > 0 && (cfg.kind != LinearKind::wgmma || cfg.split_k != 1))
    throw Error("_stk (a stream-K grid) is a wgmma config without split-K, not " + std::string(kind_name(cfg.kind)) +
                " " + cfg.key());
  if (cfg.silu) throw Error("the fused SiLU epilogue (" + cfg.key() + ") is a w4a16_moe_gemm1 config, not w4a16_linear's");
  if (cfg.red) throw Error("the top_k reduction epilogue (" + cfg.key() + ") is a w4a16_moe_gemm2 config, not w4a16_linear's");
  Candidate c;
  c.op = "w4a16_linear";
  c.kind = kind_name(cfg.kind);
  c.arch = arch.name;
  c.shape = s.key();
  c.config = cfg.key();
  c.name = linear_kernel_name(s, cfg);
  // The wgmma kind adds its producer warpgroup (w4a16_linear/wgmma_tiling.h).
  c.threads = cfg.kind == LinearKind::wgmma ? w4a16::wgmma::block_threads(cfg.warps) : cfg.warps * arch.wave_size;
  c.instance = std::string("w4a16_linear/") + c.kind + ".cu.in";
  c.params = {
      {"name", c.name},
      {"config", c.kind + " " + c.shape + " " + c.config + " " + arch.name},
      {"n", std::to_string(s.n)},
      {"k", std::to_string(s.k)},
      {"group", std::to_string(s.effective_group())},
      {"bf16", s.bf16 ? "true" : "false"},
      {"asym", s.asym ? "true" : "false"},
      {"block_m", std::to_string(cfg.block_m)},
      {"block_n", std::to_string(cfg.block_n)},
      {"block_k", std::to_string(cfg.block_k)},
      {"threads", std::to_string(c.threads)},
  };
  if (cfg.kind == LinearKind::decode) {
    c.params["split_k"] = std::to_string(cfg.split_k);
    c.params["stages"] = std::to_string(cfg.stages);
    // Streaming kernels need waves in flight to cover memory latency.
    c.min_occupancy = 2;
  } else if (cfg.kind == LinearKind::skinny) {
    // skinny.cu.in: block_m 16, or 8 (the swapped form); block_k is the template's own (32).
    if ((cfg.block_m != w4a16::skinny::kRows && cfg.block_m != w4a16::skinny::kRowsSwapped) ||
        cfg.block_k != w4a16::skinny::kSpan)
      throw Error("a skinny config has block_m " + std::to_string(w4a16::skinny::kRows) + " or " +
                  std::to_string(w4a16::skinny::kRowsSwapped) + " and block_k " + std::to_string(w4a16::skinny::kSpan) +
                  " (" + cfg.key() + ")");
    if (cfg.swapped && cfg.block_m != w4a16::skinny::kRows)
      throw Error("the swapped skinny form (_sw) is block_m " + std::to_string(w4a16::skinny::kRows) + "'s (" +
                  cfg.key() + "; block_m " + std::to_string(w4a16::skinny::kRowsSwapped) + " is always swapped)");
    c.params.erase("block_k");
    c.params["paired"] = cfg.swapped ? "true" : "false";
    c.params["warps"] = std::to_string(cfg.warps);
    c.params["split_k"] = std::to_string(cfg.split_k);
    c.params["stages"] = std::to_string(cfg.stages);
    // A split tile's blocks form one thread-block cluster and sum on chip (skinny.h).
    c.params["cluster"] = cfg.split_k > 1 ? "__cluster_dims__(1, " + std::to_string(cfg.split_k) + ", 1)" : "";
    // Streaming like decode, on the matrix instruction: compiled to scalar code it is
    // on the slow path.
    c.needs_mma = true;
    c.min_occupancy = 2;
    c.dynamic_shared = linear_dynamic_shared(s, cfg);
  } else {
    // prefill.cu.in and wgmma.cu.in; the wgmma kind's whole ring is dynamic shared memory.
    c.params["warps"] = std::to_string(cfg.warps);
    c.params["split_k"] = std::to_string(cfg.split_k);
    c.params["stages"] = std::to_string(cfg.stages);
    // A split wgmma tile's blocks form one thread-block cluster and sum on chip (wgmma.h).
    if (cfg.kind == LinearKind::wgmma) {
      c.params["cluster"] = cfg.split_k > 1 ? "__cluster_dims__(1, 1, " + std::to_string(cfg.split_k) + ")" : "";
      c.params["stream_blocks"] = std::to_string(cfg.stream_blocks);
    }
    c.needs_mma = true;
    c.min_occupancy = 1;
    c.dynamic_shared = linear_dynamic_shared(s, cfg);
  }
  return c;
}

std::string linear_generic_shape_key(bool bf16, bool asym) {
  return std::string("any") + (bf16 ? "_bf16" : "_fp16") + (asym ? "_asym" : "_sym");
}

Candidate make_linear_generic_candidate(bool bf16, bool asym, const ArchInfo& arch) {
  constexpr int kThreads = 128;  // templates/w4a16_linear/generic.h
  Candidate c;
  c.op = "w4a16_linear";
  c.kind = "generic";
  c.arch = arch.name;
  c.shape = linear_generic_shape_key(bf16, asym);
  c.config = LinearConfig{LinearKind::generic, 4, 128, 32, kThreads / arch.wave_size, 1, 1}.key();
  c.name = "w4a16_linear_generic_" + c.shape + "_" + c.config;
  c.threads = kThreads;
  c.instance = "w4a16_linear/generic.cu.in";
  c.params = {{"name", c.name},
              {"config", "generic " + c.shape + " " + c.config + " " + arch.name},
              {"bf16", bf16 ? "true" : "false"},
              {"asym", asym ? "true" : "false"}};
  c.min_occupancy = 1;
  return c;
}

bool splits_on_chip(const LinearConfig& cfg) {
  return cfg.kind == LinearKind::skinny || cfg.kind == LinearKind::wgmma;
}

// The kernel ABI's own formulas (templates/w4a16_linear/launch.h), shared with the runtime.
static bool exchanges_in_memory(const LinearConfig& cfg) {
  return w4a16::exchanges_in_memory(cfg.split_k, splits_on_chip(cfg), cfg.stream_blocks);
}

int64_t linear_workspace_floats(const LinearShape& s, const LinearConfig& cfg, int64_t m) {
  if (!exchanges_in_memory(cfg)) return 0;
  return w4a16::exchange_floats(cfg.split_k, cfg.block_m, cfg.block_n, cfg.stream_blocks, s.n, m, s.bf16);
}

int64_t linear_counter_ints(const LinearShape& s, const LinearConfig& cfg, int64_t m) {
  if (!exchanges_in_memory(cfg)) return 0;
  return w4a16::exchange_counters(cfg.split_k, cfg.block_m, cfg.block_n, cfg.stream_blocks, s.n, m);
}

}  // namespace kf

namespace kf {

LinearConfig parse_linear_config(const std::string& kind, const std::string& key) {
  static const std::regex re(
      "bm([1-9][0-9]*)_bn([1-9][0-9]*)_bk([1-9][0-9]*)_w([1-9][0-9]*)_sk([1-9][0-9]*)_s([1-9][0-9]*)(?:_stk([1-9][0-9]*))?"
      "(_sw)?(_silu|_red)?");
  std::smatch m;
  if ((kind != "decode" && kind != "skinny" && kind != "prefill" && kind != "wgmma" && kind != "generic") ||
      !std::regex_match(key, m, re))
    throw Error("bad w4a16_linear config '" + kind + " " + key +
                "' (expected like prefill bm64_bn128_bk64_w4_sk1_s2, or with _silu or _red appended)");
  LinearConfig c;
  c.kind = kind == "decode"    ? LinearKind::decode
           : kind == "skinny"  ? LinearKind::skinny
           : kind == "prefill" ? LinearKind::prefill
           : kind == "wgmma"   ? LinearKind::wgmma
                               : LinearKind::generic;
  try {
    c.block_m = std::stoi(m[1]);
    c.block_n = std::stoi(m[2]);
    c.block_k = std::stoi(m[3]);
    c.warps = std::stoi(m[4]);
    c.split_k = std::stoi(m[5]);
    c.stages = std::stoi(m[6]);
    c.stream_blocks = m[7].matched ? std::stoi(m[7]) : 0;
    c.swapped = m[8] == "_sw";
    c.silu = m[9] == "_silu";
    c.red = m[9] == "_red";
  } catch (const std::out_of_range&) {
    throw Error("w4a16_linear config '" + key + "' has a number out of range");
  }
  return c;
}

int linear_dynamic_shared(const LinearShape& s, const LinearConfig& cfg) {
  if (cfg.kind == LinearKind::wgmma)
    return w4a16::wgmma::smem_bytes(cfg.block_m, cfg.block_n, cfg.block_k, cfg.stages, s.asym);
  if (cfg.kind == LinearKind::skinny)
    return w4a16::skinny::dynamic_shared_bytes(cfg.block_n, cfg.warps, cfg.stages, cfg.block_m, cfg.split_k);
  return 0;
}

LaunchGrid linear_grid(const LinearShape& s, const LinearConfig& cfg, int64_t m, int compute_units) {
  // skinny launches like decode: grid (N / block_n, split_k, ceil(M / block_m)); wgmma
  // like prefill: grid (N / block_n, ceil(M / block_m), 1).
  const w4a16::Kind kind = cfg.kind == LinearKind::decode || cfg.kind == LinearKind::skinny ? w4a16::Kind::decode
                           : cfg.kind == LinearKind::prefill || cfg.kind == LinearKind::wgmma ? w4a16::Kind::prefill
                                                                                            : w4a16::Kind::generic;
  w4a16::Grid g = w4a16::launch_grid(kind, s.n, m, cfg.block_m, cfg.block_n, cfg.split_k, cfg.stream_blocks);
  // Stream-K blocks wait on each other: at most one per SM, as the runtime launches them.
  if (cfg.stream_blocks > 0 && compute_units > 0) g.x = std::min(g.x, static_cast<uint32_t>(compute_units));
  return {g.x, g.y, g.z, static_cast<unsigned>(linear_dynamic_shared(s, cfg))};
}

}  // namespace kf
