#!/usr/bin/env bash
# Installs the Debian packages tpp needs to build, test and benchmark. Idempotent: does nothing
# when every package is already present. Uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libxsimd-dev      # SIMD substrate (8.1)
  xtl-dev           # Debian's xsimd CMake target links the xtl target
  libomp-dev        # OpenMP for clang builds (g++ uses libgomp from build-essential)
  doctest-dev       # unit tests
  libbenchmark-dev  # Google Benchmark
  libdnnl-dev       # oneDNN 2.6: benchmark peer and test reference
  libxsmm-dev       # LIBXSMM 1.17: optional exact BRGEMM backend
  zlib1g-dev        # tpp_train reads the gzipped IDX files
  dataset-fashion-mnist  # tpp_train's data: /usr/share/datasets/fashion-mnist
  libopenmpi-dev openmpi-bin  # tpp_train's data parallelism (mpirun)
)
# Extra packages can be requested by the caller, e.g. TPP_EXTRA_PACKAGES="qemu-user g++-aarch64-linux-gnu".
read -r -a extra <<<"${TPP_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
echo "tpp: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
