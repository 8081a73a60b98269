#!/usr/bin/env bash
# Sets up a Debian 12 machine for kforge and builds it into ./build:
# installs the toolchain and libraries from Debian's packages (only those missing),
# then configures and builds with CMake. Safe to run again; it does only what is left.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  clang-19 lld-19 llvm-19           # AMDGPU code objects (gfx1151, gfx1100, gfx942)
  libsqlite3-dev sqlite3            # the kernel pack and tuned DBs
  libssl-dev                        # SHA-256 for the compile cache keys
  nlohmann-json3-dev libcli11-dev libmsgpack-cxx-dev doctest-dev
  libamdhip64-dev                   # HIP module API headers for the runtime's AMD side
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# nvcc (CUDA 12+) is optional: it is needed only for --arch sm_90a and the GPU checks.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "bootstrap: using /usr/local/cuda/bin/nvcc for sm_90a"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "bootstrap: built build/genkernels"
