#!/usr/bin/env bash
# The main job: installs what tpp needs, builds the programs, and prints every built-in multiplier's
# error statistics and throughput (scalar vs SIMD vs a naive per-product call).
# Extra arguments go to tpp_multipliers (e.g. --json out.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build/release"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTPP_BUILD_TESTS=OFF -DTPP_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" --target tpp_multipliers
"$build/examples/tpp_multipliers" "$@"
