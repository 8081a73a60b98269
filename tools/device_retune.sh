#!/usr/bin/env bash
# Retune on an NVIDIA machine: check the decode and skinny kinds in the quantisation
# variants the DB does not hold (asym, fp16, g32, per-channel), bring the tracked tuned
# DB up to date with the current candidate space (autotune generates what it lacks and
# measures only what has no result yet), run bench/linear, check the DB's kernels
# against the CPU reference, and write the slimmed DB and logs to $OUT. The variants
# come first: a wrong new build shows in the first minute.
#   BIN=.devout/bin OUT=results [TEMPLATES=dir] [OPS=w4a16_linear] [VARIANTS=regex] [CHECK_M=list] [FILTER=regex] tools/device_retune.sh [budget s]
# VARIANT_PACK: a variants pack generated elsewhere (genkernels' own --quant/--dtype/
# --group-size spread), checked instead of generating one here.
# CHECK_M: the M values the variants are checked at (default 1,3,4,16, the decode range).
# SKIP_BENCH=1 leaves out bench/linear (for a run that benchmarks in a later call).
# SKIP_DB_CHECK=1 leaves out the last step (every DB kernel against the CPU reference),
# for a run that must fit one call; autotune has verified each kernel it timed anyway.
# FILTER limits what autotune builds and measures (e.g. '_skinny_': a new kind alone,
# beside the winners already stored; the winners are recomputed over everything stored).
# BUNDLE=1 leaves $OUT with two files whatever step it ends at: kforge.sqlite.gz (the
# slimmed DB) and logs.tgz (every log and CSV), for a caller that can take back only a
# few files.
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
ops=${OPS:-w4a16_linear}
templates=${TEMPLATES:-templates}
variants=${VARIANTS:-decode_.*_bm(1|4)_bn64_bk32_w8_sk(1|4)_s(1|2)$|skinny_.*_bn(64|128)_bk32_w(2|4)_sk(1|2)_s(3|8)$}
mkdir -p "$out"
source "$(dirname "$0")/device_env.sh"
[ "${BUNDLE:-0}" = 1 ] && trap 'kf_bundle "$out"' EXIT
step() { echo "== $* ($(date +%T))"; }

step check the variants "${VARIANT_PACK:-$variants}"
vpack=${VARIANT_PACK:-/tmp/kf-variants/kforge.sqlite}
if [ -z "${VARIANT_PACK:-}" ]; then
  "$bin/genkernels" --arch sm_90a --ops w4a16_linear --templates "$templates" --quant sym,asym --dtype bf16,fp16 \
    --group-size 32,128,channel --filter "$variants" --out /tmp/kf-variants -q > "$out/variants_gen.log" 2>&1
  echo "genkernels rc=$?"; tail -3 "$out/variants_gen.log"
fi
"$bin/kforge_check_linear" --pack "$vpack" --m "${CHECK_M:-1,3,4,16}" --csv "$out/check_variants.csv" \
  > "$out/check_variants.log" 2>&1
echo "check rc=$?"; grep -E "^FAIL" "$out/check_variants.log" | head -20; tail -12 "$out/check_variants.log"

step autotune "$ops" ${FILTER:+--filter "$FILTER"}
tune_args=(); [ -n "${FILTER:-}" ] && tune_args=(--filter "$FILTER")
"$bin/autotune" --db tuned_db/kforge.sqlite --templates "$templates" --ops "$ops" --time-budget "${1:-240}" -q \
  "${tune_args[@]}" > "$out/autotune.log" 2>&1
echo "autotune rc=$?"
python3 tools/slim_db.py tuned_db/kforge.sqlite "$out/kforge.sqlite"
tail -48 "$out/autotune.log"

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  step bench/linear
  "$bin/kforge_bench_linear" tuned_db/kforge.sqlite "$out/bench_linear.csv" > "$out/bench_linear.log" 2>&1
  echo "bench rc=$?"; cat "$out/bench_linear.log"
fi

[ "${SKIP_DB_CHECK:-0}" = 1 ] && exit 0
step check the DB\'s linear kernels
"$bin/kforge_check_linear" --pack tuned_db/kforge.sqlite --csv "$out/check_linear.csv" > "$out/check_linear.log" 2>&1
echo "check rc=$?"; grep -E "^FAIL" "$out/check_linear.log" | head -20; tail -8 "$out/check_linear.log"
