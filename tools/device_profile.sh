#!/usr/bin/env bash
# Nsight Compute profile and SASS of chosen sm_90a kernels, on an NVIDIA machine
# (binaries built elsewhere and passed in BIN, like device_run.sh): generate the kernels
# matching FILTER, dump each one's SASS, and profile one launch of each at M rows (cold
# caches: ncu flushes them before every profiled launch) while kforge_check_linear runs
# them, so every profiled launch is also checked against the CPU reference. With OPS
# mxfp4_moe the kernels come from MODEL (default gpt-oss-120b) and kforge_check_mxfp4 runs
# them at T = M tokens; with OPS sparse_mla_decode they come from deepseek-v3.2 and
# kforge_check_mla runs them at Q = M queries; with OPS w4a16_moe they come from qwen3-35b
# and kforge_check_moe runs them at T = M tokens under uniform routing, from PACK (default
# the tuned DB, which has the helper kernels a layer needs).
#   BIN=.devout/bin OUT=results tools/device_profile.sh FILTER [M] [OPS]
# Writes $OUT/profile.txt (speed of light, memory, occupancy, warp stalls, scheduler)
# and $OUT/sass.tgz; with SOURCE=1 also $OUT/source.csv.gz, the first matching launch's
# SASS with its stall samples per instruction (where a kernel waits, line by line).
# LAUNCHES: how many launches to profile (default one per kernel; kforge_check_linear
# also runs a stream-K kernel on a smaller grid, a second launch of the same kernel).
set -uo pipefail
filter=${1:?kernel name regex}
m=${2:-1}
ops=${3:-w4a16_linear}
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
work=${WORK:-/tmp/kforge-profile}
mkdir -p "$out" "$work/sass"
source "$(dirname "$0")/device_env.sh"

model=()
check=("$bin/kforge_check_linear" --pack "$work/pack/kforge.sqlite" --m "$m")
if [ "$ops" = mxfp4_moe ]; then
  model=(--model "${MODEL:-gpt-oss-120b}")
  check=("$bin/kforge_check_mxfp4" --pack "$work/pack/kforge.sqlite" --t "$m")
elif [ "$ops" = w4a16_moe ]; then
  # kf_open wants the helper kernels (moe_align, ...) beside the GEMMs: a tuned DB holds them.
  check=("$bin/kforge_check_moe" --pack "${PACK:-tuned_db/kforge.sqlite}" --t "$m" --archetypes uniform --filter "$filter")
elif [ "$ops" = sparse_mla_decode ]; then
  model=(--model deepseek-v3.2)
  check=("$bin/kforge_check_mla" --pack "$work/pack/kforge.sqlite" --q "$m" --filter "$filter")
fi
"$bin/genkernels" --arch sm_90a "${model[@]}" --ops "$ops" --templates templates --filter "$filter" --out "$work/pack" -q |
  tail -2
python3 - "$work/pack/kforge.sqlite" "$work/sass" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for name, blob in db.execute("SELECT name, code_object FROM kernels WHERE code_object IS NOT NULL"):
    open(f"{sys.argv[2]}/{name}.cubin", "wb").write(blob)
EOF
n=0
for f in "$work"/sass/*.cubin; do
  cuobjdump -sass "$f" > "${f%.cubin}.sass" && rm "$f" && n=$((n + 1))
done
tar -C "$work" -czf "$out/sass.tgz" sass
echo "sass of $n kernels"

ncu --clock-control none --kernel-name "regex:$filter" --launch-count "${LAUNCHES:-$n}" \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
  --section WarpStateStats --section SchedulerStats --section SourceCounters \
  --metrics dram__bytes_read.sum,lts__t_sectors_op_read.sum,lts__t_sector_op_read_hit_rate.pct,smsp__pcsamp_warps_issue_stalled_long_scoreboard,smsp__pcsamp_warps_issue_stalled_barrier,smsp__pcsamp_warps_issue_stalled_membar,smsp__pcsamp_warps_issue_stalled_lg_throttle,smsp__pcsamp_warps_issue_stalled_wait,smsp__pcsamp_warps_issue_stalled_short_scoreboard,smsp__pcsamp_warps_issue_stalled_math_pipe_throttle,smsp__pcsamp_warps_issue_stalled_mio_throttle,smsp__pcsamp_warps_issue_stalled_selected,smsp__pcsamp_warps_issue_stalled_not_selected,smsp__pcsamp_warps_issue_stalled_no_instructions,smsp__pcsamp_warps_issue_stalled_drain,smsp__pcsamp_warps_issue_stalled_imc_miss,smsp__pcsamp_warps_issue_stalled_dispatch_stall,smsp__pcsamp_warps_issue_stalled_branch_resolving,smsp__pcsamp_warps_issue_stalled_sleeping \
  "${check[@]}" > "$out/profile.txt" 2>&1
echo "ncu rc=$?"
grep -E "^  [a-z_0-9]+\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issued Warp|passed" \
  "$out/profile.txt" | head -120

if [ "${SOURCE:-0}" = 1 ]; then
  ncu --clock-control none --kernel-name "regex:$filter" --launch-count 1 --section SourceCounters \
    --section WarpStateStats -f -o "$work/source" "${check[@]}" > "$work/source.log" 2>&1
  echo "ncu source rc=$?"
  ncu -i "$work/source.ncu-rep" --page source --print-source sass --csv | gzip -c > "$out/source.csv.gz"
fi
