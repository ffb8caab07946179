"""What a new user gets from `siameseim pretrain --budget-minutes N` on their own folder.

For each seed: the real CLI in a subprocess, exactly as documented —
    siameseim pretrain --data ROOT --budget-minutes N --seed S --output RUN [--config C]
    siameseim evaluate --checkpoint RUN/encoder.keras --data ROOT --protocol knn,linear
    siameseim evaluate --checkpoint RUN/encoder.keras --random-init --seed S ...
and once the raw-pixel baseline. ROOT holds train/ and test/ (pretraining reads train/
only). Results (top-1 %, wall times) go to a JSON file. ``--method mae`` trains the same
encoder with MAE for the same budget (the quality comparison, docs/quality.md). An
existing ``--output`` is extended: seeds already in it are kept, not re-run, so a sweep
can be continued seed by seed.

Command (docs/small_scale.md, "the user's path"):
    python benchmarks/real_collections.py digits /tmp/digits
    python benchmarks/user_budget.py --data /tmp/digits --budget-minutes 10 --seeds 0,1 \\
        --output benchmarks/results_user_budget_digits.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def cli(*argv: str) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "siameseim_tf.cli", *argv], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"siameseim {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - start


def evaluate(run_dir: str, data: str, extra: list[str], protocols: str) -> dict:
    out = os.path.join(run_dir, f"eval_{abs(hash(tuple(extra))) % 10**8}.json")
    argv = ["evaluate", "--data", data, "--protocol", protocols, "--output", out, "--quiet"]
    cli(*argv, "--no-cache", *extra)
    results = json.load(open(out))
    return {p: round(100 * results[p]["top1"], 2) for p in protocols.split(",")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget-minutes", type=float, default=10)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--config", default=None, help="default: the automatic recipe")
    parser.add_argument("--method", choices=("siameseim", "mae"), default="siameseim")
    parser.add_argument(
        "--no-random-init", action="store_true", help="skip the random-init baseline"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--protocols", default="linear,knn")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--output", default="user_budget.json")
    args = parser.parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="user_budget_")
    previous = json.load(open(args.output)) if os.path.exists(args.output) else {}
    if previous and (previous["method"], previous["budget_minutes"]) != (
        args.method,
        args.budget_minutes,
    ):
        raise SystemExit(f"{args.output} holds another method or budget; use another --output")
    rows = list(previous.get("runs", []))
    done = {row["seed"] for row in rows}
    for seed in map(int, args.seeds.split(",")):
        if seed in done:
            continue
        run_dir = os.path.join(work, f"{args.method}_seed{seed}")
        argv = ["pretrain", "--data", args.data, "--output", run_dir, "--method", args.method]
        argv += ["--budget-minutes", str(args.budget_minutes), "--seed", str(seed)]
        argv += ["--config", args.config] if args.config else []
        for item in args.overrides:
            argv += ["--set", item]
        log, seconds = cli(*argv)
        with open(os.path.join(run_dir, "stdout.txt"), "w") as handle:
            handle.write(log)
        encoder = os.path.join(run_dir, "encoder.keras")
        decided = json.load(open(os.path.join(run_dir, "run_length.json")))
        row = {
            "seed": seed,
            "pretrain_wall_seconds": round(seconds, 1),
            "steps": decided["total_steps"],
            "pretrained": evaluate(run_dir, args.data, ["--checkpoint", encoder], args.protocols),
        }
        if not args.no_random_init:
            random_init = ["--checkpoint", encoder, "--random-init", "--seed", str(seed)]
            row["random_init"] = evaluate(run_dir, args.data, random_init, args.protocols)
        print(json.dumps(row), flush=True)
        rows.append(row)
        save(args, rows, previous.get("raw_pixels"), previous.get("command"))
    pixels = previous.get("raw_pixels") or evaluate(
        work, args.data, ["--raw-pixels", "--image-size", "28"], args.protocols
    )
    result = save(args, rows, pixels, previous.get("command"))
    print(json.dumps(result["summary"]), json.dumps(pixels))
    return 0


def save(args, rows: list, pixels: dict | None, first_command: str | None) -> dict:
    """Writes the runs so far with mean ± sd per baseline; returns the JSON written."""
    summary = {}
    for key in ("pretrained", "random_init"):
        if not all(key in r for r in rows):
            continue
        summary[key] = {
            p: {
                "mean": round(statistics.mean(r[key][p] for r in rows), 2),
                "sd": round(statistics.stdev(r[key][p] for r in rows), 2) if len(rows) > 1 else 0,
            }
            for p in args.protocols.split(",")
        }
    command = "python benchmarks/user_budget.py " + " ".join(sys.argv[1:])
    result = {
        "command": command if first_command in (None, command) else f"{first_command}; {command}",
        "data": args.data,
        "method": args.method,
        "budget_minutes": args.budget_minutes,
        "runs": rows,
        "raw_pixels": pixels,
        "summary": summary,
    }
    with open(args.output + ".tmp", "w") as handle:
        json.dump(result, handle, indent=2)
    os.replace(args.output + ".tmp", args.output)
    return result


if __name__ == "__main__":
    sys.exit(main())
