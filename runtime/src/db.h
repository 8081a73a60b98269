// The in-memory form of an opened pack. Built once by kf_open from the pack's rows
// (catalog.cpp) and never changed afterwards, except for code objects loaded lazily per
// device and the once-per-shape fallback notes, both behind atomics. Lookups use only
// sorted vectors of fixed records searched with integers or strcmp: nothing on the
// select/launch path constructs a string or allocates.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"
#include "keys.h"
#include "kforge/kforge.h"
#include "w4a16_linear/launch.h"

namespace kf {
namespace rt {

// Device ordinals a process may launch on (per kernel: one function handle each).
constexpr int kMaxDevices = 64;

// What a kernel does, from its op: a linear layer, an MoE expert GEMM, one of the MoE
// layer's helpers (templates/w4a16_moe/args.h), sparse MLA decode and its combine
// (templates/sparse_mla/args.h), or an MXFP4 MoE expert GEMM (templates/mxfp4_moe/args.h).
enum class KernelOp { linear, moe_gemm, moe_align, moe_silu_mul, moe_sum, mla_decode, mla_combine, mxfp4_gemm };

struct KernelImpl {
  std::string name, op, shape;
  KernelOp op_kind = KernelOp::linear;
  w4a16::Kind kind = w4a16::Kind::generic;  // linear and MoE GEMMs
  LinearShapeKey shape_key;  // specialised kernels (MoE: one expert's); the generic one,
                             // the MoE helpers and the MLA combine have only bf16 (and asym)
  MoeShapeKey moe;           // MoE GEMMs
  LinearConfigKey config;    // linear and MoE GEMMs
  MlaShapeKey mla;           // sparse MLA decode
  MlaConfigKey mla_config;   // sparse MLA decode
  Mxfp4ShapeKey mxfp4;       // mxfp4_moe GEMMs
  Mxfp4ConfigKey mxfp4_config;
  // sparse MLA decode: this kernel as handed out for another extras bucket of its
  // shape (kf_kernel_is_fallback = 1); set by build_catalog.
  const kf_kernel* fallback_handle = nullptr;
  int threads = 0;
  // The skinny and wgmma kinds' split-K sums within a thread-block cluster
  // (w4a16_linear/skinny.h, wgmma.h): no workspace, no counters.
  bool split_on_chip = false;
  // It waits for the kernel before it on the stream before it touches memory (the skinny
  // kind: templates/kf_grid_dependency.h), so its launches may overlap that kernel
  // (LaunchDims::overlap_previous).
  bool waits_for_previous = false;
  // Dynamic shared memory its launches pass, allowed once at load (the skinny kind's rings
  // above 48 KiB: w4a16_linear/skinny_tiling.h); 0 for every other kernel.
  unsigned dynamic_shared = 0;
  // A persistent launch (mxfp4_moe wgmma configs _pP, w4a16_linear stream-K _stkB): at
  // most this many blocks per SM of the launching device; the planned grid (one block per
  // tile, or B) is the other bound.
  int persistent_per_unit = 0;
  // moe_align's cluster form: its launches take whole clusters of this many blocks
  // (w4a16_moe/align_cluster_tiling.h); 0 for every other kernel.
  int align_cluster = 0;
  std::vector<uint8_t> code;  // the code object, as stored in the pack
  const kf_db* db = nullptr;

  // Published (release) once loaded on that device; loading happens under db->load_mutex.
  mutable std::atomic<void*> function[kMaxDevices] = {};
  mutable void* module[kMaxDevices] = {};

  bool generic() const { return op_kind == KernelOp::linear && kind == w4a16::Kind::generic; }
  // Split-K through global memory (or stream-K, whose tiles' runs meet there): its
  // launches need args.workspace and args.counters.
  bool splits_through_memory() const {
    return w4a16::exchanges_in_memory(config.split_k, split_on_chip, config.stream_blocks);
  }
};

// One tuned M range of a shape, already made contiguous: [lo, hi] with hi = next lo - 1
// and the last range open-ended, so every m >= 1 finds exactly one.
struct WinnerRange {
  int64_t lo = 1, hi = INT64_MAX;
  const kf_kernel* kernel = nullptr;
};

struct ShapeEntry {
  std::string op, shape;
  bool linear = false;      // w4a16_linear: key is valid
  LinearShapeKey key;
  bool moe = false;         // w4a16_moe_gemm1/2: moe_key is valid (ranges are over T)
  MoeShapeKey moe_key;
  bool mla = false;         // sparse_mla_decode: mla_key is valid (ranges are over Q)
  MlaShapeKey mla_key;
  bool mxfp4 = false;       // mxfp4_moe_gemm1/2: mxfp4_key is valid (ranges are over T)
  Mxfp4ShapeKey mxfp4_key;
  uint32_t first = 0, count = 0;  // into kf_db::ranges
};

// Remembers which never-tuned shapes were already reported on stderr: a fixed table of
// 64-bit shape hashes claimed with compare-and-swap, so reporting needs no lock and no
// allocation. When full, later shapes are not reported (said once).
class FallbackNotes {
 public:
  // True exactly once per hash (for the first caller, across threads).
  bool first_time(uint64_t hash);
  // The hash of a shape: splitmix64 steps over its fields from a seed per family (so
  // the families' shapes do not collide); never 0, which marks an empty slot.
  template <size_t N>
  static uint64_t hash(uint64_t seed, const uint64_t (&fields)[N]) {
    uint64_t h = seed;
    for (uint64_t f : fields) {
      h ^= f + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
      h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
      h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
      h ^= h >> 31;
    }
    return h ? h : 1;
  }

 private:
  static constexpr int kSlots = 512;
  std::atomic<uint64_t> slots_[kSlots] = {};
  std::atomic<bool> full_reported_{false};
};

}  // namespace rt
}  // namespace kf

// The handle kf_select returns: the same kernel may be handed out as a tuned winner and
// as the fallback of untuned shapes, so the flag lives in the handle, not the kernel.
struct kf_kernel {
  const kf::rt::KernelImpl* impl = nullptr;
  bool fallback = false;
};

struct kf_db {
  std::string path, arch, device_name;

  std::vector<std::unique_ptr<kf::rt::KernelImpl>> kernels;
  std::vector<kf_kernel> tuned_handles;     // one per kernel, same order
  std::vector<kf_kernel> fallback_handles;  // one per generic and per MLA decode kernel
  const kf_kernel* generic[2][2] = {};      // fallback handle by [bf16][asym]

  std::vector<kf::rt::WinnerRange> ranges;
  std::vector<kf::rt::ShapeEntry> shapes;  // sorted by (op, shape) with strcmp
  std::vector<uint32_t> linear_shapes;     // indices of linear shapes, sorted by key
  std::vector<uint32_t> moe_shapes;        // indices of MoE GEMM shapes, sorted by key
  std::vector<uint32_t> mla_shapes;        // indices of sparse MLA shapes, sorted by key
  std::vector<uint32_t> mxfp4_shapes;      // indices of MXFP4 MoE GEMM shapes, sorted by key

  // The MoE layer's helpers (run-time sizes, one per arch or per dtype), or null.
  const kf_kernel* moe_align = nullptr;
  // moe_align's cluster form (sm_90: w4a16_moe/align_cluster.h), which plan_moe_align
  // runs from kf::moe::kAlignClusterMinSlots slots; null without one or with
  // KFORGE_CLUSTER_ALIGN=0 at open.
  const kf_kernel* moe_align_cluster = nullptr;
  const kf_kernel* moe_silu_mul[2] = {};  // by bf16
  const kf_kernel* moe_sum[2] = {};
  // The sparse MLA combine kernel (run-time sizes, one per dtype), or null.
  const kf_kernel* mla_combine[2] = {};  // by bf16

  mutable kf::rt::FallbackNotes fallback_notes;

  // Whether launches of kernels that wait for the one before them overlap it
  // (KernelImpl::waits_for_previous): for sm_90 and later, unless
  // KFORGE_OVERLAP_LAUNCHES=0 at open.
  bool overlap_launches = true;

  // The GPU side. kf_open binds the backend at once; kf_open_for_arch binds it on the
  // first launch or prepare and remembers a failure (state 2, reason in `unbound_why`).
  kf::rt::Backend* backend = nullptr;
  mutable std::atomic<int> backend_state{0};  // 0 not tried, 1 ready, 2 unavailable
  mutable char unbound_why[600] = {};
  mutable std::mutex load_mutex;  // binding and code object loads
  // SMs / CUs per device, published (release) by the first code object load there.
  mutable std::atomic<int> compute_units[kf::rt::kMaxDevices] = {};
};
