#!/usr/bin/env bash
# The MoE family on an NVIDIA machine, in one go (binaries built elsewhere and passed in
# BIN, like device_run.sh): generate the sm_90a MoE packs (qwen3-35b, and an E = 8,
# top_k = 2 layer from tests/gpu/data/moe_small_e8.json), check every MoE kernel of both,
# tune the MoE ops into a copy of tuned_db/kforge.sqlite, check the runtime's picks and
# whole layers on the tuned copy, run bench/moe. Every step prints its rc and the later
# steps run whatever it was. Logs, CSVs and the slimmed tuned DB go to $OUT; packs to
# $WORK (default /tmp/kforge-moe, not returned).
#   BIN=.devout/bin OUT=results tools/device_moe.sh [autotune time budget, s (default 600)]
# CHECK_ARGS (e.g. "--t 1,16,512 --archetypes uniform,zipf1") trims the qwen3-35b check
# and CHECK_PACKS=e8 skips it and its pack (autotune verifies every candidate it times anyway);
# TUNED (default tuned_db/kforge.sqlite) is the DB whose copy is tuned (a partly tuned
# one resumes where it stopped); TUNE_FILTER (e.g. '_silu$': only the fused SiLU gemm1
# kernels, timed against the stored unfused ones plus moe_silu_mul, which gemm1 batches
# always time) limits what autotune generates and times.
set -uo pipefail
bin=${BIN:-.devout/bin}
out=${OUT:-gpu-results}
work=${WORK:-/tmp/kforge-moe}
budget=${1:-600}
ops=w4a16_moe_gemm1,w4a16_moe_gemm2
mkdir -p "$out" "$work"
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"

step() { echo "== $* ($(date +%T))"; }
summary() { grep -E "^FAIL" "$1" | head -20; tail -1 "$1"; }  # failures, then "N passed, N failed"

step genkernels "$ops" sm_90a: qwen3-35b and E=8
if [ "${CHECK_PACKS:-e8 q35}" != e8 ]; then  # the qwen3-35b pack is only for its check
  "$bin/genkernels" --arch sm_90a --ops "$ops" --templates templates --out "$work/q35" -q > "$out/genkernels.log" 2>&1
  echo "genkernels qwen3-35b rc=$?"; tail -8 "$out/genkernels.log"
fi
# E = 8 in every quantisation variant (fp16, asymmetric zero points, group 64 and
# per-channel), on a spread of configs of both kinds; E8_PACK: such a pack generated
# elsewhere instead.
if [ -n "${E8_PACK:-}" ]; then
  mkdir -p "$work/e8" && cp "$E8_PACK" "$work/e8/kforge.sqlite"
else
  "$bin/genkernels" --arch sm_90a --ops "$ops" --templates templates --config tests/gpu/data/moe_small_e8.json \
    --dtype bf16,fp16 --quant sym,asym --group-size 128,64,channel \
    --filter "${E8_FILTER:-^moe_|_(bm1_bn64_bk32_w4_sk1|bm2_bn128_bk64_w8_sk1|bm4_bn64_bk32_w4_sk2|bm16_bn64_bk32_w4_sk1|bm32_bn64_bk64_w4_sk2|bm64_bn128_bk64_w8_sk1)_s[0-9]+(_silu|_red)?\$}" \
    --out "$work/e8" -q > "$out/genkernels_e8.log" 2>&1
  echo "genkernels E=8 rc=$?"; tail -3 "$out/genkernels_e8.log"
fi

step check every MoE kernel of the generated packs
for p in ${CHECK_PACKS:-e8 q35}; do
  args=(); [ "$p" = q35 ] && read -r -a args <<< "${CHECK_ARGS:-}"
  "$bin/kforge_check_moe" --pack "$work/$p/kforge.sqlite" --csv "$out/check_moe_$p.csv" "${args[@]}" \
    > "$out/check_moe_$p.log" 2>&1
  echo "check $p rc=$?"; summary "$out/check_moe_$p.log"
done

step autotune "$ops" for ${budget}s into a copy of tuned_db/kforge.sqlite
cp "${TUNED:-tuned_db/kforge.sqlite}" "$work/tuned.sqlite"
tune_args=(); [ -n "${TUNE_FILTER:-}" ] && tune_args=(--filter "$TUNE_FILTER")
"$bin/autotune" --db "$work/tuned.sqlite" --ops "$ops" --templates templates --time-budget "$budget" -q \
  "${tune_args[@]}" > "$out/autotune_moe.log" 2>&1
echo "autotune rc=$?"; tail -40 "$out/autotune_moe.log"

step check the tuned picks, whole layers and bad input on the tuned DB
"$bin/kforge_check_moe" --pack "$work/tuned.sqlite" --no-candidates --csv "$out/check_moe_tuned.csv" \
  > "$out/check_moe_tuned.log" 2>&1
echo "check tuned rc=$?"; grep -E "^(SKIP|FAIL)" "$out/check_moe_tuned.log" | head -20; tail -1 "$out/check_moe_tuned.log"

step bench/moe
"$bin/kforge_bench_moe" "$work/tuned.sqlite" "$out/bench_moe.csv" > "$out/bench_moe.log" 2>&1
echo "bench rc=$?"; cat "$out/bench_moe.log"

step example engine and vLLM export from the tuned DB
"$bin/kforge_example_engine" "$work/tuned.sqlite" > "$out/example.log" 2>&1
echo "example rc=$?"; tail -6 "$out/example.log"
"$bin/autotune" --db "$work/tuned.sqlite" --export-vllm "$out/vllm" > "$out/export.log" 2>&1
echo "export rc=$?"; cat "$out/export.log"

python3 tools/slim_db.py "$work/tuned.sqlite" "$out/kforge.sqlite"
echo "slim rc=$?"
