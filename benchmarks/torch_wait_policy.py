"""Does the PyTorch baseline's OpenMP wait policy change its step? Until 2026-12-07
train_step.py ran the authors' step with ``OMP_WAIT_POLICY=PASSIVE`` (against spinning
threads beside another job); their code runs with the variable unset, as the baseline now
does. Two PyTorch workers, one each way, alive together and stepped in turn (only one
computes at a time, as in train_step.py's rounds); JSON out.

    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/torch_wait_policy.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.step_env import capped_env, emit  # noqa: E402
from benchmarks.train_step import TorchWorker  # noqa: E402


def policies(base: dict) -> dict[str, dict]:
    """The two environments compared: PASSIVE (the former baseline's) and unset (the
    default, the baseline's now)."""
    unset = {k: v for k, v in base.items() if k != "OMP_WAIT_POLICY"}
    return {"PASSIVE": dict(unset, OMP_WAIT_POLICY="PASSIVE"), "unset": unset}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    workers = {
        name: TorchWorker(args.preset, args, "torch", base_env=env)
        for name, env in policies(dict(os.environ)).items()
    }
    seconds = {name: [] for name in workers}
    for r in range(args.rounds):
        for name, worker in workers.items():
            seconds[name].append(worker(args.steps))
            print(f"round {r + 1} [{name}] {seconds[name][-1]:.3f} s/step", file=sys.stderr)
    for worker in workers.values():
        worker.close()
    passive = statistics.median(seconds["PASSIVE"])
    report = {
        "what": f"the authors' PyTorch step ({args.preset}, {args.image_size} px, batch "
        f"{args.batch_size}, float32) by OMP_WAIT_POLICY",
        "env": capped_env(),
        "policies": {
            name: {
                "step_seconds_per_round": [round(s, 3) for s in values],
                "median_step_seconds": round(statistics.median(values), 3),
                "speed_vs_passive": round(passive / statistics.median(values), 3),
            }
            for name, values in seconds.items()
        },
    }
    emit(report, args.output)


if __name__ == "__main__":
    main()
