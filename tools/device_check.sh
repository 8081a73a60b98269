#!/usr/bin/env bash
# GPU checks of a kforge pack on an NVIDIA machine: every sm_90a w4a16_linear kernel
# against the CPU reference (tests/gpu/check_linear.cpp), and tensor-core instructions
# present in every prefill and skinny kernel. Results go to $OUT (default ./gpu-results).
#   tools/device_check.sh PACK CHECK_BINARY [extra kforge_check_linear args...]
set -uo pipefail
pack=${1:?pack path}
check=${2:?kforge_check_linear binary}
shift 2
out=${OUT:-gpu-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$out/gpu.txt"
python3 "$(dirname "$0")/sass_mma_count.py" "$pack" > "$out/sass_mma.txt"
sass_rc=$?
tail -1 "$out/sass_mma.txt"
"$check" --pack "$pack" --csv "$out/check_linear.csv" "$@" > "$out/check_linear.log" 2>&1
check_rc=$?
grep -E "^FAIL" "$out/check_linear.log" | head -40
tail -25 "$out/check_linear.log"
echo "sass_rc=$sass_rc check_rc=$check_rc"
[ $sass_rc -eq 0 ] && [ $check_rc -eq 0 ]
