#include "catalog.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>

#include "mxfp4_moe/decode_tiling.h"
#include "mxfp4_moe/tiling.h"
#include "mxfp4_moe/wgmma_tiling.h"
#include "sparse_mla/launch.h"
#include "sparse_mla/wgmma_tiling.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/wgmma_tiling.h"
#include "status.h"
#include "w4a16_moe/align_cluster_tiling.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {

void warn(const kf_db& db, const char* what, const std::string& name, const char* why) {
  std::fprintf(stderr, "kforge: %s: ignoring %s '%s': %s\n", db.path.c_str(), what, name.c_str(), why);
}

// The launch geometry of a kind (w4a16_linear/launch.h); the skinny kind
// (w4a16_linear/skinny.h) launches on the decode kind's grid, the wgmma kind
// (w4a16_linear/wgmma.h) on the prefill kind's.
bool parse_kind(const std::string& text, w4a16::Kind* kind) {
  if (text == "decode" || text == "skinny") *kind = w4a16::Kind::decode;
  else if (text == "prefill" || text == "wgmma") *kind = w4a16::Kind::prefill;
  else if (text == "generic") *kind = w4a16::Kind::generic;
  else return false;
  return true;
}

bool ends_with(const std::string& text, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return text.size() >= n && text.compare(text.size() - n, n, suffix) == 0;
}

// The MoE helpers take run-time sizes; what the row must say is the block size that
// w4a16_moe/launch.h launches them with (and, for the elementwise ones, the dtype,
// from the name: moe_silu_mul_any_bf16).
const char* parse_moe_helper(const KernelRow& row, KernelImpl* k) {
  if (row.op == "moe_align") {
    k->op_kind = KernelOp::moe_align;
    if (row.kind == "align_cluster")
      k->align_cluster = moe::kAlignCluster;
    else if (row.kind != "align")
      return "unknown kind (align or align_cluster)";
    return row.threads == moe::kAlignThreads ? nullptr : "thread count differs from kf::moe::kAlignThreads";
  }
  k->op_kind = row.op == "moe_sum" ? KernelOp::moe_sum : KernelOp::moe_silu_mul;
  if (ends_with(row.name, "_bf16"))
    k->shape_key.bf16 = true;
  else if (ends_with(row.name, "_fp16"))
    k->shape_key.bf16 = false;
  else
    return "name ends in neither _bf16 nor _fp16";
  return row.threads == moe::kEltThreads ? nullptr : "thread count differs from kf::moe::kEltThreads";
}

// sparse_mla_decode rows (kinds decode, wgmma): shape and config keys the runtime can
// launch with sparse_mla/launch.h's geometry (head tiles dividing H, splits within
// kMaxSplits, one wave size's worth of threads per warp); the wgmma kind's fixed tile
// (sparse_mla/wgmma_tiling.h) launches with its dynamic shared memory.
const char* parse_mla_decode(const KernelRow& row, KernelImpl* k) {
  k->op_kind = KernelOp::mla_decode;
  if (row.kind != "decode" && row.kind != "wgmma") return "unknown kind";
  if (!parse_mla_shape_key(row.shape.c_str(), &k->mla)) return "unreadable shape key";
  if (const char* problem = mla_shape_problem(k->mla)) return problem;
  if (!parse_mla_config_key(row.config.c_str(), &k->mla_config)) return "unreadable config key";
  const MlaConfigKey& c = k->mla_config;
  if (c.block_h % 16 != 0 || k->mla.heads % c.block_h != 0) return "block_h does not tile H in multiples of 16";
  if (c.splits > mla::kMaxSplits) return "more KV splits than kf::mla::kMaxSplits";
  if (row.threads != c.warps * 32 && row.threads != c.warps * 64) return "thread count is not warps x 32 or 64";
  if (row.kind == "wgmma") {
    if (!mla::wgmma::config_valid(static_cast<int>(k->mla.heads), c.block_h, c.block_k, c.warps, c.splits, c.stages) ||
        row.threads != c.warps * 32)
      return "config outside the wgmma kind's rules (sparse_mla/wgmma_tiling.h)";
    k->dynamic_shared = static_cast<unsigned>(mla::wgmma::smem_bytes());
  }
  k->shape_key.bf16 = k->mla.bf16;
  return nullptr;
}

// sparse_mla_combine_any_<dtype>: run-time sizes; launched with kCombineThreads.
const char* parse_mla_combine(const KernelRow& row, KernelImpl* k) {
  k->op_kind = KernelOp::mla_combine;
  if (row.shape == "any_bf16")
    k->shape_key.bf16 = true;
  else if (row.shape == "any_fp16")
    k->shape_key.bf16 = false;
  else
    return "shape is neither any_bf16 nor any_fp16";
  return row.threads == mla::kCombineThreads ? nullptr : "thread count differs from kf::mla::kCombineThreads";
}

// mxfp4_moe_gemm1/2 rows (kinds mma, decode, wgmma): shape and config keys the runtime
// can launch with mxfp4_moe/tiling.h's geometry (the kind's own tiling rules, block_m
// within moe_align's limit, one wave size's worth of threads per warp).
const char* parse_mxfp4_gemm(const KernelRow& row, int gemm, KernelImpl* k) {
  k->op_kind = KernelOp::mxfp4_gemm;
  k->mxfp4.gemm = gemm;
  if (row.kind != "mma" && row.kind != "decode" && row.kind != "wgmma") return "unknown kind";
  if (!parse_mxfp4_shape_key(row.shape.c_str(), &k->mxfp4)) return "unreadable shape key";
  if (const char* problem = mxfp4_shape_problem(k->mxfp4)) return problem;
  if (!parse_mxfp4_config_key(row.config.c_str(), &k->mxfp4_config)) return "unreadable config key";
  const Mxfp4ShapeKey& s = k->mxfp4;
  const Mxfp4ConfigKey& c = k->mxfp4_config;
  // Both kinds launch on tiling.h's grid; the decode kind (gemv.h) has its own rules.
  if (row.kind == "decode") {
    const int wave = c.warps > 0 && row.threads % c.warps == 0 ? row.threads / c.warps : 0;
    if (!mxfp4::decode_config_valid(static_cast<int>(s.n), static_cast<int>(s.k), s.swiglu, c.block_m, c.block_n,
                                    c.warps, wave))
      return "config breaks the decode rules of templates/mxfp4_moe/decode_tiling.h";
    if (!mxfp4::decode_split_valid(static_cast<int>(s.k), c.split_k))
      return "split_k breaks the decode rules of templates/mxfp4_moe/decode_tiling.h";
  } else if (c.split_k != 1) {
    return "only the decode kind splits K (_sk)";
  } else if (row.kind == "wgmma") {
    // Its whole ring is dynamic shared memory (mxfp4_moe/wgmma_tiling.h).
    if (c.subtiles != 1 || !mxfp4::wgmma::config_valid(static_cast<int>(s.n), static_cast<int>(s.k), s.swiglu,
                                                        c.block_m, c.block_n, c.block_k, c.warps, c.stages))
      return "config breaks the wgmma rules of templates/mxfp4_moe/wgmma_tiling.h";
    if (c.persistent > mxfp4::wgmma::kMaxPersistentPerUnit) return "persistent launch above 8 blocks per SM";
    k->dynamic_shared = static_cast<unsigned>(mxfp4::wgmma::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages));
    k->persistent_per_unit = c.persistent;
  } else if (c.persistent != 0) {
    return "only the wgmma kind has a persistent launch (_p)";
  } else if (!mxfp4::config_valid(static_cast<int>(s.n), static_cast<int>(s.k), s.swiglu, c.block_m, c.block_n,
                                  c.block_k, c.warps, c.stages, c.subtiles)) {
    return "config breaks the tiling rules of templates/mxfp4_moe/tiling.h";
  }
  if (c.block_m > 1024) return "block_m above moe_align's 1024";
  if (row.threads != c.warps * 32 && row.threads != c.warps * 64) return "thread count is not warps x 32 or 64";
  return nullptr;
}

// Why a kernel row cannot be launched, or nullptr when it can (then *k is filled).
const char* parse_kernel(const KernelRow& row, KernelImpl* k) {
  if (row.threads < 1 || row.threads > 1024) return "bad thread count";
  if (row.code.empty()) return "empty code object";
  if (row.op == "moe_align" || row.op == "moe_silu_mul" || row.op == "moe_sum") return parse_moe_helper(row, k);
  if (row.op == "sparse_mla_decode") return parse_mla_decode(row, k);
  if (row.op == "sparse_mla_combine") return parse_mla_combine(row, k);
  if (const int mx = mxfp4_gemm_of_op(row.op.c_str())) return parse_mxfp4_gemm(row, mx, k);
  const int gemm = moe_gemm_of_op(row.op.c_str());
  if (row.op != "w4a16_linear" && gemm == 0) return "unknown op";
  if (!parse_kind(row.kind, &k->kind)) return "unknown kind";
  if (!parse_linear_config_key(row.config.c_str(), &k->config)) return "unreadable config key";
  if (k->config.silu && gemm != 1) return "the fused SiLU epilogue (_silu) is for w4a16_moe_gemm1 only";
  if (k->config.red && gemm != 2) return "the top_k reduction epilogue (_red) is for w4a16_moe_gemm2 only";
  if (k->config.swapped && (gemm != 0 || row.kind != "skinny" || k->config.block_m != w4a16::skinny::kRows))
    return "the swapped form at block_m 16 (_sw) is for w4a16_linear's skinny kind only";
  if (k->config.stream_blocks > 0 && (gemm != 0 || row.kind != "wgmma" || k->config.split_k != 1))
    return "a stream-K grid (_stk) is for w4a16_linear's wgmma kind only, without split-K";
  if (row.kind == "skinny") {
    namespace sk = w4a16::skinny;
    const LinearConfigKey& c = k->config;
    if ((c.block_m != sk::kRows && c.block_m != sk::kRowsSwapped) || c.block_k != sk::kSpan)
      return "a skinny kernel has block_m 16 (or 8, the swapped form) and block_k 32";
    k->dynamic_shared =
        static_cast<unsigned>(sk::dynamic_shared_bytes(c.block_n, c.warps, c.stages, c.block_m, c.split_k));
    k->split_on_chip = true;
    k->waits_for_previous = true;
  }
  if (gemm != 0) {
    k->op_kind = KernelOp::moe_gemm;
    k->moe.gemm = gemm;
    if (k->kind == w4a16::Kind::generic) return "MoE GEMMs have no generic kind";
    if (!parse_moe_shape_key(row.shape.c_str(), &k->moe)) return "unreadable shape key";
    k->shape_key = k->moe.expert;
  } else {
    const bool shape_ok = k->generic()
                              ? parse_generic_shape_key(row.shape.c_str(), &k->shape_key.bf16, &k->shape_key.asym)
                              : parse_linear_shape_key(row.shape.c_str(), &k->shape_key);
    if (!shape_ok) return "unreadable shape key";
  }
  if (row.kind == "wgmma") {
    // Its whole ring is dynamic shared memory (w4a16_linear/wgmma_tiling.h); for the MoE
    // GEMMs the shape is one expert's.
    const LinearConfigKey& c = k->config;
    const LinearShapeKey& s = k->shape_key;
    const int n = static_cast<int>(s.n), kd = static_cast<int>(s.k), g = static_cast<int>(s.effective_group());
    const bool fits = gemm != 0 ? c.split_k == 1 && w4a16::wgmma::valid_gathered(n, kd, g, c.block_m, c.block_n,
                                                                                  c.block_k, c.warps, c.stages, s.asym)
                      : c.stream_blocks > 0 ? w4a16::wgmma::stream_valid(n, kd, g, c.block_m, c.block_n, c.block_k,
                                                                         c.warps, c.stages, s.asym, c.stream_blocks)
                                            : w4a16::wgmma::valid(n, kd, g, c.block_m, c.block_n, c.block_k, c.warps,
                                                                  c.stages, s.asym, c.split_k);
    if (!fits)
      return "config outside the wgmma kind's rules (w4a16_linear/wgmma_tiling.h)";
    k->dynamic_shared = static_cast<unsigned>(w4a16::wgmma::smem_bytes(c.block_m, c.block_n, c.block_k, c.stages, s.asym));
    k->split_on_chip = c.stream_blocks == 0;
    // Stream-K: one block per SM of the launching part, at most the B it was built for.
    if (c.stream_blocks > 0) k->persistent_per_unit = 1;
  }
  return nullptr;
}

// Which (device, cold_l2) measurement set of a shape to serve from, best first: this
// device's cold-L2 timings (what a forward pass sees: weights are not in L2), this
// device's warm ones, then another device of the same arch (cold before warm; among
// several devices, the alphabetically first, so the choice is reproducible).
std::tuple<int, int, std::string> preference(const WinnerRow& w, const std::string& device) {
  const bool same_device = !device.empty() && w.device == device;
  return {same_device ? 0 : 1, w.cold_l2 ? 0 : 1, w.device};
}

// Says once per open which shapes this device serves from another card's tuning (the
// same arch, so the kernels run, but their picks were timed elsewhere): a user whose DB
// holds no tuning for their card learns that autotune on it may pick faster kernels.
void note_other_device_winners(const kf_db& db, const std::map<std::string, int>& shapes_by_device) {
  for (const auto& [device, shapes] : shapes_by_device)
    std::fprintf(stderr,
                 "kforge: %s: %d tuned shape%s of %s %s no winners timed on '%s'; serving those timed on '%s' "
                 "(run autotune on this device to tune for it)\n",
                 db.path.c_str(), shapes, shapes == 1 ? "" : "s", db.arch.c_str(), shapes == 1 ? "has" : "have",
                 db.device_name.c_str(), device.c_str());
}

// Split MLA winners are served only with the combine kernel of their dtype: say so at
// open when the pack lacks it (their launches then fail with KF_ERR_NOT_FOUND).
void warn_missing_combine(const kf_db& db, const ShapeEntry& entry) {
  if (db.mla_combine[entry.mla_key.bf16]) return;
  for (uint32_t i = entry.first; i < entry.first + entry.count; ++i)
    if (db.ranges[i].kernel->impl->mla_config.splits > 1) {
      std::fprintf(stderr, "kforge: %s: sparse_mla_decode %s has split-KV winners but the pack has no "
                   "sparse_mla_combine_any_%s kernel: launching them fails (regenerate the pack with genkernels)\n",
                   db.path.c_str(), entry.shape.c_str(), entry.mla_key.bf16 ? "bf16" : "fp16");
      return;
    }
}

}  // namespace

kf_status build_catalog(PackRows&& rows, kf_db* db) {
  std::map<std::string, size_t> by_name;
  db->kernels.reserve(rows.kernels.size());
  for (KernelRow& row : rows.kernels) {
    auto k = std::make_unique<KernelImpl>();
    if (const char* why = parse_kernel(row, k.get())) {
      warn(*db, "kernel", row.name, why);
      continue;
    }
    k->name = std::move(row.name);
    k->op = std::move(row.op);
    k->shape = std::move(row.shape);
    k->threads = row.threads;
    k->code = std::move(row.code);
    k->db = db;
    by_name[k->name] = db->kernels.size();
    db->kernels.push_back(std::move(k));
  }

  // Handles live in vectors sized once here: kf_select hands out pointers into them.
  db->tuned_handles.resize(db->kernels.size());
  db->fallback_handles.reserve(db->kernels.size());
  for (size_t i = 0; i < db->kernels.size(); ++i) {
    const KernelImpl* k = db->kernels[i].get();
    db->tuned_handles[i] = {k, false};
    const kf_kernel* handle = &db->tuned_handles[i];
    if (k->op_kind == KernelOp::moe_align) {
      const kf_kernel*& slot = k->align_cluster ? db->moe_align_cluster : db->moe_align;
      if (!slot) slot = handle;
    }
    if (k->op_kind == KernelOp::moe_silu_mul && !db->moe_silu_mul[k->shape_key.bf16])
      db->moe_silu_mul[k->shape_key.bf16] = handle;
    if (k->op_kind == KernelOp::moe_sum && !db->moe_sum[k->shape_key.bf16]) db->moe_sum[k->shape_key.bf16] = handle;
    if (k->op_kind == KernelOp::mla_combine && !db->mla_combine[k->shape_key.bf16])
      db->mla_combine[k->shape_key.bf16] = handle;
    if (k->op_kind == KernelOp::mla_decode) {  // may serve a neighbouring extras bucket
      db->fallback_handles.push_back({k, true});
      db->kernels[i]->fallback_handle = &db->fallback_handles.back();
    }
    if (!k->generic()) continue;
    db->fallback_handles.push_back({k, true});
    const kf_kernel*& slot = db->generic[k->shape_key.bf16][k->shape_key.asym];
    if (!slot) slot = &db->fallback_handles.back();  // kernels are sorted by name
  }

  // Group winners by (op, shape), keep the preferred measurement set of each.
  std::map<std::pair<std::string, std::string>, std::vector<const WinnerRow*>> by_shape;
  for (const WinnerRow& w : rows.winners) {
    auto it = by_name.find(w.kernel);
    if (it == by_name.end()) {
      warn(*db, "winner of shape", w.shape, ("kernel " + w.kernel + " is not in the pack").c_str());
      continue;
    }
    if (db->kernels[it->second]->op != w.op) {
      warn(*db, "winner of shape", w.shape, ("kernel " + w.kernel + " is of another op").c_str());
      continue;
    }
    if (db->kernels[it->second]->shape != w.shape) {
      warn(*db, "winner of shape", w.shape, ("kernel " + w.kernel + " is for another shape").c_str());
      continue;
    }
    by_shape[{w.op, w.shape}].push_back(&w);
  }

  std::map<std::string, int> served_from_other_device;  // device -> shapes
  for (auto& [op_shape, winners] : by_shape) {
    auto best = preference(*winners.front(), db->device_name);
    for (const WinnerRow* w : winners) best = std::min(best, preference(*w, db->device_name));
    std::vector<const WinnerRow*> chosen;
    for (const WinnerRow* w : winners)
      if (preference(*w, db->device_name) == best) chosen.push_back(w);
    if (!db->device_name.empty() && std::get<0>(best) != 0) ++served_from_other_device[std::get<2>(best)];
    std::sort(chosen.begin(), chosen.end(), [](const WinnerRow* a, const WinnerRow* b) { return a->m_lo < b->m_lo; });

    ShapeEntry entry;
    entry.op = op_shape.first;
    entry.shape = op_shape.second;
    entry.linear = entry.op == "w4a16_linear" && parse_linear_shape_key(entry.shape.c_str(), &entry.key);
    entry.moe_key.gemm = moe_gemm_of_op(entry.op.c_str());
    entry.moe = entry.moe_key.gemm != 0 && parse_moe_shape_key(entry.shape.c_str(), &entry.moe_key);
    entry.mla = entry.op == "sparse_mla_decode" && parse_mla_shape_key(entry.shape.c_str(), &entry.mla_key);
    entry.mxfp4_key.gemm = mxfp4_gemm_of_op(entry.op.c_str());
    entry.mxfp4 = entry.mxfp4_key.gemm != 0 && parse_mxfp4_shape_key(entry.shape.c_str(), &entry.mxfp4_key);
    entry.first = static_cast<uint32_t>(db->ranges.size());
    entry.count = static_cast<uint32_t>(chosen.size());
    // Contiguous ranges: the first starts at 1, each ends where the next begins (a gap
    // between two tuned ranges goes to the lower one), the last never ends.
    for (size_t i = 0; i < chosen.size(); ++i) {
      WinnerRange r;
      r.lo = i == 0 ? 1 : chosen[i]->m_lo;
      r.hi = i + 1 < chosen.size() ? chosen[i + 1]->m_lo - 1 : INT64_MAX;
      r.kernel = &db->tuned_handles[by_name[chosen[i]->kernel]];
      db->ranges.push_back(r);
    }
    if (entry.mla) warn_missing_combine(*db, entry);
    db->shapes.push_back(std::move(entry));
  }

  note_other_device_winners(*db, served_from_other_device);

  // std::map iteration already sorted shapes by (op, shape) in std::string order, which
  // is strcmp order for these keys; the linear index is sorted by numbers.
  for (uint32_t i = 0; i < db->shapes.size(); ++i) {
    if (db->shapes[i].linear) db->linear_shapes.push_back(i);
    if (db->shapes[i].moe) db->moe_shapes.push_back(i);
    if (db->shapes[i].mla) db->mla_shapes.push_back(i);
    if (db->shapes[i].mxfp4) db->mxfp4_shapes.push_back(i);
  }
  std::sort(db->linear_shapes.begin(), db->linear_shapes.end(),
            [&](uint32_t a, uint32_t b) { return db->shapes[a].key < db->shapes[b].key; });
  std::sort(db->moe_shapes.begin(), db->moe_shapes.end(),
            [&](uint32_t a, uint32_t b) { return db->shapes[a].moe_key < db->shapes[b].moe_key; });
  std::sort(db->mla_shapes.begin(), db->mla_shapes.end(),
            [&](uint32_t a, uint32_t b) { return db->shapes[a].mla_key < db->shapes[b].mla_key; });
  std::sort(db->mxfp4_shapes.begin(), db->mxfp4_shapes.end(),
            [&](uint32_t a, uint32_t b) { return db->shapes[a].mxfp4_key < db->shapes[b].mxfp4_key; });

  if (db->kernels.empty())
    return fail(KF_ERR_NOT_FOUND, "kforge pack '%s' has no usable kernel for %s (kernels of: %s)",
                db->path.c_str(), db->arch.c_str(), rows.archs.empty() ? "no arch" : rows.archs.c_str());
  return KF_OK;
}

}  // namespace rt
}  // namespace kf
