#!/usr/bin/env bash
# Installs what tpp needs, then builds and runs the whole test suite in each configuration:
#   aarch64  NEON: cross-compiled with Debian's g++-aarch64-linux-gnu, run under qemu-user
#   asan     -march=native with clang++-14, AddressSanitizer + UndefinedBehaviorSanitizer at -O1 -g1
#            (ASan's advice; line tables name every frame of a report; 40% less compile time than -O2 -g,
#            test/dnn/conv2d.cpp 72 -> 43 s, the same run time), every finding fatal
#            (-fno-sanitize-recover=all); also the suite under the other compiler users have
#   native   -march=native             (AVX-512 on Zen 5), -O3
#   avx2     -mavx2 -mfma              (the AVX2 kernels), -O2
#   generic  -march=x86-64, TPP_SIMD=OFF (scalar op loops; SSE2 for the policies' SIMD mul), -O2
#   clang    -march=native with clang++-14, no sanitizers (not in the default list: asan covers it)
# tpp_train and its tests (examples/train) build in native only, with one multiplier of each kind of product
# (TPP_TRAIN_POLICIES=sample: its layers are the dnn tests' layers, which every configuration runs).
# Warnings are errors. Every public header compiling alone and the installed-package consumer are
# checked in the native configuration (generic did too until tpp_train's build and the apt packages it
# needs took its 1.5 minutes: the generic suite still compiles every header, inside its tests). The ops' policy sweeps
# run the whole catalogue in native and one policy of each kind of multiply in the others
# (TPP_TEST_POLICIES=sample; test/approx/sweep.hpp says why that drops no coverage).
# Why clang for asan: GCC 12 compiled the sanitized suite about 5x slower (ops/gemm/brgemm.cpp: 421 s with
# -O2 -g, against 87 s with clang 14, 34 s unsanitized), which took CI from 15 to 83 minutes.
# Usage: scripts/run-tests.sh [aarch64|asan|native|avx2|generic|clang ...] (default: the first five, in
# that order)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(aarch64 asan native avx2 generic)
extra=()
case " ${configs[*]} " in *" aarch64 "*) extra+=(g++-aarch64-linux-gnu qemu-user) ;; esac
case " ${configs[*]} " in *" clang "* | *" asan "*) extra+=(clang-14) ;; esac
TPP_EXTRA_PACKAGES="${extra[*]}" "$root/scripts/install-deps.sh"
jobs=$(nproc)

# The doctest suite cross-compiled for AArch64 and run under qemu. xsimd and doctest are header-only;
# a directory of links to just their headers keeps the host's /usr/include out of the cross build.
run_aarch64() {
  local build="$root/build/test-aarch64" deps="$root/build/test-aarch64/deps"
  rm -rf "$build/obj"
  mkdir -p "$build/obj" "$deps"
  for d in xsimd xtl doctest; do ln -sfn "/usr/include/$d" "$deps/$d"; done
  local sources=("$root"/test/main.cpp)
  while IFS= read -r f; do sources+=("$f"); done < <(find "$root/test" -name '*.cpp' ! -path '*/consumer/*' ! -name main.cpp | sort)
  printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c \
    'aarch64-linux-gnu-g++ -std=c++20 -O2 -fopenmp -Wall -Wextra -Werror -DTPP_TEST_POLICY_SAMPLE=1 -I"$1/include" -I"$1/test" -isystem "$2" -c "$3" -o "$4/obj/$(echo "$3" | md5sum | cut -c1-12).o"' \
    _ "$root" "$deps" {} "$build"
  aarch64-linux-gnu-g++ -fopenmp "$build"/obj/*.o -o "$build/tpp_tests"
  OMP_NUM_THREADS=2 qemu-aarch64 -L /usr/aarch64-linux-gnu "$build/tpp_tests" --no-intro
}

# avx2 and generic build at -O2 (Debian's and most users' level, about a third less compile time than
# Release's -O3); native keeps -O3, aarch64 -O2.
o2="-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG"
for c in "${configs[@]}"; do
  if [ "$c" = aarch64 ]; then
    echo "=== tpp tests: aarch64 (NEON, qemu-user) ==="
    run_aarch64
    continue
  fi
  type=Release
  env=()
  case "$c" in
    native) flags=(-DTPP_ARCH_FLAGS=-march=native -DTPP_TRAIN_POLICIES=sample) ;;
    asan)
      type=RelWithDebInfo
      flags=(-DTPP_ARCH_FLAGS=-march=native -DCMAKE_CXX_COMPILER=clang++-14 -DTPP_SANITIZE=address,undefined
             "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
             -DTPP_TEST_PACKAGING=OFF -DTPP_TEST_POLICIES=sample -DTPP_BUILD_TRAIN=OFF)
      env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1) ;;
    avx2) flags=("-DTPP_ARCH_FLAGS=-mavx2 -mfma" "$o2" -DTPP_TEST_PACKAGING=OFF -DTPP_TEST_POLICIES=sample
                -DTPP_BUILD_TRAIN=OFF) ;;
    clang) flags=(-DTPP_ARCH_FLAGS=-march=native -DCMAKE_CXX_COMPILER=clang++-14 -DTPP_TEST_PACKAGING=OFF) ;;
    generic) flags=(-DTPP_ARCH_FLAGS=-march=x86-64 -DTPP_SIMD=OFF "$o2" -DTPP_TEST_PACKAGING=OFF -DTPP_TEST_POLICIES=sample
                   -DTPP_BUILD_TRAIN=OFF) ;;
    *) echo "unknown configuration '$c' (aarch64, asan, native, avx2, clang, generic)" >&2; exit 2 ;;
  esac
  build="$root/build/test-$c"
  echo "=== tpp tests: $c ==="
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=$type -DTPP_WERROR=ON -DTPP_BUILD_BENCH=OFF \
        -DTPP_BUILD_EXAMPLES=ON "${flags[@]}" > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
  grep '^-- tpp:' "$build.configure.log" || true
  cmake --build "$build" -j "$jobs"
  (cd "$build" && env OMP_NUM_THREADS=2 "${env[@]}" ctest --output-on-failure -j 1)
done
