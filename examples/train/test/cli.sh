#!/usr/bin/env bash
# tpp_train's command line: every kind of bad input is one line on stderr and exit code 2; --list; a short
# run on Fashion-MNIST (when Debian's dataset-fashion-mnist is installed) writes the JSON of DESIGN.md 3c
# and an SVG, and the same seed and threads give the same numbers (all but the timings).
# Usage: cli.sh path/to/tpp_train
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect_error() {  # expect_error "what stderr must contain" args...
  local want=$1; shift
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne 2 ] || ! grep -qF -- "$want" "$tmp/err" || [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    echo "FAIL: tpp_train $* -> exit $rc, stderr: $(cat "$tmp/err") (want exit 2 and one line with '$want')"
    fail=1
  fi
}
expect_error "unknown multiplier 'foo' (registered: " --multiplier foo
expect_error "exact" --multiplier foo                       # the list names the valid ones
expect_error "--epochs takes a number" --epochs 0
expect_error "--epochs takes a number" --epochs 3x
expect_error "--lr takes a number" --lr nan
expect_error "--batch takes a number" --batch -5
expect_error "--model takes one of lenet5, lenet300" --model resnet
expect_error "unknown flag '--frobnicate'" --frobnicate 1
expect_error "--json needs a value" --json
expect_error "give only one of --multiplier, --lut and --compare" --multiplier exact --compare exact,mitchell\<7\>
expect_error "--format takes fp32, bf16, fixed<IL,FL> or binary, not 'fp16'" --format fp16
expect_error "--format takes fp32, bf16, fixed<IL,FL> or binary, not 'fixed<0,8>' (IL counts the sign bit" --format 'fixed<0,8>'
expect_error "(IL + FL is at most 32)" --format 'fixed<20,13>'
expect_error "--format takes fp32, bf16, fixed<IL,FL> or binary, not 'fixed<16>'" --format 'fixed<16>'
expect_error "--rounding takes one of nearest, stochastic, not 'up'" --rounding up
expect_error "--rounding stochastic needs a --format that rounds" --rounding stochastic
expect_error "--rounding stochastic needs a --format that rounds (bf16 or fixed<IL,FL>), not binary" --format binary --rounding stochastic
expect_error "cannot be opened" --lut "$tmp/missing.bin"
printf 'abc' >"$tmp/bad.bin"
expect_error "has 3 bytes" --lut "$tmp/bad.bin"
mkdir -p "$tmp/empty"
expect_error "$tmp/empty/train-images-idx3-ubyte" --data "$tmp/empty"
"$bin" --list >"$tmp/list" || { echo "FAIL: --list"; fail=1; }
grep -qx 'exact' "$tmp/list" || { echo "FAIL: --list lacks exact"; fail=1; }

data=/usr/share/datasets/fashion-mnist
if [ -f "$data/train-images-idx3-ubyte.gz" ]; then
  run() { "$bin" --limit 640 --epochs 2 --batch 32 --threads 2 --seed 7 --quiet "$@"; }
  run --json "$tmp/a.json" --plot "$tmp/a.svg" >"$tmp/a.txt" || { echo "FAIL: run a"; fail=1; }
  run --json "$tmp/b.json" >/dev/null || { echo "FAIL: run b"; fail=1; }
  strip() { sed -E 's/"(seconds|images_per_second)": [0-9.e+-]+/"\1": T/g' "$1"; }
  [ "$(strip "$tmp/a.json")" = "$(strip "$tmp/b.json")" ] || { echo "FAIL: same seed, different numbers"; fail=1; }
  for key in '"model": "lenet5"' '"multiplier": "exact"' '"format": "fp32"' '"rounding": "nearest"' '"test_accuracy": ' '"epochs": [{"epoch": 1, "train_loss": '; do
    grep -qF "$key" "$tmp/a.json" || { echo "FAIL: JSON lacks $key"; fail=1; }
  done
  grep -q '</svg>' "$tmp/a.svg" || { echo "FAIL: no SVG"; fail=1; }
  # a low-precision format: named in the header line and the JSON, reproducible from the seed
  fx() { "$bin" --limit 320 --epochs 1 --batch 32 --threads 2 --seed 3 --quiet --format 'fixed<16,8>' --rounding stochastic "$@"; }
  fx --json "$tmp/f.json" >"$tmp/f.txt" || { echo "FAIL: --format run"; fail=1; }
  fx --json "$tmp/g.json" >/dev/null || { echo "FAIL: --format run 2"; fail=1; }
  grep -qF 'format fixed<16,8>, rounding stochastic' "$tmp/f.txt" || { echo "FAIL: header: $(cat "$tmp/f.txt")"; fail=1; }
  grep -qF '"format": "fixed<16,8>", "rounding": "stochastic"' "$tmp/f.json" || { echo "FAIL: --format JSON: $(cat "$tmp/f.json")"; fail=1; }
  [ "$(strip "$tmp/f.json")" = "$(strip "$tmp/g.json")" ] || { echo "FAIL: --format: same seed, different numbers"; fail=1; }
  # a table written from a registered model, read back as --lut
  amsim=$(dirname "$bin")/../tpp_amsim_table
  if [ -x "$amsim" ]; then
    "$amsim" 'mitchell<7>' 7 "$tmp/mit7.bin" >/dev/null || { echo "FAIL: tpp_amsim_table"; fail=1; }
    "$bin" --limit 320 --epochs 1 --batch 32 --quiet --lut "$tmp/mit7.bin" --json "$tmp/l.json" >/dev/null ||
      { echo "FAIL: --lut run"; fail=1; }
    grep -qF '"multiplier": "amsim:mit7.bin"' "$tmp/l.json" || { echo "FAIL: --lut JSON: $(cat "$tmp/l.json")"; fail=1; }
  fi
else
  echo "note: $data not installed: the training runs were skipped"
fi
[ $fail -eq 0 ] && echo "tpp_train command line: all checks passed"
exit $fail
