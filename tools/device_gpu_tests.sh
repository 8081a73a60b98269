#!/usr/bin/env bash
# The ctest GPU entries (tests/gpu/CMakeLists.txt, examples/CMakeLists.txt) on an NVIDIA
# machine that has no build tree: the same programs and arguments, binaries built
# elsewhere and passed in BIN (stripped copies of build/tests/gpu/kforge_check_* and
# build/examples/kforge_example_engine), on the DB in DB (default: the tracked one).
# Then bench/linear on that DB. One log per entry in $OUT; a summary line each on stdout.
#   BIN=.devout/bin OUT=results [DB=tuned_db/kforge.sqlite] tools/device_gpu_tests.sh
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
db=${DB:-tuned_db/kforge.sqlite}
mkdir -p "$out"
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"
failed=0
entry() {
  local name=$1 start rc
  shift
  start=$(date +%s)
  timeout 300 "$@" > "$out/$name.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed=1
  echo "$name rc=$rc $(($(date +%s) - start)) s: $(tail -1 "$out/$name.log")"
}
entry gpu_check_linear "$bin/kforge_check_linear" --pack "$db" --m 1,16,64,333
entry gpu_check_edge_mapping "$bin/kforge_check_linear" --pack "$db" --edge-self-test
entry gpu_check_moe "$bin/kforge_check_moe" --pack "$db"
entry gpu_check_mla "$bin/kforge_check_mla" --pack "$db" --q 1,3
entry gpu_check_mxfp4 "$bin/kforge_check_mxfp4" --pack "$db" --t 1,5
entry gpu_check_wgmma_layout "$bin/kforge_check_wgmma_layout"
entry gpu_example_engine "$bin/kforge_example_engine" "$db"
entry bench_linear "$bin/kforge_bench_linear" "$db" "$out/bench_linear.csv"
grep -E '^ *[0-9]+ +[0-9]+ +[0-9]+ \||^ +[0-9]+ \||empty kernel' "$out/bench_linear.log"
exit $failed
