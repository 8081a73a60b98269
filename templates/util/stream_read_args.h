/* Arguments of kf_util_stream_read (stream_read.h), plain C so host code (the tuner, the
 * benchmarks) can fill them without the device portability layer. */
#ifndef KF_UTIL_STREAM_READ_ARGS_H
#define KF_UTIL_STREAM_READ_ARGS_H

#define KF_STREAM_READ_THREADS 256 /* threads per block, the kernel's launch bound */

typedef struct kf_stream_read_args {
  const void* data;
  unsigned long long bytes;
  unsigned int* sink; /* written only on a never-matching checksum: keeps the loads alive */
  unsigned int blocks;
  unsigned int reserved;
} kf_stream_read_args;

#endif
