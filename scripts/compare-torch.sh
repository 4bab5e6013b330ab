#!/usr/bin/env bash
# tpp_train (exact multiplier) against PyTorch (bench/torch_train.py): the same model, data, schedule, seed and
# thread count, run alternately (tpp, torch, tpp, torch, ...) so that machine noise hits both sides alike.
#
#   scripts/compare-torch.sh [--epochs E] [--model lenet5|lenet300] [--threads "1 2"] [--batch B] [--lr L]
#                            [--seed S] [--optimizer sgd|adam] [--rounds R] [--torch-linear blas|onednn] [--no-build]
#
# Per thread count it prints model, threads, the images/s of each side (the median over every epoch of every
# round), their ratio (tpp / torch) and each side's final test accuracy (the median over rounds), and writes
# everything, every run's epochs included, to results/compare-torch.json.
# tpp_train is built if needed (build/release, target tpp_train only); --no-build uses the binary as it is, and
# TPP_TRAIN=path uses another binary. Needs Debian's /usr/bin/python3 with python3-torch.
# --torch-linear onednn runs PyTorch's fully connected layers on oneDNN instead of the system BLAS (Debian's torch
# uses libblas.so.3, the netlib reference unless an optimised one is installed): see bench/torch_train.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=/usr/bin/python3

usage() { sed -n '5,6p' "$0" | sed 's/^# *//'; exit 0; }
die() { echo "compare-torch: $*" >&2; exit 2; }

epochs=3 model=lenet5 threads="1 2" batch=64 lr="" seed=1 optimizer=sgd rounds=2 torch_linear=blas build=1
while (($#)); do
  case $1 in
    --epochs|--model|--threads|--batch|--lr|--seed|--optimizer|--rounds)
      (($# >= 2)) || die "$1 needs a value"
      declare "${1#--}=$2"; shift 2 ;;
    --torch-linear) (($# >= 2)) || die "$1 needs a value"; torch_linear=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (scripts/compare-torch.sh --help lists them)" ;;
  esac
done
positive='^[1-9][0-9]*$'
[[ $epochs =~ $positive ]] || die "--epochs must be a positive integer, got '$epochs'"
[[ $batch =~ $positive ]] || die "--batch must be a positive integer, got '$batch'"
[[ $rounds =~ $positive ]] || die "--rounds must be a positive integer, got '$rounds'"
[[ $seed =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$seed'"
[[ $model == lenet5 || $model == lenet300 ]] || die "--model must be lenet5 or lenet300, got '$model'"
[[ $optimizer == sgd || $optimizer == adam ]] || die "--optimizer must be sgd or adam, got '$optimizer'"
[[ $torch_linear == blas || $torch_linear == onednn ]] \
  || die "--torch-linear must be blas or onednn, got '$torch_linear'"
[[ -z $lr || $lr =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || die "--lr must be a positive number, got '$lr'"
read -ra thread_list <<< "$threads"
((${#thread_list[@]})) || die "--threads needs at least one thread count"
for t in "${thread_list[@]}"; do [[ $t =~ $positive ]] || die "--threads: '$t' is not a positive integer"; done

[[ -x $python ]] && "$python" -c 'import torch, numpy' 2> /dev/null \
  || die "$python cannot import torch and numpy (Debian: apt-get install python3-torch python3-numpy)"

build_dir=$root/build/release
tpp_train=${TPP_TRAIN:-$build_dir/examples/train/tpp_train}
if [[ -z ${TPP_TRAIN:-} ]] && ((build)); then
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTPP_BUILD_TESTS=OFF -DTPP_BUILD_BENCH=OFF \
      > /dev/null
  fi
  cmake --build "$build_dir" -j "${TPP_BUILD_JOBS:-$(nproc)}" --target tpp_train > /dev/null \
    || die "building tpp_train failed (cmake --build $build_dir --target tpp_train shows why)"
fi
[[ -x $tpp_train ]] || die "$tpp_train is not an executable (build it, or set TPP_TRAIN)"

runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
common=(--model "$model" --epochs "$epochs" --batch "$batch" --seed "$seed" --optimizer "$optimizer")
[[ -n $lr ]] && common+=(--lr "$lr")

for t in "${thread_list[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    echo "== $model, $t thread(s), round $r/$rounds: tpp_train" >&2
    "$tpp_train" "${common[@]}" --multiplier exact --threads "$t" --json "$runs/tpp-$t-$r.json" >&2 \
      || die "tpp_train failed ($model, $t thread(s), round $r)"
    echo "== $model, $t thread(s), round $r/$rounds: torch" >&2
    "$python" "$root/bench/torch_train.py" "${common[@]}" --threads "$t" --linear "$torch_linear" \
      --json "$runs/torch-$t-$r.json" >&2 \
      || die "bench/torch_train.py failed ($model, $t thread(s), round $r)"
  done
done

mkdir -p "$root/results"
"$python" - "$runs" "$root/results/compare-torch.json" "$model" "$epochs" "$batch" "${lr:-default}" "$seed" \
  "$optimizer" "$rounds" "$torch_linear" "${thread_list[@]}" << 'EOF'
import json, os, statistics, sys
import torch
runs, out, model, epochs, batch, lr, seed, optimizer, rounds, torch_linear, *threads = sys.argv[1:]
rounds = int(rounds)
rows = []
print(f"{'model':<9} {'threads':>7} {'tpp img/s':>10} {'torch img/s':>11} {'ratio':>6} {'tpp acc':>8} {'torch acc':>9}")
for t in threads:
    row = {"threads": int(t)}
    for side in ("tpp", "torch"):
        docs = [json.load(open(os.path.join(runs, f"{side}-{t}-{r}.json"))) for r in range(1, rounds + 1)]
        row[side] = {
            "images_per_second": statistics.median(e["images_per_second"] for d in docs for e in d["epochs"]),
            "test_accuracy": statistics.median(d["test_accuracy"] for d in docs),
            "runs": docs,
        }
    row["ratio"] = row["tpp"]["images_per_second"] / row["torch"]["images_per_second"]
    rows.append(row)
    print(f"{model:<9} {t:>7} {row['tpp']['images_per_second']:>10.0f} {row['torch']['images_per_second']:>11.0f} "
          f"{row['ratio']:>6.2f} {row['tpp']['test_accuracy']:>8.4f} {row['torch']['test_accuracy']:>9.4f}")
with open(out, "w") as f:
    json.dump({"model": model, "epochs": int(epochs), "batch": int(batch), "lr": lr, "seed": int(seed),
               "optimizer": optimizer, "rounds": rounds, "torch_version": torch.__version__,
               "torch_linear": torch_linear,
               "images_per_second": "median over every epoch of every round",
               "test_accuracy": "median over rounds of the final epoch's", "rows": rows}, f, indent=2)
    f.write("\n")
print(f"wrote {out}")
EOF
