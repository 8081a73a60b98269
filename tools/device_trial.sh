#!/usr/bin/env bash
# Try a new family of kernels on an NVIDIA machine in one go (binaries built elsewhere and
# passed in BIN, like device_run.sh): tune the kernels matching FILTER into the tracked
# DB beside what it already stores (autotune verifies each against the reference before
# timing it), check them against the CPU reference (linear at LINEAR_M, MoE at MOE_T
# under uniform and zipf1, with the runtime's picks and whole layers on the tuned DB),
# then run bench/moe and bench/linear on it. $OUT keeps two files whatever step it ends
# at: kforge.sqlite.gz (the slimmed DB) and logs.tgz, as device_retune.sh's BUNDLE=1.
#   BIN=.devout/bin OUT=results FILTER=regex [OPS=w4a16_linear,w4a16_moe] [LINEAR_M=list]
#     [MOE_T=list] [TUNE_M=list (linear)] [TUNE_T=list (MoE)] [RETIME=1] tools/device_trial.sh [budget s]
# RETIME=1 times the matching kernels' stored rows again in this run (autotune
# --retime-before), so the new kernels are compared with timings of the same run.
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
filter=${FILTER:?FILTER: the new kernels, a name regex}
ops=${OPS:-w4a16_linear,w4a16_moe}
budget=${1:-300}
mkdir -p "$out"
source "$(dirname "$0")/device_env.sh"
trap 'kf_bundle "$out"' EXIT
retime=()
[ -n "${RETIME:-}" ] && retime=(--retime-before "$(date -u +%Y-%m-%dT%H:%M:%SZ)")
step() { echo "== $* ($(date +%T))"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"

for op in ${ops//,/ }; do
  ms=${TUNE_M:-64,256,1024,4096}
  [ "$op" = w4a16_moe ] && ms=${TUNE_T:-256,512,1024,2048,4096}
  step autotune "$op" --filter "$filter" --m "$ms"
  "$bin/autotune" --db tuned_db/kforge.sqlite --templates templates --ops "$op" --filter "$filter" --m "$ms" \
    --time-budget "$budget" "${retime[@]}" -q > "$out/autotune_$op.log" 2>&1
  echo "autotune rc=$?"; tail -30 "$out/autotune_$op.log"
  # What the matching kernels still lack at the default M (or T) buckets: a rebuild drops
  # a changed kernel's rows at every M, not only at those timed above.
  "$bin/autotune" --db tuned_db/kforge.sqlite --templates templates --ops "$op" --filter "$filter" --no-generate \
    --plan -q > "$out/plan_$op.log" 2>&1
  echo "still to measure at the default buckets:"; grep -E 'measurements to make|^  ' "$out/plan_$op.log" | head -20
done
python3 tools/slim_db.py tuned_db/kforge.sqlite "$out/kforge.sqlite"

if [[ "$ops" == *w4a16_linear* ]]; then
  step check linear "$filter"
  timeout 600 "$bin/kforge_check_linear" --pack tuned_db/kforge.sqlite --filter "$filter" --m "${LINEAR_M:-3,100,256}" \
    --csv "$out/check_linear.csv" > "$out/check_linear.log" 2>&1
  echo "check rc=$?"; grep -E "^FAIL" "$out/check_linear.log" | head -20; tail -3 "$out/check_linear.log"
fi
if [[ "$ops" == *w4a16_moe* ]]; then
  step check moe "$filter"
  "$bin/kforge_check_moe" --pack tuned_db/kforge.sqlite --filter "$filter" --t "${MOE_T:-3,100,1024}" \
    --archetypes uniform,zipf1 --csv "$out/check_moe.csv" > "$out/check_moe.log" 2>&1
  echo "check rc=$?"; grep -E "^FAIL" "$out/check_moe.log" | head -20; tail -3 "$out/check_moe.log"
  step bench/moe
  "$bin/kforge_bench_moe" tuned_db/kforge.sqlite "$out/bench_moe.csv" > "$out/bench_moe.log" 2>&1
  echo "bench rc=$?"; grep -E "^ *(1|16|256|1024|4096) .*(layer|gemms|gemms_a|gemm1|gemm2|sum|align) " "$out/bench_moe.log"
fi
if [[ "$ops" == *w4a16_linear* ]]; then
  step bench/linear
  "$bin/kforge_bench_linear" tuned_db/kforge.sqlite "$out/bench_linear.csv" > "$out/bench_linear.log" 2>&1
  echo "bench rc=$?"; cat "$out/bench_linear.log"
fi
