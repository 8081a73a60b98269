// Utility kernels the tuner and benchmarks launch beside the real ones:
// - stream_read: reads `bytes` (a multiple of 16) once with 16-byte loads, grid-stride.
//   Used to flush L2 (over a buffer several times its size: reads leave no dirty lines
//   for the timed kernel to write back) and as the read floor of a layer (over exactly
//   its bytes, timed like the kernel). Launch: `blocks` x kStreamReadThreads.
// - empty: launch cost alone.
#pragma once
#include "kf_portability.h"
#include "util/stream_read_args.h"

namespace kf {

constexpr int kStreamReadThreads = KF_STREAM_READ_THREADS;

KF_INLINE void stream_read(const kf_stream_read_args& a) {
  const u32x4* data = static_cast<const u32x4*>(a.data);
  const unsigned long long count = a.bytes / 16;
  const unsigned long long stride = (unsigned long long)a.blocks * kStreamReadThreads;
  unsigned long long i = (unsigned long long)block_x() * kStreamReadThreads + thread_id();
  uint32_t acc = 0;
  // Four independent loads in flight per iteration.
  for (; i + 3 * stride < count; i += 4 * stride) {
    const u32x4 p = load16(data + i), q = load16(data + i + stride);
    const u32x4 r = load16(data + i + 2 * stride), s = load16(data + i + 3 * stride);
    acc ^= p.x ^ p.y ^ p.z ^ p.w ^ q.x ^ q.y ^ q.z ^ q.w ^ r.x ^ r.y ^ r.z ^ r.w ^ s.x ^ s.y ^ s.z ^ s.w;
  }
  for (; i < count; i += stride) {
    const u32x4 p = load16(data + i);
    acc ^= p.x ^ p.y ^ p.z ^ p.w;
  }
  if (acc == 0x9e3779b9u) *a.sink = acc;
}

}  // namespace kf
