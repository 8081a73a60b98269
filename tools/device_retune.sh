#!/usr/bin/env bash
# Retune on an NVIDIA machine: bring the tracked tuned DB up to date with the current
# candidate space (autotune generates what it lacks and measures only what has no
# result yet), check every kernel against the CPU reference, run bench/linear, and
# write the slimmed DB and logs to $OUT.   BIN=.devout/bin OUT=results tools/device_retune.sh [budget s]
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
mkdir -p "$out"
export PATH="$PATH:/usr/local/cuda/bin"
cublas=$(find /usr/local/cuda*/targets /usr/local/cuda*/lib64 -name 'libcublas.so.13' 2>/dev/null | head -1)
[ -n "$cublas" ] && export LD_LIBRARY_PATH="$(dirname "$cublas"):${LD_LIBRARY_PATH:-}"
"$bin/autotune" --db tuned_db/kforge.sqlite --templates templates --time-budget "${1:-240}" -q > "$out/autotune.log" 2>&1
echo "autotune rc=$?"
python3 tools/slim_db.py tuned_db/kforge.sqlite "$out/kforge.sqlite"
tail -48 "$out/autotune.log"
"$bin/kforge_bench_linear" tuned_db/kforge.sqlite "$out/bench_linear.csv" > "$out/bench_linear.log" 2>&1
echo "bench rc=$?"; cat "$out/bench_linear.log"
"$bin/kforge_check_linear" --pack tuned_db/kforge.sqlite --csv "$out/check_linear.csv" > "$out/check_linear.log" 2>&1
echo "check rc=$?"; grep -E "^FAIL" "$out/check_linear.log" | head -20; tail -8 "$out/check_linear.log"
