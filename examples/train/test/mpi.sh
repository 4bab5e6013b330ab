#!/usr/bin/env bash
# Data parallelism: 2 MPI ranks x half a batch train the same network as 1 process x the whole batch. The
# gradients are the same sums in another order (per-rank partial sums, then MPI_Allreduce), so after 100
# SGD steps the numbers agree to fp32 rounding amplified by training: the loss within 1e-3 relative, the
# test accuracy within 0.5 points (50 of 10000 images).
# Usage: mpi.sh path/to/tpp_train path/to/mpiexec
set -uo pipefail
bin=$1 mpiexec=$2
data=/usr/share/datasets/fashion-mnist
[ -f "$data/train-images-idx3-ubyte.gz" ] || { echo "note: $data not installed: skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
args=(--limit 6400 --epochs 1 --batch 64 --lr 0.05 --threads 1 --seed 3 --quiet)
"$bin" "${args[@]}" --json "$tmp/one.json" >/dev/null || { echo "FAIL: 1 process"; exit 1; }
"$mpiexec" -np 2 --oversubscribe --bind-to none "$bin" "${args[@]}" --json "$tmp/two.json" >"$tmp/two.txt" 2>&1 ||
  { echo "FAIL: mpirun -np 2"; cat "$tmp/two.txt"; exit 1; }
grep -q "2 MPI ranks" "$tmp/two.txt" || { echo "FAIL: the run did not see 2 ranks"; cat "$tmp/two.txt"; exit 1; }
/usr/bin/python3 - "$tmp/one.json" "$tmp/two.json" <<'PY'
import json, sys
one, two = (json.load(open(f)) for f in sys.argv[1:3])
l1, l2 = one["epochs"][0]["train_loss"], two["epochs"][0]["train_loss"]
a1, a2 = one["test_accuracy"], two["test_accuracy"]
print(f"1 rank: loss {l1:.6f} accuracy {a1:.4f}; 2 ranks: loss {l2:.6f} accuracy {a2:.4f}")
ok = abs(l1 - l2) <= 1e-3 * abs(l1) and abs(a1 - a2) <= 0.005 and l1 != 0
sys.exit(0 if ok else 1)
PY
