"""Train-step time under settings read once at process start (XLA flags, thread pools).

Each variant is an environment change (``NAME=VALUE ...``; ``XLA_FLAGS`` values are
appended to the current ones). Every variant runs in its own process, round-robin over
``--rounds``, so load drift hits them alike; the step is train_step.py's Keras step
(ViT-Tiny/16 SiameseIM, 224 px, batch 32, AdamW + clipping, ``--precision``). JSON out: per
variant the per-round medians, their median, and the speed against the first variant.

    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2 \\
    python benchmarks/step_env.py --rounds 3 \\
        --variant "" \\
        --variant "XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=+reduce" \\
        --variant "TF_NUM_INTRAOP_THREADS=3"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def variant_env(variant: str, base: dict) -> dict:
    """``base`` with the variant's ``NAME=VALUE`` pairs; XLA_FLAGS are appended."""
    env = dict(base)
    for pair in variant.split():
        name, _, value = pair.partition("=")
        if name == "XLA_FLAGS":
            value = f"{env.get('XLA_FLAGS', '')} {value}".strip()
        env[name] = value
    return env


def measure(jit_compile: bool, steps: int, precision: str) -> None:
    """Child process: prints the median step seconds of ``steps`` warm steps as JSON."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import elementwise_bound
    from benchmarks.train_step import keras_step, model_arguments

    if os.environ.get(elementwise_bound.ENV):
        elementwise_bound.patch()  # a bound, not the method: see elementwise_bound.py

    step = keras_step(model_arguments("tiny", 224), 32, jit_compile, precision)
    step(), step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"median_step_seconds": statistics.median(times)}))


def emit(report: dict, output: str | None) -> None:
    """Prints the JSON report and writes it to ``output`` if given."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        Path(output).write_text(text + "\n")


def capped_env() -> dict:
    """The ISA caps of this run (the emulated CPU), for the report."""
    return {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "XLA_FLAGS") if k in os.environ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=None, help='"NAME=VALUE ..."')
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--graph", action="store_true", help="graph mode instead of XLA")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return measure(not args.graph, args.steps, args.precision)
    variants = args.variant or [""]
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    rounds = {v: [] for v in variants}
    command = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
    command += ["--precision", args.precision]
    command += ["--graph"] if args.graph else []
    for r in range(args.rounds):
        for v in variants:
            out = subprocess.run(
                command, env=variant_env(v, base), capture_output=True, text=True, check=True
            ).stdout
            seconds = json.loads(out.strip().splitlines()[-1])["median_step_seconds"]
            rounds[v].append(seconds)
            print(f"round {r + 1} [{v or 'baseline'}] {seconds:.3f} s/step", file=sys.stderr)
    first = statistics.median(rounds[variants[0]])
    report = {
        "what": f"ViT-Tiny/16 SiameseIM train step, 224 px, batch 32, {args.precision}, "
        + ("graph mode" if args.graph else "whole-step XLA"),
        "env": capped_env(),
        "variants": [
            {
                "variant": v or "baseline",
                "step_seconds_per_round": [round(s, 3) for s in rounds[v]],
                "median_step_seconds": round(statistics.median(rounds[v]), 3),
                "speed_vs_first": round(first / statistics.median(rounds[v]), 3),
            }
            for v in variants
        ],
    }
    emit(report, args.output)


if __name__ == "__main__":
    main()
