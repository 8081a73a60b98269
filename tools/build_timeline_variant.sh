#!/usr/bin/env bash
# decode_timeline (bench/linear) built against another templates directory: a copy of
# templates/ with one change, so that a run on an NVIDIA machine times the variant beside
# the committed kernels (bench/NOTES.md linear v55b, v56 built several such variants of the
# skinny kind's split-K exchange). The build is the CMake target's, in a build directory of
# its own configured with KF_TIMELINE_TEMPLATES (bench/linear/CMakeLists.txt); needs nvcc
# (CUDA 12+, sm_90a) and the project's build dependencies (tools/bootstrap.sh). Runs
# anywhere; on a machine without a GPU the binary says it skipped.
#   tools/build_timeline_variant.sh TEMPLATES_DIR OUT_BINARY [BUILD_DIR]
set -euo pipefail
templates=$(cd "${1:?templates directory}" && pwd)
out=${2:?output binary}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${3:-$root/build-timeline-variant}
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKF_TIMELINE_TEMPLATES="$templates" > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target kforge_decode_timeline -j "$(nproc)"
cp "$build/bench/linear/kforge_decode_timeline" "$out"
