#!/usr/bin/env bash
# decode_timeline (bench/linear) built against another templates directory: a copy of
# templates/ with one change, so that a run on an NVIDIA machine times the variant beside
# the committed kernels (bench/NOTES.md linear v55b, v56 built several such variants of the
# skinny kind's split-K exchange). Needs nvcc (CUDA 12+, sm_90a); runs anywhere, and on a
# machine without a GPU the binary says it skipped.
#   tools/build_timeline_variant.sh TEMPLATES_DIR OUT_BINARY
set -euo pipefail
templates=${1:?templates directory}
out=${2:?output binary}
root=$(cd "$(dirname "$0")/.." && pwd)
nvcc=${KF_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
"$nvcc" -O3 -DNDEBUG --generate-code=arch=compute_90a,code=sm_90a -std=c++17 \
  -I"$templates" -I"$root/bench" -I"$root/runtime/include" -I"$root/bench/linear" \
  "$root/bench/linear/decode_timeline.cu" "$root/bench/linear/cold_timer.cu" -o "$out"
