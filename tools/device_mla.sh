#!/usr/bin/env bash
# Sparse MLA decode on an NVIDIA machine, in one go (binaries built elsewhere and passed in
# BIN, like device_moe.sh): generate deepseek-v3.2's sm_90a sparse_mla_decode pack, check
# every kernel of it (kforge_check_mla; CHECK=0 skips, CHECK_ARGS e.g. "--q 1,3" go to it),
# tune the family into a copy of tuned_db/kforge.sqlite, write its measurements as CSV and
# the slimmed tuned copy, then check the runtime's picks on that copy and run bench/mla
# (when those binaries are in BIN). Every step prints its rc and the later steps run
# whatever it was.
# Logs, the CSV and the slimmed tuned DB go to $OUT; packs to $WORK (default
# /tmp/kforge-mla, not returned).
#   BIN=.devout/bin OUT=results tools/device_mla.sh [autotune time budget, s (default 600)]
# TUNED (default tuned_db/kforge.sqlite) is the DB whose copy is tuned (a partly tuned one
# resumes where it stopped); AUTOTUNE_ARGS (e.g. "--m 1,64,1024 --max-candidates 8") go
# to autotune as they are; FILTER (a kernel-name regex, e.g. _wgmma_) limits generation,
# checks and tuning to those kernels (the tuned copy's other rows stay; winners are
# recomputed, over every stored row, only for the shapes whose kernels the filter selects,
# so a shape's winners deleted from TUNED come back only if its kernels are selected).
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
work=${WORK:-/tmp/kforge-mla}
budget=${1:-600}
model=deepseek-v3.2
ops=sparse_mla_decode
filter=${FILTER:-.*}
mkdir -p "$out" "$work"
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"

step() { echo "== $* ($(date +%T))"; }

step genkernels "$ops" sm_90a: "$model"
# The combine kernel always comes along: the split configs' checks need it.
"$bin/genkernels" --arch sm_90a --model "$model" --ops "$ops" --templates templates --out "$work/dsv32" -q \
  --filter "($filter)|sparse_mla_combine" \
  > "$out/genkernels_mla.log" 2>&1
echo "genkernels rc=$?"; tail -14 "$out/genkernels_mla.log"

if [ "${CHECK:-1}" != 0 ] && [ -x "$bin/kforge_check_mla" ]; then
  step check every sparse_mla_decode kernel of the generated pack
  read -r -a check_args <<< "${CHECK_ARGS:-}"
  "$bin/kforge_check_mla" --pack "$work/dsv32/kforge.sqlite" --filter "$filter" "${check_args[@]}" > "$out/check_mla.log" 2>&1
  echo "check rc=$?"; grep -E "^FAIL" "$out/check_mla.log" | head -20; tail -1 "$out/check_mla.log"
fi

step autotune "$ops" for ${budget}s into a copy of "${TUNED:-tuned_db/kforge.sqlite}"
cp "${TUNED:-tuned_db/kforge.sqlite}" "$work/tuned.sqlite"
read -r -a extra <<< "${AUTOTUNE_ARGS:-}"
# The kernels come from the compile cache the genkernels step filled.
"$bin/autotune" --db "$work/tuned.sqlite" --model "$model" --ops "$ops" --templates templates \
  --time-budget "$budget" -q --filter "$filter" "${extra[@]}" > "$out/autotune_mla.log" 2>&1
echo "autotune rc=$?"; tail -40 "$out/autotune_mla.log"

step measurements as CSV, dispositions
python3 - "$work/tuned.sqlite" "$out/mla_results.csv" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT device, shape, m, kernel, disposition, median_us, min_us, reps, max_rel_err, message"
                  " FROM results WHERE op = 'sparse_mla_decode' ORDER BY shape, m, median_us").fetchall()
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["device", "shape", "q", "kernel", "disposition", "median_us", "min_us", "reps", "max_rel_err", "message"])
    w.writerows(rows)
for d, n in db.execute("SELECT disposition, count(*) FROM results WHERE op = 'sparse_mla_decode' GROUP BY 1"):
    print(f"{d}: {n}")
for msg, n in db.execute("SELECT substr(message, 1, 100), count(*) FROM results WHERE op = 'sparse_mla_decode'"
                         " AND disposition IN ('failed', 'incorrect') GROUP BY 1 ORDER BY 2 DESC LIMIT 10"):
    print(f"  {n} x {msg}")
print(f"{len(rows)} rows in {sys.argv[2]}")
PY
echo "csv rc=$?"

python3 tools/slim_db.py "$work/tuned.sqlite" "$out/kforge.sqlite"
echo "slim rc=$?"

# The runtime's picks from the tuned copy: kf_run_mla checked (kforge_check_mla on the
# slimmed copy: its winners and bad input) and timed (bench/mla), when the binaries were
# passed in BIN.
if [ -x "$bin/kforge_check_mla" ]; then
  step check the runtime picks on the tuned copy
  "$bin/kforge_check_mla" --pack "$out/kforge.sqlite" --q 1,3 > "$out/check_mla_tuned.log" 2>&1
  echo "check tuned rc=$?"; grep -E "^FAIL" "$out/check_mla_tuned.log" | head -20; tail -1 "$out/check_mla_tuned.log"
fi
if [ -x "$bin/kforge_bench_mla" ]; then
  step bench/mla on the tuned copy
  "$bin/kforge_bench_mla" "$out/kforge.sqlite" "$out/bench_mla.csv" > "$out/bench_mla.txt" 2>&1
  echo "bench rc=$?"; cat "$out/bench_mla.txt"
fi
