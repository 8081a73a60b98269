// Which rows of x a w4a16 kernel reads and where its rows of y go. The kernels walk rows
// 0 .. count() - 1 of a block grid; a Rows policy maps each to its data:
//   valid(i)  holds a real row (otherwise it is computed from some valid row of x and
//             never stored)
//   x_row(i)  the row of x it reads (a valid row index even when !valid(i))
//   y_row(i)  the row of y it writes
//   scale(i)  factor applied to its outputs
// kReduce = true: rows are added into y instead of stored (several rows may share a row
// of y), through add_pair(y, ld, i, col, a, b), which adds (a, b) * scale(i) to the
// adjacent columns col, col + 1 of row y_row(i) (col even).
// DenseRows is a plain GEMM (row i is row i of x and y); the MoE family gathers rows by
// routing (w4a16_moe/gemm.h), so the same kernel bodies serve both.
#pragma once
#include "kf_portability.h"

namespace kf {
namespace w4a16 {

struct DenseRows {
  static constexpr bool kReduce = false;
  int m;
  KF_INLINE int count() const { return m; }
  KF_INLINE bool valid(int i) const { return i < m; }
  KF_INLINE int x_row(int i) const { return i < m ? i : m - 1; }
  KF_INLINE int y_row(int i) const { return i; }
  KF_INLINE float scale(int) const { return 1.f; }
};

}  // namespace w4a16
}  // namespace kf
