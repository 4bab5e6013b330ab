#!/usr/bin/env bash
# The main job: installs what tpp needs, builds tpp_train, and trains LeNet-5 on Fashion-MNIST for 2 epochs
# with each of exact fp32, bf16_rz, mitchell<7>, mbm<7>, drum<6> and an ApproxTrain AMSim table written
# from the registered exact model at 4 mantissa bits, every product of forward and backward through the
# multiplier; prints one table, writes results/compare.json and results/curves.svg.
# Extra arguments go to tpp_train (e.g. --threads 1, --epochs 3, --model lenet300, --backward exact).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build/release"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTPP_BUILD_TESTS=OFF -DTPP_BUILD_BENCH=OFF \
  -DTPP_TRAIN_POLICIES=demo > /dev/null
cmake --build "$build" -j "$(nproc)" --target tpp_train tpp_amsim_table
mkdir -p "$root/results"
"$build/examples/tpp_amsim_table" exact 4 "$root/results/exact4.bin" > /dev/null
"$build/examples/train/tpp_train" --model lenet5 --epochs 2 \
  --compare "exact,bf16_rz,mitchell<7>,mbm<7>,drum<6>,$root/results/exact4.bin" \
  --json "$root/results/compare.json" --plot "$root/results/curves.svg" "$@"
echo "wrote $root/results/compare.json and $root/results/curves.svg"
