// Fixture for tests/test_resources.cpp (clang 19); rebuild with:
// clang++-19 -x hip --offload-arch=gfx942 --cuda-device-only -nogpulib -nogpuinc -O3 --no-gpu-bundle-output -o amd_gfx942.hsaco amd_gfx942.cu

// Static LDS: shows up as .group_segment_fixed_size.
extern "C" __attribute__((global)) void lds_reverse(float* p) {
  __attribute__((shared)) float buf[256];
  unsigned i = __builtin_amdgcn_workitem_id_x();
  buf[i] = p[i];
  __builtin_amdgcn_s_barrier();
  p[i] = buf[255 - i];
}

// A private array indexed by a runtime value cannot live in registers, so it goes to
// scratch: shows up as .private_segment_fixed_size.
extern "C" __attribute__((global)) void scratch_lookup(float* p, const int* idx) {
  float local[64];
  unsigned i = __builtin_amdgcn_workitem_id_x();
  for (int k = 0; k < 64; ++k) local[k] = p[i * 64 + k] * k;
  p[i] = local[idx[i] & 63];
}

// Many values live at once under a tight VGPR cap: forces VGPR spills
// (.vgpr_spill_count). The asm clobber reserves accumulation registers so that
// .agpr_count is non-zero without needing MFMA code.
extern "C" __attribute__((global, amdgpu_num_vgpr(24))) void spill_sum(float* p) {
  unsigned i = __builtin_amdgcn_workitem_id_x();
  float v[48];
  for (int k = 0; k < 48; ++k) v[k] = p[i + k * 1024];
  float s = 0.f;
  for (int k = 0; k < 48; ++k) s += v[k] * v[47 - k];
  asm volatile("; reserve a0-a3" ::: "a0", "a1", "a2", "a3");
  for (int k = 0; k < 48; ++k) p[i + k * 1024] = v[k] * s;
}
