"""docs/quality.md's table from benchmarks/user_budget.py results (one JSON per method
and collection): mean ± sd over seeds for SiameseIM, MAE, random init and raw pixels.

Command (after the runs listed in docs/quality.md):
    B=benchmarks
    python $B/quality_table.py \\
        "Fashion-MNIST 10k=$B/results_user_budget_fm10k.json,$B/results_quality_mae_fm10k.json" \\
        "digits=$B/results_user_budget_digits.json,$B/results_quality_mae_digits.json"
"""

from __future__ import annotations

import json
import statistics
import sys

NAMES = {"siameseim": "SiameseIM", "mae": "MAE"}


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def rows_for(collection: str, files: list[str]) -> list[str]:
    rows, baselines = [], None
    for path in files:
        result = json.load(open(path))
        runs = result["runs"]
        steps = sorted(r["steps"] for r in runs)
        rows.append(
            f"| {collection} | {NAMES[result['method']]} | {len(runs)} | "
            f"{cell([r['pretrained']['linear'] for r in runs])} | "
            f"{cell([r['pretrained']['knn'] for r in runs])} | {steps[0]}-{steps[-1]} |"
        )
        if all("random_init" in r for r in runs):
            baselines = (runs, result["raw_pixels"])
    if baselines:
        runs, pixels = baselines
        rows.append(
            f"| {collection} | random init | {len(runs)} | "
            f"{cell([r['random_init']['linear'] for r in runs])} | "
            f"{cell([r['random_init']['knn'] for r in runs])} | 0 |"
        )
        rows.append(
            f"| {collection} | raw pixels | - | {pixels['linear']:.1f} | {pixels['knn']:.1f} | - |"
        )
    return rows


def main(argv: list[str]) -> int:
    print("| collection | features | seeds | linear probe | k-NN (k 20) | steps in 10 min |")
    print("|---|---|---|---|---|---|")
    for item in argv:
        collection, files = item.split("=", 1)
        print("\n".join(rows_for(collection, files.split(","))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
