// Fixture for tests/test_resources.cpp (clang 19); rebuild with:
// clang++-19 -x hip --offload-arch=gfx1151 --cuda-device-only -nogpulib -nogpuinc -O3 --no-gpu-bundle-output -o amd_gfx1151.hsaco amd_gfx1151.cu
extern "C" __attribute__((global)) void scale(float* p, float s) {
  unsigned i = __builtin_amdgcn_workitem_id_x();
  p[i] *= s;
}

extern "C" __attribute__((global)) void add(float* c, const float* a, const float* b) {
  unsigned i = __builtin_amdgcn_workitem_id_x();
  c[i] = a[i] + b[i];
}
