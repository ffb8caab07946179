"""docs/small_scale.md's ablation tables from benchmarks/results_small_scale.jsonl: every
(variant, steps) with its seeds' linear / k-NN on the validation split, and the mean.

Command: python benchmarks/small_scale_table.py [benchmarks/results_small_scale.jsonl]
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

ROWS = [  # (hypothesis, variant, what it changes)
    ("run length", "base", "the recipe, 300 steps"),
    ("run length", "base", "the recipe, 1 200 steps"),
    ("momentum", "m0.99", "m0 0.99 instead of 0.995"),
    ("UniGrad negative weight", "neg0.1", "0.1 instead of 0.02"),
    ("learning rate", "lr3e-3", "base lr 3e-3 instead of 1e-3"),
    ("(reference, equal time)", "base-5min", "the recipe"),
    ("token grid", "patch4-5min", "patch 4 (7 x 7 tokens, M 29)"),
    ("batch size", "batch128-5min", "128 (lr scaled)"),
    ("crop scale", "crop0.08-5min", "crop_min 0.08 (paper) instead of 0.3"),
    (
        "colour augmentation on grey images",
        "grey-1009",
        "no colour jitter / grey / blur / solarise",
    ),
    ("decoder size", "decoder-large-5min", "D 256, 8 heads, predictor 4 blocks"),
    ("encoder size", "encoder-depth2-5min", "2 blocks instead of 4"),
]


def cell(values: list[float]) -> str:
    shown = ", ".join(f"{v:.1f}" for v in values)
    return shown + (f" (mean {statistics.mean(values):.1f})" if len(values) > 1 else "")


def main(path: str = "benchmarks/results_small_scale.jsonl") -> int:
    runs = defaultdict(list)
    for line in open(path):
        row = json.loads(line)
        runs[(row["variant"], row["steps"])].append(row)
    print("| hypothesis | variant | steps | seeds | linear | k-NN | random init linear / k-NN |")
    print("|---|---|---|---|---|---|---|")
    for hypothesis, variant, what in ROWS:
        for (name, steps), rows in sorted(runs.items(), key=lambda item: item[0][1]):
            if name != variant or (
                variant == "base" and f"{steps:,}".replace(",", " ") not in what
            ):
                continue
            rows = sorted(rows, key=lambda r: r["seed"])
            randoms = [r["random_init"] for r in rows if "random_init" in r]
            random_cell = "; ".join(f"{r['linear']:.1f} / {r['knn']:.1f}" for r in randoms)
            print(
                f"| {hypothesis} | {what} | {steps} | {', '.join(str(r['seed']) for r in rows)} | "
                f"{cell([r['pretrained']['linear'] for r in rows])} | "
                f"{cell([r['pretrained']['knn'] for r in rows])} | {random_cell or 'as base'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
