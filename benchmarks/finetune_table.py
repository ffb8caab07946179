"""docs/finetune.md's table from benchmarks/results_finetune.jsonl: test top-1 per
(collection, protocol, init) over seeds, mean ± sd, and the training images/s.

Command: python benchmarks/finetune_table.py [benchmarks/results_finetune.jsonl]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict


def main(path: str = "benchmarks/results_finetune.jsonl") -> int:
    groups = defaultdict(list)
    for line in open(path):
        row = json.loads(line)
        groups[(os.path.basename(row["data"]), row["config"], row["init"])].append(row)
    print("| collection | recipe | init | seeds | test top-1 (mean ± sd) | train images/s |")
    print("|---|---|---|---|---|---|")
    for (data, config, init), rows in sorted(groups.items()):
        top1 = [r["top1"] for r in rows]
        spread = f" ± {statistics.stdev(top1):.1f}" if len(top1) > 1 else ""
        rate = statistics.median(r["images_per_second"] for r in rows)
        seeds = ", ".join(str(r["seed"]) for r in rows)
        values = ", ".join(f"{v:.1f}" for v in top1)
        print(
            f"| {data} | {config} | {init} | {seeds} | {statistics.mean(top1):.1f}{spread} "
            f"({values}) | {rate:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
