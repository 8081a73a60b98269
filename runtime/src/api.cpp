// The C boundary: argument checks, and every C++ exception (out of memory while
// opening, mostly) turned into a status, since nothing may unwind into an engine's C.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "catalog.h"
#include "device.h"
#include "kforge/kforge.h"
#include "launch.h"
#include "mla_launch.h"
#include "mla_select.h"
#include "moe_launch.h"
#include "moe_layer.h"
#include "mxfp4_launch.h"
#include "mxfp4_layer.h"
#include "mxfp4_select.h"
#include "pack_reader.h"
#include "select.h"
#include "status.h"

namespace {

using namespace kf::rt;

template <class F>
kf_status guarded(const char* function, F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(KF_ERR_INTERNAL, "%s: out of memory", function);
  } catch (const std::exception& e) {
    return fail(KF_ERR_INTERNAL, "%s: %s", function, e.what());
  } catch (...) {
    return fail(KF_ERR_INTERNAL, "%s: unknown exception", function);
  }
}

kf_status null_argument(const char* function, const char* name) {
  return fail(KF_ERR_INVALID_ARGUMENT, "%s: %s is NULL", function, name);
}

// A runtime switch the environment turns off at kf_open (KFORGE_<NAME>=0).
bool switched_off(const char* variable) {
  const char* value = std::getenv(variable);
  return value && std::strcmp(value, "0") == 0;
}

// `backend` is null for kf_open_for_arch: bound on first use (launch.cpp).
kf_status open_pack(const char* path, const char* arch, const char* device_name, Backend* backend, kf_db** out) {
  auto db = std::make_unique<kf_db>();
  db->path = path;
  db->arch = arch;
  db->device_name = device_name ? device_name : "";
  // Overlapped launches exist from sm_90 on; the kernels' wait compiles to nothing below.
  db->overlap_launches =
      !switched_off("KFORGE_OVERLAP_LAUNCHES") && std::strncmp(arch, "sm_", 3) == 0 && std::atoi(arch + 3) >= 90;
  PackRows rows;
  kf_status status = read_pack(path, arch, &rows);
  if (status == KF_OK) status = build_catalog(std::move(rows), db.get());
  if (status != KF_OK) return status;
  if (switched_off("KFORGE_CLUSTER_ALIGN")) db->moe_align_cluster = nullptr;
  db->backend = backend ? backend : backend_for_arch(arch);
  if (backend) db->backend_state.store(1);
  *out = db.release();
  return KF_OK;
}

}  // namespace

extern "C" {

const char* kf_version(void) { return KF_VERSION; }

const char* kf_status_name(kf_status status) {
  switch (status) {
    case KF_OK: return "KF_OK";
    case KF_ERR_INVALID_ARGUMENT: return "KF_ERR_INVALID_ARGUMENT";
    case KF_ERR_IO: return "KF_ERR_IO";
    case KF_ERR_SCHEMA: return "KF_ERR_SCHEMA";
    case KF_ERR_NOT_FOUND: return "KF_ERR_NOT_FOUND";
    case KF_ERR_UNSUPPORTED_SHAPE: return "KF_ERR_UNSUPPORTED_SHAPE";
    case KF_ERR_BACKEND: return "KF_ERR_BACKEND";
    case KF_ERR_NO_DEVICE: return "KF_ERR_NO_DEVICE";
    case KF_ERR_INTERNAL: return "KF_ERR_INTERNAL";
  }
  return "KF_ERR_?";
}

const char* kf_last_error(void) { return last_error(); }

kf_status kf_open(const char* path, kf_db** db) {
  return guarded("kf_open", [&] {
    if (!path) return null_argument("kf_open", "path");
    if (!db) return null_argument("kf_open", "db");
    *db = nullptr;
    // File problems first: they should read the same on every machine.
    kf_status status = check_pack_file(path);
    Backend* backend = nullptr;
    DeviceInfo info;
    if (status == KF_OK) status = detect_device(&backend, &info);
    if (status == KF_OK) status = open_pack(path, info.arch, info.name, backend, db);
    return status;
  });
}

kf_status kf_open_for_arch(const char* path, const char* arch, const char* device_name, kf_db** db) {
  return guarded("kf_open_for_arch", [&] {
    if (!path) return null_argument("kf_open_for_arch", "path");
    if (!arch) return null_argument("kf_open_for_arch", "arch");
    if (!db) return null_argument("kf_open_for_arch", "db");
    *db = nullptr;
    if (!*arch) return fail(KF_ERR_INVALID_ARGUMENT, "kf_open_for_arch: arch is empty (e.g. sm_90a, gfx1151)");
    return open_pack(path, arch, device_name, nullptr, db);
  });
}

void kf_close(kf_db* db) {
  if (!db) return;
  guarded("kf_close", [&] {
    unload_all(*db);
    delete db;
    return KF_OK;
  });
}

const char* kf_db_arch(const kf_db* db) { return db ? db->arch.c_str() : ""; }
const char* kf_db_device_name(const kf_db* db) { return db ? db->device_name.c_str() : ""; }

kf_status kf_select(const kf_db* db, const char* op, const char* shape_key, int64_t m, const kf_kernel** kernel) {
  return guarded("kf_select", [&] {
    if (!db) return null_argument("kf_select", "db");
    if (!op) return null_argument("kf_select", "op");
    if (!shape_key) return null_argument("kf_select", "shape_key");
    if (!kernel) return null_argument("kf_select", "kernel");
    return select_by_key(*db, op, shape_key, m, kernel);
  });
}

kf_status kf_select_linear(const kf_db* db, int64_t n, int64_t k, int group, int bf16, int asym, int64_t m,
                           const kf_kernel** kernel) {
  return guarded("kf_select_linear", [&] {
    if (!db) return null_argument("kf_select_linear", "db");
    if (!kernel) return null_argument("kf_select_linear", "kernel");
    return select_linear(*db, LinearShapeKey{n, k, group, bf16 != 0, asym != 0}, m, kernel);
  });
}

const char* kf_kernel_name(const kf_kernel* kernel) { return kernel ? kernel->impl->name.c_str() : ""; }
int kf_kernel_is_fallback(const kf_kernel* kernel) { return kernel && kernel->fallback ? 1 : 0; }

int kf_kernel_fuses_silu(const kf_kernel* kernel) { return kernel && kernel->impl->config.silu ? 1 : 0; }
int kf_kernel_reduces_topk(const kf_kernel* kernel) { return kernel && kernel->impl->config.red ? 1 : 0; }

kf_status kf_kernel_workspace(const kf_kernel* kernel, int64_t m, int64_t* workspace_floats, int64_t* counter_ints) {
  return guarded("kf_kernel_workspace", [&] {
    if (!kernel) return null_argument("kf_kernel_workspace", "kernel");
    if (!workspace_floats || !counter_ints) return null_argument("kf_kernel_workspace", "an output pointer");
    if (m < 1)
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_kernel_workspace: m = %lld, must be at least 1", (long long)m);
    kernel_workspace(*kernel->impl, m, workspace_floats, counter_ints);
    return KF_OK;
  });
}

kf_status kf_db_max_workspace(const kf_db* db, int64_t max_m, int64_t* workspace_floats, int64_t* counter_ints) {
  return guarded("kf_db_max_workspace", [&] {
    if (!db) return null_argument("kf_db_max_workspace", "db");
    if (!workspace_floats || !counter_ints) return null_argument("kf_db_max_workspace", "an output pointer");
    if (max_m < 1)
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_db_max_workspace: max_m = %lld, must be at least 1", (long long)max_m);
    max_workspace(*db, max_m, workspace_floats, counter_ints);
    return KF_OK;
  });
}

kf_status kf_prepare(kf_db* db) {
  return guarded("kf_prepare", [&] { return db ? prepare(*db) : null_argument("kf_prepare", "db"); });
}

kf_status kf_launch(const kf_kernel* kernel, const kf_linear_args* args, void* stream) {
  return guarded("kf_launch", [&] {
    if (!kernel) return null_argument("kf_launch", "kernel");
    if (!args) return null_argument("kf_launch", "args");
    return launch(*kernel, *args, stream);
  });
}

kf_status kf_run_linear(const kf_db* db, const kf_linear_args* args, int bf16, int asym, void* stream) {
  return guarded("kf_run_linear", [&] {
    if (!db) return null_argument("kf_run_linear", "db");
    if (!args) return null_argument("kf_run_linear", "args");
    const kf_kernel* kernel = nullptr;
    kf_status status =
        select_linear(*db, LinearShapeKey{args->n, args->k, args->group, bf16 != 0, asym != 0}, args->m, &kernel);
    return status == KF_OK ? launch(*kernel, *args, stream) : status;
  });
}

kf_status kf_select_moe(const kf_db* db, int gemm, const kf_moe_shape* shape, int64_t t, const kf_kernel** kernel) {
  return guarded("kf_select_moe", [&] {
    if (!db) return null_argument("kf_select_moe", "db");
    if (!shape) return null_argument("kf_select_moe", "shape");
    if (!kernel) return null_argument("kf_select_moe", "kernel");
    if (gemm != 1 && gemm != 2)
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_select_moe: gemm = %d, must be 1 (gate_up) or 2 (down)", gemm);
    MoeShapeKey key;
    const kf_status status = moe_gemm_key(*shape, gemm, "kf_select_moe", &key);
    return status == KF_OK ? select_moe(*db, key, t, "kf_select_moe", kernel) : status;
  });
}

kf_status kf_kernel_block_m(const kf_kernel* kernel, int* block_m) {
  return guarded("kf_kernel_block_m", [&] {
    if (!kernel) return null_argument("kf_kernel_block_m", "kernel");
    if (!block_m) return null_argument("kf_kernel_block_m", "block_m");
    const KernelImpl& k = *kernel->impl;
    if (k.op_kind == KernelOp::mxfp4_gemm) {
      *block_m = k.mxfp4_config.block_m;
      return KF_OK;
    }
    if (k.op_kind != KernelOp::moe_gemm)
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_kernel_block_m: %s is a %s kernel, not a MoE GEMM (w4a16_moe or "
                  "mxfp4_moe)", k.name.c_str(), k.op.c_str());
    *block_m = k.config.block_m;
    return KF_OK;
  });
}

kf_status kf_launch_moe_align(const kf_db* db, const kf_moe_align_args* args, void* stream) {
  return guarded("kf_launch_moe_align", [&] {
    if (!db) return null_argument("kf_launch_moe_align", "db");
    if (!args) return null_argument("kf_launch_moe_align", "args");
    MoeLaunch launch;
    const kf_status status = plan_moe_align(*db, *args, "kf_launch_moe_align", &launch);
    return status == KF_OK ? launch_planned(launch, *args, stream) : status;
  });
}

kf_status kf_launch_moe_gemm(const kf_kernel* kernel, const kf_moe_gemm_args* args, void* stream) {
  return guarded("kf_launch_moe_gemm", [&] {
    if (!kernel) return null_argument("kf_launch_moe_gemm", "kernel");
    if (!args) return null_argument("kf_launch_moe_gemm", "args");
    MoeLaunch launch;
    const kf_status status = plan_moe_gemm(*kernel->impl, *args, "kf_launch_moe_gemm", &launch);
    return status == KF_OK ? launch_planned(launch, *args, stream) : status;
  });
}

kf_status kf_launch_moe_silu_mul(const kf_db* db, int bf16, const kf_moe_silu_mul_args* args, void* stream) {
  return guarded("kf_launch_moe_silu_mul", [&] {
    if (!db) return null_argument("kf_launch_moe_silu_mul", "db");
    if (!args) return null_argument("kf_launch_moe_silu_mul", "args");
    MoeLaunch launch;
    const kf_status status = plan_moe_silu_mul(*db, bf16 != 0, *args, "kf_launch_moe_silu_mul", &launch);
    return status == KF_OK ? launch_planned(launch, *args, stream) : status;
  });
}

kf_status kf_launch_moe_sum(const kf_db* db, int bf16, const kf_moe_sum_args* args, void* stream) {
  return guarded("kf_launch_moe_sum", [&] {
    if (!db) return null_argument("kf_launch_moe_sum", "db");
    if (!args) return null_argument("kf_launch_moe_sum", "args");
    MoeLaunch launch;
    const kf_status status = plan_moe_sum(*db, bf16 != 0, *args, "kf_launch_moe_sum", &launch);
    return status == KF_OK ? launch_planned(launch, *args, stream) : status;
  });
}

kf_status kf_moe_scratch_bytes(const kf_db* db, const kf_moe_shape* shape, int64_t max_t, size_t* bytes) {
  return guarded("kf_moe_scratch_bytes", [&] {
    if (!db) return null_argument("kf_moe_scratch_bytes", "db");
    if (!shape) return null_argument("kf_moe_scratch_bytes", "shape");
    if (!bytes) return null_argument("kf_moe_scratch_bytes", "bytes");
    return moe_scratch_bytes(*db, *shape, max_t, bytes);
  });
}

kf_status kf_run_moe(const kf_db* db, const kf_moe_shape* shape, const kf_moe_layer_args* args, void* stream) {
  return guarded("kf_run_moe", [&] {
    if (!db) return null_argument("kf_run_moe", "db");
    if (!shape) return null_argument("kf_run_moe", "shape");
    if (!args) return null_argument("kf_run_moe", "args");
    return run_moe(*db, *shape, *args, stream);
  });
}

kf_status kf_select_mla(const kf_db* db, const kf_mla_shape* shape, int64_t queries, const kf_kernel** kernel) {
  return guarded("kf_select_mla", [&] {
    if (!db) return null_argument("kf_select_mla", "db");
    if (!shape) return null_argument("kf_select_mla", "shape");
    if (!kernel) return null_argument("kf_select_mla", "kernel");
    MlaShapeKey key;
    const kf_status status = mla_key(*shape, "kf_select_mla", &key);
    return status == KF_OK ? select_mla(*db, key, queries, "kf_select_mla", kernel) : status;
  });
}

kf_status kf_mla_scratch_bytes(const kf_db* db, const kf_mla_shape* shape, int64_t max_queries, size_t* bytes) {
  return guarded("kf_mla_scratch_bytes", [&] {
    if (!db) return null_argument("kf_mla_scratch_bytes", "db");
    if (!shape) return null_argument("kf_mla_scratch_bytes", "shape");
    if (!bytes) return null_argument("kf_mla_scratch_bytes", "bytes");
    MlaShapeKey key;
    const kf_status status = mla_key(*shape, "kf_mla_scratch_bytes", &key);
    return status == KF_OK ? mla_scratch_bytes(*db, key, max_queries, bytes) : status;
  });
}

kf_status kf_launch_mla(const kf_kernel* kernel, const kf_mla_decode_args* args, void* scratch, size_t scratch_bytes,
                        void* stream) {
  return guarded("kf_launch_mla", [&] {
    if (!kernel) return null_argument("kf_launch_mla", "kernel");
    if (!args) return null_argument("kf_launch_mla", "args");
    return launch_mla(*kernel->impl, *args, scratch, scratch_bytes, stream);
  });
}

kf_status kf_run_mla(const kf_db* db, const kf_mla_shape* shape, const kf_mla_decode_args* args, void* scratch,
                     size_t scratch_bytes, void* stream) {
  return guarded("kf_run_mla", [&] {
    if (!db) return null_argument("kf_run_mla", "db");
    if (!shape) return null_argument("kf_run_mla", "shape");
    if (!args) return null_argument("kf_run_mla", "args");
    return run_mla(*db, *shape, *args, scratch, scratch_bytes, stream);
  });
}

kf_status kf_check_mla_indices(const int32_t* host_indices, int64_t queries, int64_t topk, int64_t kv_rows,
                               int64_t* bad_position) {
  return guarded("kf_check_mla_indices",
                 [&] { return check_mla_indices(host_indices, queries, topk, kv_rows, bad_position); });
}

kf_status kf_select_mxfp4_moe(const kf_db* db, int gemm, const kf_mxfp4_moe_shape* shape, int64_t t,
                              const kf_kernel** kernel) {
  return guarded("kf_select_mxfp4_moe", [&] {
    if (!db) return null_argument("kf_select_mxfp4_moe", "db");
    if (!shape) return null_argument("kf_select_mxfp4_moe", "shape");
    if (!kernel) return null_argument("kf_select_mxfp4_moe", "kernel");
    if (gemm != 1 && gemm != 2)
      return fail(KF_ERR_INVALID_ARGUMENT, "kf_select_mxfp4_moe: gemm = %d, must be 1 (gate_up) or 2 (down)", gemm);
    Mxfp4ShapeKey key;
    const kf_status status = mxfp4_gemm_key(*shape, gemm, "kf_select_mxfp4_moe", &key);
    return status == KF_OK ? select_mxfp4(*db, key, t, "kf_select_mxfp4_moe", kernel) : status;
  });
}

kf_status kf_launch_mxfp4_moe_gemm(const kf_kernel* kernel, const kf_mxfp4_moe_gemm_args* args, void* stream) {
  return guarded("kf_launch_mxfp4_moe_gemm", [&] {
    if (!kernel) return null_argument("kf_launch_mxfp4_moe_gemm", "kernel");
    if (!args) return null_argument("kf_launch_mxfp4_moe_gemm", "args");
    MoeLaunch launch;
    kf_mxfp4_moe_gemm_args kernel_args;
    const kf_status status = plan_mxfp4_gemm(*kernel->impl, *args, "kf_launch_mxfp4_moe_gemm", &launch, &kernel_args);
    return status == KF_OK ? launch_planned(launch, kernel_args, stream) : status;
  });
}

kf_status kf_mxfp4_moe_scratch_bytes(const kf_db* db, const kf_mxfp4_moe_shape* shape, int64_t max_t, size_t* bytes) {
  return guarded("kf_mxfp4_moe_scratch_bytes", [&] {
    if (!db) return null_argument("kf_mxfp4_moe_scratch_bytes", "db");
    if (!shape) return null_argument("kf_mxfp4_moe_scratch_bytes", "shape");
    if (!bytes) return null_argument("kf_mxfp4_moe_scratch_bytes", "bytes");
    return mxfp4_scratch_bytes(*db, *shape, max_t, bytes);
  });
}

kf_status kf_run_mxfp4_moe(const kf_db* db, const kf_mxfp4_moe_shape* shape, const kf_mxfp4_moe_layer_args* args,
                           void* stream) {
  return guarded("kf_run_mxfp4_moe", [&] {
    if (!db) return null_argument("kf_run_mxfp4_moe", "db");
    if (!shape) return null_argument("kf_run_mxfp4_moe", "shape");
    if (!args) return null_argument("kf_run_mxfp4_moe", "args");
    return run_mxfp4_moe(*db, *shape, *args, stream);
  });
}

}  // extern "C"
