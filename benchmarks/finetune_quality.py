"""Fine-tuning and the paper's linear probe: a pretrained encoder vs the same architecture
from random init (issue 12).

For each (seed, config, init): the real CLI in a subprocess, as documented —
    siameseim finetune --checkpoint ENC --data ROOT --config C --steps N --seed S --output RUN
    siameseim finetune ... --random-init
ROOT holds train/ and test/ class folders; top-1 is on test/. Rows (top-1 %, wall time,
training images/s after compilation) are appended to ``--output`` (JSON lines), so a sweep
keeps what it measured. Compare with the linear probe of the same encoders in
benchmarks/results_user_budget_*.json (docs/finetune.md).

Command (docs/finetune.md):
    python benchmarks/finetune_quality.py --data /tmp/digits \\
        --encoder /tmp/ub_digits/seed0/encoder.keras --seeds 0,1 --steps 600 \\
        --configs finetune_cpu,linprobe_cpu \\
        --output benchmarks/results_finetune.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def finetune(encoder: str, data: str, config: str, steps: int, seed: int, random_init: bool):
    with tempfile.TemporaryDirectory() as run:
        argv = ["finetune", "--checkpoint", encoder, "--data", data, "--config", config]
        argv += ["--steps", str(steps), "--seed", str(seed), "--output", run]
        argv += ["--random-init"] if random_init else []
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "siameseim_tf.cli", *argv], capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"siameseim {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
        metrics = json.loads(open(f"{run}/metrics.json").read())
    return dict(
        top1=round(100 * metrics["top1"], 2),
        seconds=round(seconds, 1),
        images_per_second=round(metrics["train_images_per_second"] or 0.0, 1),
        train_loss_last=metrics["train_loss"][-1] if metrics["train_loss"] else None,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--encoder", required=True, help="encoder.keras of a pretraining run")
    parser.add_argument("--configs", default="finetune_cpu,linprobe_cpu", help="comma list")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--inits", default="pretrained,random", help="comma list")
    parser.add_argument("--output", default="finetune.jsonl")
    args = parser.parse_args(argv)
    for seed in (int(s) for s in args.seeds.split(",")):
        for config in args.configs.split(","):
            for random_init in [init == "random" for init in args.inits.split(",")]:
                result = finetune(args.encoder, args.data, config, args.steps, seed, random_init)
                row = dict(
                    data=args.data,
                    encoder=args.encoder,
                    init="random" if random_init else "pretrained",
                    config=config,
                    steps=args.steps,
                    seed=seed,
                    **result,
                )
                print(json.dumps(row), flush=True)
                with open(args.output, "a") as out:
                    out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
