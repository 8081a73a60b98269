// EdgeMapping: device memory whose last byte is the last byte of a mapping, with the next
// `guard` bytes of address space reserved and left unmapped. Data placed flush against
// end() makes any read past it fault (CUDA_ERROR_ILLEGAL_ADDRESS) instead of quietly
// landing in the rest of an allocation, as it would in a cuMemAlloc buffer: the GPU
// checks use it to prove a kernel reads no row of x past M, including copies that
// zero-fill such rows.
// Uses the driver's virtual memory management entry points, looked up in the
// already-loaded libcuda.so.1 (the check programs do not link the driver library).
#pragma once
#include <cuda.h>
#include <dlfcn.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cu_check.h"
#include "cuda_driver.h"

namespace kf {
namespace gpu_check {

class EdgeMapping {
 public:
  // At least `bytes` usable, ending at end(); `guard` unmapped bytes reserved after it.
  EdgeMapping(const cuda::Driver* cu, CUdevice dev, size_t bytes, size_t guard) {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) throw std::runtime_error("EdgeMapping: libcuda.so.1 is not loaded");
    auto find = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn) throw std::runtime_error(std::string("EdgeMapping: libcuda.so.1 has no ") + name);
    };
    // Stringified after macro expansion: cuda.h may map a name to a versioned symbol.
#define KF_EDGE_STR2(x) #x
#define KF_EDGE_STR(x) KF_EDGE_STR2(x)
    find(granularity_, KF_EDGE_STR(cuMemGetAllocationGranularity));
    find(reserve_, KF_EDGE_STR(cuMemAddressReserve));
    find(free_, KF_EDGE_STR(cuMemAddressFree));
    find(create_, KF_EDGE_STR(cuMemCreate));
    find(release_, KF_EDGE_STR(cuMemRelease));
    find(map_, KF_EDGE_STR(cuMemMap));
    find(unmap_, KF_EDGE_STR(cuMemUnmap));
    find(set_access_, KF_EDGE_STR(cuMemSetAccess));
#undef KF_EDGE_STR
#undef KF_EDGE_STR2

    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = dev;
    size_t gran = 0;
    CU_CHECK(granularity_(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    mapped_ = (bytes + gran - 1) / gran * gran;
    reserved_ = mapped_ + (guard + gran - 1) / gran * gran;
    CU_CHECK(reserve_(&base_, reserved_, gran, 0, 0));
    CU_CHECK(create_(&handle_, mapped_, &prop, 0));
    CU_CHECK(map_(base_, mapped_, 0, handle_, 0));
    CUmemAccessDesc access = {};
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    CU_CHECK(set_access_(base_, mapped_, &access, 1));
  }
  EdgeMapping(const EdgeMapping&) = delete;
  EdgeMapping& operator=(const EdgeMapping&) = delete;
  ~EdgeMapping() {
    unmap_(base_, mapped_);
    release_(handle_);
    free_(base_, reserved_);
  }
  // One past the last mapped byte.
  CUdeviceptr end() const { return base_ + mapped_; }
  size_t mapped_bytes() const { return mapped_; }

 private:
  decltype(&::cuMemGetAllocationGranularity) granularity_ = nullptr;
  decltype(&::cuMemAddressReserve) reserve_ = nullptr;
  decltype(&::cuMemAddressFree) free_ = nullptr;
  decltype(&::cuMemCreate) create_ = nullptr;
  decltype(&::cuMemRelease) release_ = nullptr;
  decltype(&::cuMemMap) map_ = nullptr;
  decltype(&::cuMemUnmap) unmap_ = nullptr;
  decltype(&::cuMemSetAccess) set_access_ = nullptr;
  CUdeviceptr base_ = 0;
  size_t mapped_ = 0, reserved_ = 0;
  CUmemGenericAllocationHandle handle_ = 0;
};

}  // namespace gpu_check
}  // namespace kf
