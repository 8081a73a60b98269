#!/usr/bin/env bash
# Everything to run on an NVIDIA machine, in one go (binaries built elsewhere and
# passed in BIN): generate the sm_90a pack, check every kernel against the CPU
# reference, tune qwen3-35b into tuned_db/, run bench/linear and the example engine.
# Results (logs, CSVs, the slimmed tuned DB) go to $OUT.
#   BIN=.devout/bin OUT=results tools/device_run.sh [autotune time budget, s]
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
budget=${1:-300}
mkdir -p "$out" tuned_db
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"

step() { echo "== $* ($(date +%T))"; }

step generate and tune
"$bin/autotune" --db tuned_db/kforge.sqlite --templates templates --time-budget "$budget" -q \
  > "$out/autotune.log" 2>&1
echo "autotune rc=$?"; tail -45 "$out/autotune.log"

step check every kernel
"$bin/kforge_check_linear" --pack tuned_db/kforge.sqlite --csv "$out/check_linear.csv" > "$out/check_linear.log" 2>&1
echo "check rc=$?"; grep -E "^FAIL" "$out/check_linear.log" | head -20; tail -8 "$out/check_linear.log"
python3 tools/sass_mma_count.py tuned_db/kforge.sqlite > "$out/sass_mma.txt"; tail -1 "$out/sass_mma.txt"

step bench/linear
"$bin/kforge_bench_linear" tuned_db/kforge.sqlite "$out/bench_linear.csv" > "$out/bench_linear.log" 2>&1
echo "bench rc=$?"; cat "$out/bench_linear.log"

step example engine
"$bin/kforge_example_engine" tuned_db/kforge.sqlite 2>&1 | tee "$out/example.log" | tail -12

python3 tools/slim_db.py tuned_db/kforge.sqlite "$out/kforge.sqlite"
