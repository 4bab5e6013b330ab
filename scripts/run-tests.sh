#!/usr/bin/env bash
# Installs what tpp needs, then builds and runs the test suite three times, one per SIMD path this
# machine can execute:
#   native   -march=native             (AVX-512 on Zen 4)
#   avx2     -mavx2 -mfma              (the AVX2 kernels)
#   generic  -march=x86-64, TPP_SIMD=OFF (scalar op loops; SSE2 for the policies' SIMD mul)
# Warnings are errors. Usage: scripts/run-tests.sh [native|avx2|generic ...]   (default: all three)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(native avx2 generic)
jobs=$(nproc)

for c in "${configs[@]}"; do
  case "$c" in
    native) flags=(-DTPP_ARCH_FLAGS=-march=native) ;;
    avx2) flags=("-DTPP_ARCH_FLAGS=-mavx2 -mfma") ;;
    generic) flags=(-DTPP_ARCH_FLAGS=-march=x86-64 -DTPP_SIMD=OFF) ;;
    *) echo "unknown configuration '$c' (native, avx2, generic)" >&2; exit 2 ;;
  esac
  build="$root/build/test-$c"
  echo "=== tpp tests: $c ==="
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTPP_WERROR=ON -DTPP_BUILD_BENCH=OFF \
        -DTPP_BUILD_EXAMPLES=ON "${flags[@]}" > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
  grep '^-- tpp:' "$build.configure.log" || true
  cmake --build "$build" -j "$jobs"
  (cd "$build" && OMP_NUM_THREADS=2 ctest --output-on-failure -j 1)
done
