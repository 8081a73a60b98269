#!/usr/bin/env bash
# The MXFP4 MoE GEMMs on an NVIDIA machine, in one go (binaries built elsewhere and passed
# in BIN, like device_mla.sh): generate gpt-oss-120b's sm_90a mxfp4_moe pack, check every
# kernel of it against the float64 reference (kforge_check_mxfp4), tune both GEMMs into a
# copy of tuned_db/kforge.sqlite, write their measurements as CSV and the slimmed tuned
# copy. Every step prints its rc and the later steps run whatever it was. Logs, the CSV and
# the slimmed tuned DB go to $OUT; packs to $WORK (default /tmp/kforge-mxfp4, not returned).
# With kforge_bench_ogs in BIN, bench/ogs then times the runtime's picks on the tuned copy.
#   BIN=.devout/bin OUT=results tools/device_mxfp4.sh [autotune time budget, s (default 600)]
# MODEL (default gpt-oss-120b; gpt-oss-20b) picks the layers, OPS (default mxfp4_moe, both
# GEMMs; mxfp4_moe_gemm1 or mxfp4_moe_gemm2) the GEMMs; CHECK_ARGS (e.g. "--t 1,33")
# go to kforge_check_mxfp4 and CHECK=0 skips it (autotune verifies every candidate it times
# anyway); TUNED (default tuned_db/kforge.sqlite) is the DB whose copy is tuned (a partly
# tuned one resumes where it stopped); AUTOTUNE_ARGS (e.g. "--m 1,64,1024 --archetypes
# uniform") go to autotune as they are; FILTER (a kernel-name regex, e.g. _wgmma_) limits
# generation, checks and tuning to those kernels (the tuned copy's other rows stay).
# GEN=0 skips genkernels, for a TUNED copy that already holds every kernel's code (timing
# again with AUTOTUNE_ARGS="--no-generate --retime-before T"); the check then takes the
# kernels of that copy.
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
work=${WORK:-/tmp/kforge-mxfp4}
budget=${1:-600}
model=${MODEL:-gpt-oss-120b}
ops=${OPS:-mxfp4_moe}
filter=${FILTER:-.*}
mkdir -p "$out" "$work"
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"

step() { echo "== $* ($(date +%T))"; }

pack=$work/pack/kforge.sqlite
if [ "${GEN:-1}" != 0 ]; then
  step genkernels "$ops" sm_90a: "$model"
  "$bin/genkernels" --arch sm_90a --model "$model" --ops "$ops" --templates templates --out "$work/pack" -q --filter "$filter" \
    > "$out/genkernels_mxfp4.log" 2>&1
  echo "genkernels rc=$?"; tail -12 "$out/genkernels_mxfp4.log"
else
  pack=${TUNED:-tuned_db/kforge.sqlite}
fi

if [ "${CHECK:-1}" != 0 ]; then
  step check every mxfp4_moe kernel of "$pack"
  read -r -a check_args <<< "${CHECK_ARGS:-}"
  "$bin/kforge_check_mxfp4" --pack "$pack" --filter "$filter" "${check_args[@]}" > "$out/check_mxfp4.log" 2>&1
  echo "check rc=$?"; grep -E "^FAIL" "$out/check_mxfp4.log" | head -20; tail -1 "$out/check_mxfp4.log"
fi

step autotune "$ops" for ${budget}s into a copy of "${TUNED:-tuned_db/kforge.sqlite}"
cp "${TUNED:-tuned_db/kforge.sqlite}" "$work/tuned.sqlite"
read -r -a extra <<< "${AUTOTUNE_ARGS:-}"
# The kernels come from the compile cache the genkernels step filled.
"$bin/autotune" --db "$work/tuned.sqlite" --model "$model" --ops "$ops" --templates templates \
  --time-budget "$budget" -q --filter "$filter" "${extra[@]}" > "$out/autotune_mxfp4.log" 2>&1
echo "autotune rc=$?"; tail -40 "$out/autotune_mxfp4.log"

step measurements as CSV, dispositions, time per T
python3 - "$work/tuned.sqlite" "$out/mxfp4_results.csv" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
where = "op IN ('mxfp4_moe_gemm1', 'mxfp4_moe_gemm2')"
rows = db.execute("SELECT device, op, shape, routing, m, kernel, disposition, median_us, min_us, reps, max_rel_err,"
                  f" message FROM results WHERE {where} ORDER BY op, shape, m, routing, median_us").fetchall()
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["device", "op", "shape", "routing", "t", "kernel", "disposition", "median_us", "min_us", "reps",
                "max_rel_err", "message"])
    w.writerows(rows)
for d, n in db.execute(f"SELECT disposition, count(*) FROM results WHERE {where} GROUP BY 1"):
    print(f"{d}: {n}")
for msg, n in db.execute(f"SELECT substr(message, 1, 100), count(*) FROM results WHERE {where}"
                         " AND disposition IN ('failed', 'incorrect') GROUP BY 1 ORDER BY 2 DESC LIMIT 10"):
    print(f"  {n} x {msg}")
print("max normalised error of a passed row:",
      db.execute(f"SELECT max(max_rel_err) FROM results WHERE {where} AND disposition = 'passed'").fetchone()[0])
# Device time the timed runs took (reps x median, the flushes not counted), per op and T.
for op, m, n, us in db.execute(f"SELECT op, m, count(*), sum(reps * median_us) FROM results WHERE {where}"
                               " AND disposition = 'passed' GROUP BY 1, 2 ORDER BY 1, 2"):
    print(f"  {op} T={m}: {n} passed, {us / 1e6:.2f} s in timed runs")
print(f"{len(rows)} rows in {sys.argv[2]}")
PY
echo "csv rc=$?"

python3 tools/slim_db.py "$work/tuned.sqlite" "$out/kforge.sqlite"
echo "slim rc=$?"

# The runtime's picks from the tuned copy: the gpt-oss-120b layer against the bytes
# roofline and a per-expert cuBLAS loop (bench/ogs), when the binary was passed in BIN.
if [ -x "$bin/kforge_bench_ogs" ]; then
  step bench/ogs on the tuned copy
  "$bin/kforge_bench_ogs" "$out/kforge.sqlite" "$out/bench_ogs.csv" > "$out/bench_ogs.txt" 2>&1
  echo "bench rc=$?"; grep -E " layer " "$out/bench_ogs.txt"
fi
