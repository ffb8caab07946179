"""Matmul GFLOP/s of TensorFlow (graph mode, oneDNN) and PyTorch on this CPU, per dtype.

Says whether a train-step ratio against the PyTorch reference comes from the GEMM kernels
or from the rest of the step. "torch_intel_mkl" is PyTorch with MKL's Intel code path
(benchmarks/intel_mkl.py; the same as "torch" on Intel CPUs), "torch_amd_mkl" with the path MKL
takes on AMD CPUs (its generic one). Each library runs in its own
process (their thread pools would fight in one), on all cores, one after the other; the
shapes are a square and the two MLP matmuls of ViT-Tiny on a batch of 32 x 197 tokens.

    python benchmarks/matmul_peaks.py --output benchmarks/results_matmul_peaks_zen5_epyc.json
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.intel_mkl import baseline_vendor, mkl_code_path, torch_env  # noqa: E402
from siameseim_tf.hardware import onednn_capped_below_native_bf16, onednn_isa_cap  # noqa: E402

SHAPES = ((2048, 2048, 2048), (6304, 192, 768), (6304, 768, 192))
DTYPES = ("float32", "bfloat16")
LIBRARIES = ("tensorflow", "torch", "torch_intel_mkl", "torch_amd_mkl")
CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "XLA_FLAGS")


def gflops(m: int, k: int, n: int, seconds: float) -> float:
    """Throughput of one [m, k] x [k, n] matmul that took ``seconds``."""
    return 2 * m * k * n / seconds / 1e9


def measure(library: str, repeats: int, dtypes: list[str]) -> dict:
    """{"dtype m x k x n": median GFLOP/s} for every dtype and shape, in this process."""
    if library.startswith("torch"):
        import torch

        torch.set_num_threads(os.cpu_count())

        def operands(m, k, n, dtype):
            return torch.randn(m, k, dtype=getattr(torch, dtype)), torch.randn(
                k, n, dtype=getattr(torch, dtype)
            )

        def run(a, b):
            return a @ b

        def finish(out):
            return out
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        def operands(m, k, n, dtype):
            return tuple(tf.cast(tf.random.normal(s), dtype) for s in ((m, k), (k, n)))

        run = tf.function(lambda a, b: tf.matmul(a, b))

        def finish(out):
            return out.numpy()

    figures = {}
    for dtype in dtypes:
        if library == "tensorflow" and dtype == "bfloat16" and onednn_capped_below_native_bf16():
            figures["bfloat16"] = f"skipped: oneDNN capped at {onednn_isa_cap()}"
            continue
        for m, k, n in SHAPES:
            a, b = operands(m, k, n, dtype)
            for _ in range(3):  # warm-up: kernel selection, primitive creation
                finish(run(a, b))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(3):
                    out = run(a, b)
                finish(out)
                times.append((time.perf_counter() - start) / 3)
            figures[f"{dtype} {m}x{k}x{n}"] = round(gflops(m, k, n, statistics.median(times)), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output")
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=DTYPES,
        default=list(DTYPES),
        help="bfloat16 without native support (e.g. under an AVX2 cap) takes minutes",
    )
    parser.add_argument("--library", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.library:  # child process: one library
        print(json.dumps(measure(args.library, args.repeats, args.dtypes)))
        return
    report = {"what": "matmul GFLOP/s, median of repeats, all cores", "cpus": os.cpu_count()}
    for library in LIBRARIES:
        env = torch_env(baseline_vendor(library))
        if library.startswith("torch"):
            report[f"{library} MKL code path"] = mkl_code_path(env)
        child = [sys.executable, __file__, "--library", library, "--repeats", str(args.repeats),
                 "--dtypes", *args.dtypes]  # fmt: skip
        done = subprocess.run(child, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{library} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
        report[library] = json.loads(done.stdout.strip().splitlines()[-1])
    report["env"] = {k: os.environ[k] for k in CAPS if k in os.environ}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
