#!/usr/bin/env bash
# The ctest GPU entries (tests/gpu/CMakeLists.txt, examples/CMakeLists.txt) on an NVIDIA
# machine that has no build tree: the programs and the list of entries staged in BIN by
# tools/stage_gpu_tests.py from a build tree elsewhere (BIN/gpu_tests.tsv: name, program,
# arguments), run on the DB in DB (default: the tracked one). Then bench/linear on that
# DB. One log per entry in $OUT; a summary line each on stdout.
#   tools/stage_gpu_tests.py    # where the build tree is
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
list="$bin/gpu_tests.tsv"
[ -f "$list" ] || { echo "no $list: run tools/stage_gpu_tests.py where the build tree is" >&2; exit 2; }
while IFS=$'\t' read -r -a f; do
  args=()
  for a in "${f[@]:2}"; do args+=("${a//\{DB\}/$db}"); done
  entry "${f[0]}" "$bin/${f[1]}" "${args[@]}"
done < "$list"
entry bench_linear "$bin/kforge_bench_linear" "$db" "$out/bench_linear.csv"
grep -E '^ *[0-9]+ +[0-9]+ +[0-9]+ \||^ +[0-9]+ \||empty kernel' "$out/bench_linear.log"
exit $failed
