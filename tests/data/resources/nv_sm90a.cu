// Fixture for tests/test_resources.cpp (CUDA 13.0; the report is on stderr); rebuild with:
// nvcc -cubin -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o nv_sm90a.cubin nv_sm90a.cu 2> nv_sm90a.ptxas.txt
extern "C" __global__ void axpy(float* y, const float* x, float a) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i] += a * x[i];
}

// Static shared memory: reported as "N bytes smem".
extern "C" __global__ void smem_reverse(float* p) {
  __shared__ float buf[256];
  unsigned i = threadIdx.x;
  buf[i] = p[i];
  __syncthreads();
  p[i] = buf[255 - i];
}

// A local array indexed by a runtime value cannot live in registers: it takes a stack
// frame ("N bytes stack frame").
extern "C" __global__ void stack_lookup(float* p, const int* idx) {
  float local[64];
  unsigned i = threadIdx.x;
#pragma unroll 1  // keeps the fixture small; the array stays in the stack frame either way
  for (int k = 0; k < 64; ++k) local[k] = p[i + k * 1024] * k;
  p[i] = local[idx[i] & 63];
}

// Many values live at once under a tight register cap: spill stores and loads. ptxas
// raises the cap of 16 to its minimum of 24 and says so in a warning line, which the
// parser has to skip.
extern "C" __global__ void __maxnreg__(16) spill_sum(float* p) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  float v[16];
  for (int k = 0; k < 16; ++k) v[k] = p[i + k * 1024];
  float s = 0.f;
  for (int k = 0; k < 16; ++k) s += v[k] * v[15 - k];
  for (int k = 0; k < 16; ++k) p[i + k * 1024] = v[k] * s;
}
