"""Start-up cost of the whole-step XLA compile, with and without TensorFlow's persistent
XLA cache (``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR``).

Each run is a fresh process: build train_step.py's Keras step (ViT-Tiny/16 SiameseIM,
224 px, batch 32, float32, whole-step XLA), time the first call (trace + compile + run)
and the second. Runs: no cache; cache empty (the process writes it); cache filled (a
restart reads it). JSON out.

    ONEDNN_MAX_CPU_ISA=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2 python benchmarks/first_step.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.step_env import capped_env, emit  # noqa: E402


def child() -> None:
    start = time.perf_counter()
    from benchmarks.train_step import keras_step, model_arguments

    step = keras_step(model_arguments("tiny", 224), 32, True, "float32")
    built = time.perf_counter()
    step()
    first = time.perf_counter()
    step()
    second = time.perf_counter()
    times = {
        "build_s": built - start,
        "first_step_s": first - built,
        "second_step_s": second - first,
    }
    print(json.dumps({k: round(v, 2) for k, v in times.items()}))


def run(cache: str | None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if cache:
        flag = f"--tf_xla_persistent_cache_directory={cache}"
        env["TF_XLA_FLAGS"] = f"{env.get('TF_XLA_FLAGS', '')} {flag}".strip()
    done = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child()
    with tempfile.TemporaryDirectory() as cache:
        runs = {"no_cache": run(None), "cache_empty": run(cache), "cache_filled": run(cache)}
        cache_bytes = sum(p.stat().st_size for p in Path(cache).iterdir())
    report = {
        "what": "ViT-Tiny/16 SiameseIM train step, 224 px, batch 32, float32, whole-step XLA",
        "env": capped_env(),
        "runs": runs,
        "cache_megabytes": round(cache_bytes / 2**20, 1),
    }
    emit(report, args.output)


if __name__ == "__main__":
    main()
