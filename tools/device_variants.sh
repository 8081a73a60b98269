#!/usr/bin/env bash
# Template variants timed against the DB's own kernels in one run on an NVIDIA machine
# (binaries built elsewhere and passed in BIN). VARIANTS holds one folder per variant,
# each with <kernel name>.bin code objects compiled from the variant's templates under
# the tuned kernels' names; BENCH is a benchmark binary of BIN taking (db, csv, reps).
# The benchmark runs on the DB, then on a copy of it per variant with those kernels
# swapped in (tools/swap_kernels.py), then on the DB again (drift). Logs go to $OUT.
#   BIN=.devout/bin OUT=results VARIANTS=dir BENCH=kforge_bench_linear tools/device_variants.sh [db]
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
db=${1:-tuned_db/kforge.sqlite}
bench=${BENCH:?BENCH names the benchmark binary}
reps=${REPS:-100}
mkdir -p "$out"
source "$(dirname "$0")/device_env.sh"
work=$(mktemp -d)
run() {  # name db
  echo "== $bench: $1 ($(date +%T))"
  "$bin/$bench" "$2" "" "$reps" > "$out/${bench}_$1.log" 2>&1
  echo "rc=$?"
}
run base "$db"
for v in "${VARIANTS:?VARIANTS names the folder of variants}"/*/; do
  name=$(basename "$v")
  python3 tools/swap_kernels.py "$db" "$work/$name.sqlite" "$v" || continue
  run "$name" "$work/$name.sqlite"
done
run base_again "$db"
