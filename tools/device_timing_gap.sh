#!/usr/bin/env bash
# Why autotune's medians read below bench/linear's on the same kernels: one run on an
# NVIDIA machine (binaries built elsewhere, in BIN) that times the served decode kernels
# four ways, the GPU's clocks and power logged throughout:
#   bench/linear as it is (the host spins on each rep's stop event, then queues the next),
#   bench/linear with KF_BENCH_IDLE_US (the host sleeps after each rep, as autotune's
#   polling wait does), in the order spin, idle, spin, idle;
#   autotune retiming the same kernels at M = 1, 4, 16 on a copy of the DB.
#   BIN=.devout/bin OUT=results DB=path/to/kforge.sqlite [IDLE_US=100] tools/device_timing_gap.sh
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
db=${DB:-tuned_db/kforge.sqlite}
idle=${IDLE_US:-100}
mkdir -p "$out"
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active \
  --format=csv -lms 100 > "$out/clocks.csv" 2>&1 &
smi=$!
step() { echo "== $* ($(date +%T.%N | cut -c1-12))" | tee -a "$out/steps.txt"; }
decode_rows() { grep -E '^[0-9]+ +[0-9]+ +(1|4|16) \||empty kernel|host idle' "$1"; }
for run in spin1 idle1 spin2 idle2; do
  step "bench/linear $run"
  case $run in
    idle*) KF_BENCH_IDLE_US=$idle "$bin/kforge_bench_linear" "$db" > "$out/bench_$run.log" 2>&1 ;;
    *) "$bin/kforge_bench_linear" "$db" > "$out/bench_$run.log" 2>&1 ;;
  esac
  echo "rc=$?"; decode_rows "$out/bench_$run.log"
done
step "autotune retime"
cp "$db" "$out/retime.sqlite"
# The kernels bench/linear ran at M = 1, 4 and 16.
served=$(grep -E '^[0-9]+ +[0-9]+ +(1|4|16) \|' "$out/bench_spin1.log" | grep -oE 'w4a16_linear_[a-z0-9_]+' | sort -u |
  paste -sd'|')
echo "filter: $served"
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$bin/autotune" --db "$out/retime.sqlite" --ops w4a16_linear --filter "^($served)\$" --m 1,4,16 --no-generate \
  --retime-before "$since" -q > "$out/autotune.log" 2>&1
echo "autotune rc=$?"; tail -5 "$out/autotune.log"
python3 - "$out/retime.sqlite" "$since" <<'EOF' | tee "$out/autotune_medians.txt"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for shape, m, kernel, med in db.execute(
        "SELECT shape, m, kernel, median_us FROM results WHERE op = 'w4a16_linear' AND m IN (1, 4, 16) "
        "AND disposition = 'passed' AND measured_at >= ? ORDER BY shape, m", (sys.argv[2],)):
    print(f"{shape:32s} {m:3d} {med:8.3f} {kernel}")
EOF
kill $smi 2>/dev/null
rm -f "$out/retime.sqlite"
