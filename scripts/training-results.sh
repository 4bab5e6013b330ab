#!/usr/bin/env bash
# The runs behind docs/training.md: LeNet-5 and LeNet-300-100 on Fashion-MNIST, E epochs (default 3), seeds
# 1-3, with every multiplier of the table there (Mitchell at 3 bits and an exact 4-bit multiplier as AMSim
# tables written by tpp_amsim_table), plus forward-approximate / backward-exact runs; then the summary
# (scripts/training-summary.py). Needs a full build: cmake --build build/release --target tpp_train
# tpp_amsim_table (TPP_TRAIN_POLICIES=all, the default). Takes about 30 minutes on one core at 3 epochs (--threads 1, so it can share the machine).
# Usage: scripts/training-results.sh [epochs] [out dir (default results/training)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
epochs=${1:-3}
out=${2:-$root/results/training}
bin=$root/build/release/examples/train/tpp_train
mkdir -p "$out"
"$root/build/release/examples/tpp_amsim_table" 'mitchell<7>' 3 "$out/mitchell3.bin" >/dev/null
"$root/build/release/examples/tpp_amsim_table" exact 4 "$out/exact4.bin" >/dev/null
for seed in 1 2 3; do
  for model in lenet5 lenet300; do
    for m in exact bf16_rz bf16_rne 'mitchell<7>' 'mbm<7>' 'drum<6>' 'lut<exact,4>'; do
      f="$out/$model-$(echo "$m" | tr -d '<>,')-approx-s$seed.json"
      [ -f "$f" ] || "$bin" --threads 1 --model "$model" --epochs "$epochs" --seed "$seed" --multiplier "$m" --quiet --json "$f" >/dev/null
    done
    # one table file per process (approx::amsim is process-wide)
    f="$out/$model-mitchell3-approx-s$seed.json"
    [ -f "$f" ] || "$bin" --threads 1 --model "$model" --epochs "$epochs" --seed "$seed" --lut "$out/mitchell3.bin" --quiet --json "$f" >/dev/null
    for m in 'mitchell<7>' 'lut<exact,4>'; do
      f="$out/$model-$(echo "$m" | tr -d '<>,')-exactbwd-s$seed.json"
      [ -f "$f" ] || "$bin" --threads 1 --model "$model" --epochs "$epochs" --seed "$seed" --multiplier "$m" --backward exact --quiet \
        --json "$f" >/dev/null
    done
    f="$out/$model-mitchell3-exactbwd-s$seed.json"
    [ -f "$f" ] || "$bin" --threads 1 --model "$model" --epochs "$epochs" --seed "$seed" --lut "$out/mitchell3.bin" --backward exact \
      --quiet --json "$f" >/dev/null
  done
done
/usr/bin/python3 "$root/scripts/training-summary.py" "$out"
