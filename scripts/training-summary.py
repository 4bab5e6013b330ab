#!/usr/bin/python3
"""Summarises tpp_train JSON files (scripts/training-results.sh) as the Markdown tables of docs/training.md:
per model, multiplier and backward mode, the final test accuracy over the seeds (mean, and the spread as
min..max), the final training loss, and seconds per epoch relative to exact. Usage: training-summary.py DIR"""
import glob
import json
import os
import statistics
import sys

runs = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    with open(path) as f:
        r = json.load(f)
    key = (r["model"], r["multiplier"], r["backward"])
    runs.setdefault(key, []).append(r)

for model in ("lenet5", "lenet300"):
    rows = [(k, v) for k, v in runs.items() if k[0] == model]
    if not rows:
        continue
    base = [r for (k, v) in rows if k[1] == "exact" for r in v]
    base_s = statistics.mean(e["seconds"] for r in base for e in r["epochs"]) if base else None
    epochs = len(rows[0][1][0]["epochs"])
    print(f"\n### {model}, {epochs} epochs\n")
    print("| multiplier | backward | seeds | test accuracy (mean) | min..max | final train loss | s/epoch | vs exact |")
    print("|---|---|---|---|---|---|---|---|")
    order = ["exact", "bf16_rz", "bf16_rne", "mitchell<7>", "mbm<7>", "drum<6>", "lut<exact,4>", "amsim:mitchell3.bin"]
    rows.sort(key=lambda kv: (order.index(kv[0][1]) if kv[0][1] in order else 99, kv[0][2] != "approx"))
    for (m, name, bwd), v in rows:
        acc = [100 * r["test_accuracy"] for r in v]
        loss = statistics.mean(r["epochs"][-1]["train_loss"] for r in v)
        sec = statistics.mean(e["seconds"] for r in v for e in r["epochs"])
        rel = f"{sec / base_s:.1f}x" if base_s else "-"
        print(f"| {name} | {bwd} | {len(v)} | {statistics.mean(acc):.2f}% | {min(acc):.2f}..{max(acc):.2f} | "
              f"{loss:.4f} | {sec:.1f} | {rel} |")
