#include "launch.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "status.h"
#include "tensor_args.h"
#include "w4a16_moe/launch.h"

namespace kf {
namespace rt {

namespace {


// Everything checkable without a GPU, so a bad call fails the same way everywhere.
kf_status check_args(const KernelImpl& k, const kf_linear_args& a) {
  const char* name = k.name.c_str();
  if (a.m < 1) return fail(KF_ERR_INVALID_ARGUMENT, "kf_launch(%s): args->m = %d, must be at least 1", name, a.m);
  if (!a.x || !a.qweight || !a.scales || !a.y || (k.shape_key.asym && !a.qzeros))
    return fail(KF_ERR_INVALID_ARGUMENT, "kf_launch(%s): args->%s is NULL", name,
                !a.x ? "x" : !a.qweight ? "qweight" : !a.scales ? "scales" : !a.y ? "y" : "qzeros");
  if (k.generic()) {
    const LinearShapeKey shape{a.n, a.k, a.group, k.shape_key.bf16, k.shape_key.asym};
    if (!generic_can_do(shape))
      return fail(KF_ERR_UNSUPPORTED_SHAPE,
                  "kf_launch(%s): n = %d, k = %d, group = %d: the generic kernel needs N %% 8 == 0, K %% 32 == 0 and "
                  "a group size that is a multiple of 32 dividing K (K or 0 for per-channel)", name, a.n, a.k, a.group);
  } else {
    const LinearShapeKey& s = k.shape_key;
    const bool group_ok = s.group == 0 ? (a.group == 0 || a.group == a.k) : a.group == s.group;
    if (a.n != s.n || a.k != s.k || !group_ok)
      return fail(KF_ERR_INVALID_ARGUMENT,
                  "kf_launch(%s): args has n = %d, k = %d, group = %d; the kernel is built for n = %lld, k = %lld, "
                  "group = %lld", name, a.n, a.k, a.group, static_cast<long long>(s.n), static_cast<long long>(s.k),
                  static_cast<long long>(s.effective_group()));
  }
  if (k.splits_through_memory() && (!a.workspace || !a.counters))
    return fail(KF_ERR_INVALID_ARGUMENT,
                "kf_launch(%s): %s kernel needs args->workspace and args->counters (sizes from "
                "kf_kernel_workspace or kf_db_max_workspace)", name, k.config.stream_blocks > 0 ? "stream-K" : "split-K");
  // The kernels' vector loads (16 bytes of x and qweight, 8 of scales, 8-byte stores of y).
  if (!aligned(a.x, 16) || !aligned(a.qweight, 16) || !aligned(a.scales, 8) || !aligned(a.y, 8) ||
      (k.shape_key.asym && !aligned(a.qzeros, 4)) || (a.workspace && !aligned(a.workspace, 4)) ||
      (a.counters && !aligned(a.counters, 4)))
    return fail(KF_ERR_INVALID_ARGUMENT,
                "kf_launch(%s): misaligned tensor (x and qweight need 16 bytes, scales and y 8, qzeros, workspace "
                "and counters 4)", name);
  return KF_OK;
}

kf_status launch_dims(const KernelImpl& k, const kf_linear_args& a, LaunchDims* dims) {
  const w4a16::Grid g = w4a16::launch_grid(k.kind, a.n, a.m, k.config.block_m, k.config.block_n, k.config.split_k,
                                           k.config.stream_blocks);
  if (g.y > kMaxGridYZ || g.z > kMaxGridYZ)
    return fail(KF_ERR_UNSUPPORTED_SHAPE, "kf_launch(%s): m = %d needs a grid of %u x %u x %u blocks; y and z are "
                "limited to %u", k.name.c_str(), a.m, g.x, g.y, g.z, kMaxGridYZ);
  *dims = {{g.x, g.y, g.z}, {static_cast<unsigned>(k.threads), 1, 1}};
  return KF_OK;
}

// The backend of a pack opened with kf_open_for_arch is looked for on first use only,
// and a failure is kept: launches then fail fast with the same reason.
kf_status bound_backend(const kf_db& db, Backend** backend) {
  int state = db.backend_state.load(std::memory_order_acquire);
  if (state == 0) {
    std::lock_guard<std::mutex> lock(db.load_mutex);
    state = db.backend_state.load(std::memory_order_relaxed);
    if (state == 0) {
      bool ready = false;
      if (!db.backend)
        std::snprintf(db.unbound_why, sizeof db.unbound_why, "no GPU backend serves arch %s", db.arch.c_str());
      else if (db.backend->init() != KF_OK)
        std::snprintf(db.unbound_why, sizeof db.unbound_why, "%s", last_error());
      else
        ready = true;
      state = ready ? 1 : 2;
      db.backend_state.store(state, std::memory_order_release);
    }
  }
  if (state != 1)
    return fail(KF_ERR_NO_DEVICE, "no %s device to launch on (%s)", db.arch.c_str(), db.unbound_why);
  *backend = db.backend;
  return KF_OK;
}

// The kernel's function on `device`, loading its code object there on first use.
kf_status function_on(const KernelImpl& k, Backend& backend, int device, void** function) {
  if (device < 0 || device >= kMaxDevices)
    return fail(KF_ERR_BACKEND, "device ordinal %d is beyond the %d devices kforge supports", device, kMaxDevices);
  if ((*function = k.function[device].load(std::memory_order_acquire))) return KF_OK;

  std::lock_guard<std::mutex> lock(k.db->load_mutex);
  if ((*function = k.function[device].load(std::memory_order_acquire))) return KF_OK;  // loaded meanwhile
  DeviceInfo info;
  kf_status status = backend.device_info(device, &info);
  if (status != KF_OK) return status;
  if (std::strcmp(info.arch, k.db->arch.c_str()) != 0)
    return fail(KF_ERR_NO_DEVICE, "device %d (%s) is %s; pack '%s' was opened for %s", device, info.name, info.arch,
                k.db->path.c_str(), k.db->arch.c_str());
  void* module = nullptr;
  status = backend.load(k.code.data(), k.code.size(), k.name.c_str(), k.dynamic_shared, &module, function);
  if (status != KF_OK) return status;
  k.module[device] = module;
  k.db->compute_units[device].store(info.compute_units, std::memory_order_relaxed);
  k.function[device].store(*function, std::memory_order_release);  // publishes compute_units too
  return KF_OK;
}

}  // namespace

kf_status launch_kernel(const KernelImpl& k, const LaunchDims& dims, void* args, void* stream) {
  Backend* backend = nullptr;
  kf_status status = bound_backend(*k.db, &backend);
  int device = 0;
  if (status == KF_OK) status = backend->current_device(&device);
  void* function = nullptr;
  if (status == KF_OK) status = function_on(k, *backend, device, &function);
  if (status != KF_OK) return status;
  void* params[] = {args};
  LaunchDims with_shared = dims;
  with_shared.shared_bytes = k.dynamic_shared;
  // A kernel that waits for the one before it on the stream before it reads or writes
  // anything may start while that one finishes (templates/kf_grid_dependency.h).
  with_shared.overlap_previous = k.waits_for_previous && k.db->overlap_launches;
  if (k.persistent_per_unit > 0) {  // a few walkers per SM instead of a block per tile
    const int64_t units = k.db->compute_units[device].load(std::memory_order_relaxed);
    const int64_t walkers = units > 0 ? units * k.persistent_per_unit : with_shared.grid[0];
    with_shared.grid[0] = static_cast<unsigned>(std::min<int64_t>(with_shared.grid[0], walkers));
  }
  return backend->launch(function, with_shared, stream, params);
}

kf_status launch(const kf_kernel& kernel, const kf_linear_args& args, void* stream) {
  const KernelImpl& k = *kernel.impl;
  if (k.op_kind != KernelOp::linear)
    return fail(KF_ERR_INVALID_ARGUMENT, "kf_launch(%s): a %s kernel, not w4a16_linear (launch it with its own "
                "kf_launch_moe_*, kf_launch_mla or kf_launch_mxfp4_moe_gemm function)", k.name.c_str(),
                k.op.c_str());
  kf_status status = check_args(k, args);
  LaunchDims dims;
  if (status == KF_OK) status = launch_dims(k, args, &dims);
  if (status != KF_OK) return status;
  kf_linear_args copy = args;  // the kernel's by-value parameter
  if (k.generic() && copy.group == 0) copy.group = copy.k;  // the generic reads the group size
  return launch_kernel(k, dims, &copy, stream);
}

kf_status prepare(const kf_db& db) {
  Backend* backend = nullptr;
  kf_status status = bound_backend(db, &backend);
  int device = 0;
  if (status == KF_OK) status = backend->current_device(&device);
  for (size_t i = 0; status == KF_OK && i < db.kernels.size(); ++i) {
    void* function = nullptr;
    status = function_on(*db.kernels[i], *backend, device, &function);
  }
  return status;
}

void unload_all(const kf_db& db) {
  if (db.backend_state.load() != 1) return;
  for (const auto& k : db.kernels)
    for (void* module : k->module)
      if (module) db.backend->unload(module);
}

void kernel_workspace(const KernelImpl& k, int64_t m, int64_t* floats, int64_t* counters) {
  *floats = *counters = 0;
  if (!k.splits_through_memory()) return;
  if (k.op_kind == KernelOp::moe_gemm) {  // m is T: the launch covers the sorted capacity
    const LinearConfigKey& c = k.config;
    const int64_t capacity = moe::sorted_capacity(m, k.moe.top_k, k.moe.experts, c.block_m);
    *floats = moe::gemm_workspace_floats(c.split_k, k.shape_key.n, capacity);
    *counters = moe::gemm_counter_ints(c.split_k, c.block_m, c.block_n, k.shape_key.n, capacity);
    return;
  }
  if (k.op_kind != KernelOp::linear) return;  // the MoE helpers never split
  const LinearConfigKey& c = k.config;
  const int64_t n = k.generic() ? 0 : k.shape_key.n;  // the generic kernel never splits K
  *floats = w4a16::exchange_floats(c.split_k, c.block_m, c.block_n, c.stream_blocks, n, m, k.shape_key.bf16);
  *counters = w4a16::exchange_counters(c.split_k, c.block_m, c.block_n, c.stream_blocks, n, m);
}

void max_workspace(const kf_db& db, int64_t max_m, int64_t* floats, int64_t* counters) {
  *floats = *counters = 0;
  for (const ShapeEntry& entry : db.shapes) {
    if (!entry.linear) continue;  // MoE layers take their scratch from kf_moe_scratch_bytes
    for (uint32_t i = entry.first; i < entry.first + entry.count; ++i) {
      const WinnerRange& r = db.ranges[i];
      if (r.lo > max_m) break;  // ranges ascend: this one and later ones need more rows
      int64_t f = 0, c = 0;
      kernel_workspace(*r.kernel->impl, std::min(max_m, r.hi), &f, &c);
      *floats = std::max(*floats, f);
      *counters = std::max(*counters, c);
    }
  }
}

}  // namespace rt
}  // namespace kf
