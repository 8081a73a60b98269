// Fixture for tests/test_resources.cpp (CUDA 13.0; the report is on stderr); rebuild with:
// nvcc -cubin -gencode=arch=compute_80,code=sm_80 -Xptxas -v -o nv_sm80.cubin nv_sm80.cu 2> nv_sm80.ptxas.txt
// Before sm_90 the cubin also keeps the register count in the top byte of the
// .text.<kernel> section's sh_info, which the fallback path of cubin_register_count reads.
extern "C" __global__ void scale(float* p, float s) {
  p[blockIdx.x * blockDim.x + threadIdx.x] *= s;
}
