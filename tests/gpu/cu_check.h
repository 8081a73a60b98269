// CU_CHECK for the GPU check programs: a failed CUDA driver call prints the call, where it
// was made and the driver's message, then exits 1 (a check cannot go on without its
// device). Expects a `cu` (const kf::cuda::Driver*) in scope at the point of use.
#pragma once
#include <cstdio>
#include <cstdlib>

#define CU_CHECK(call)                                                                              \
  do {                                                                                              \
    CUresult rc_ = (call);                                                                          \
    if (rc_ != CUDA_SUCCESS) {                                                                      \
      const char* msg_ = nullptr;                                                                   \
      cu->cuGetErrorString(rc_, &msg_);                                                             \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, msg_ ? msg_ : "?"); \
      std::exit(1);                                                                                 \
    }                                                                                               \
  } while (0)
