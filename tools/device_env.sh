# Sourced by the tools/device_*.sh scripts: nvcc on PATH (autotune compiles what a pack
# lacks) and, where the machine has one, the directory of CUDA 13's cuBLAS on
# LD_LIBRARY_PATH (the benchmarks' baseline links it).
export PATH="$PATH:/usr/local/cuda/bin"
kf_cublas=$(find /usr/local/cuda*/targets /usr/local/cuda*/lib64 /usr/local/cuda*/lib /usr/lib /opt -name 'libcublas.so.13' 2>/dev/null | head -1)
[ -n "$kf_cublas" ] && export LD_LIBRARY_PATH="$(dirname "$kf_cublas"):${LD_LIBRARY_PATH:-}"
unset kf_cublas

# kf_bundle DIR: leave DIR with two files, kforge.sqlite.gz (a slimmed DB written there,
# gzipped) and logs.tgz (everything else), for a caller that can take back only a few
# files (device_retune.sh's BUNDLE=1, device_trial.sh).
kf_bundle() {
  local dir=$1 rest
  [ -f "$dir/kforge.sqlite" ] && gzip -9f "$dir/kforge.sqlite"
  rest=$(cd "$dir" && ls | grep -v -e '^kforge\.sqlite\.gz$' -e '^logs\.tgz$')
  [ -n "$rest" ] && tar -C "$dir" -czf "$dir/logs.tgz" --remove-files $rest
}
