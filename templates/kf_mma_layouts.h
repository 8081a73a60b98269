// Register layouts of the 16x16x16 matrix-multiply atoms kforge's templates use, as
// plain constexpr index math callable from host and device code. The device templates
// load fragments with these functions, and the host tests check the very same functions
// against the vendors' layout tables, so a wrong index cannot hide.
//
// Conventions (all three atoms):
//   A is a 16x16 row-major tile A[row][k]; B is stored as W[n][k] (a weight row per
//   output column), so B[k][n] = W[n][k]; C/D is 16x16 fp32.
//   Fragments are held as 32-bit registers, each packing two 16-bit values with
//   consecutive k (low half = even k). `a_pair(lane, p)` gives the (row, k) of the low
//   half of register p of `lane`; `c_elem(lane, e)` gives the (row, col) of fp32
//   accumulator element e.
#pragma once

#if defined(__CUDACC__)
#define KF_HD __host__ __device__
#elif defined(__HIP__)
#define KF_HD __attribute__((host, device))
#else
#define KF_HD
#endif

namespace kf {
namespace layout {

struct RC {
  int row;
  int col;
};

// RDNA3 / RDNA3.5 v_wmma_f32_16x16x16_{f16,bf16}, wave32. Lanes l and l+16 hold the same
// A row / B column (the ISA reads both copies); D row i is in register i/2, lane
// 16*(i%2) + j.
struct Wmma16Gfx11 {
  static constexpr int kWave = 32;
  static constexpr int kAPairs = 8;
  static constexpr int kBPairs = 8;
  static constexpr int kCElems = 8;
  KF_HD static constexpr RC a_pair(int lane, int p) { return {lane % 16, 2 * p}; }
  KF_HD static constexpr RC b_pair(int lane, int p) { return {lane % 16, 2 * p}; }
  KF_HD static constexpr RC c_elem(int lane, int e) { return {2 * e + lane / 16, lane % 16}; }
};

// CDNA3 v_mfma_f32_16x16x16_{f16,bf16_1k}, wave64. Each group of 16 lanes holds four
// consecutive k of one A row / B column; D rows 4*(l/16) .. +3 sit in the four registers.
struct Mfma16Gfx9 {
  static constexpr int kWave = 64;
  static constexpr int kAPairs = 2;
  static constexpr int kBPairs = 2;
  static constexpr int kCElems = 4;
  KF_HD static constexpr RC a_pair(int lane, int p) { return {lane % 16, 4 * (lane / 16) + 2 * p}; }
  KF_HD static constexpr RC b_pair(int lane, int p) { return {lane % 16, 4 * (lane / 16) + 2 * p}; }
  KF_HD static constexpr RC c_elem(int lane, int e) { return {4 * (lane / 16) + e, lane % 16}; }
};

// NVIDIA mma.sync.m16n8k16 (sm_80+), issued twice for a 16x16 tile: registers 0-1 of B
// and accumulators 0-3 cover columns 0-7, the rest columns 8-15. Within an m16n8k16:
// group g = lane/4 owns rows g and g+8, thread t = lane%4 owns k (and columns) 2t, 2t+1
// and those +8.
struct Mma16Sm80 {
  static constexpr int kWave = 32;
  static constexpr int kAPairs = 4;
  static constexpr int kBPairs = 4;
  static constexpr int kCElems = 8;
  KF_HD static constexpr RC a_pair(int lane, int p) {
    return {lane / 4 + 8 * (p % 2), 2 * (lane % 4) + 8 * (p / 2)};
  }
  KF_HD static constexpr RC b_pair(int lane, int p) {
    return {lane / 4 + 8 * (p / 2), 2 * (lane % 4) + 8 * (p % 2)};
  }
  KF_HD static constexpr RC c_elem(int lane, int e) {
    return {lane / 4 + 8 * ((e % 4) / 2), 8 * (e / 4) + 2 * (lane % 4) + e % 2};
  }
};

}  // namespace layout
}  // namespace kf
