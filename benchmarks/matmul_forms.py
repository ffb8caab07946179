"""The Dense products of a ViT-Tiny step in the forms TensorFlow could run them, GFLOP/s.

TensorFlow's float32 ``MatMul`` goes to oneDNN's sgemm API (``gemm_api`` in
``ONEDNN_VERBOSE``), ``BatchMatMulV2`` to its matmul primitive (brgemm kernels). A weight
gradient ``dW = X^T dY`` ([I, O]) can also be taken as ``(dY^T X)^T``, whose GEMM has the
other output shape. Says whether routing any product another way would speed the step;
each form is timed round-robin with the others, graph mode, all cores.

    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/matmul_forms.py \\
        --output benchmarks/results_matmul_forms_avx2_masked_emerald_rapids_xeon.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.step_env import capped_env, emit  # noqa: E402

# name: (rows, in, out) of x [rows, in] @ w [in, out]; rows = 32 images x tokens
# (79: online encoder, 197: momentum encoder, 275: predictor)
PRODUCTS = {
    "fc1, 79 tokens": (2528, 192, 768),
    "fc2, 79 tokens": (2528, 768, 192),
    "qkv, 79 tokens": (2528, 192, 576),
    "proj, 79 tokens": (2528, 192, 192),
    "fc1, 197 tokens": (6304, 192, 768),
    "fc2, 197 tokens": (6304, 768, 192),
    "fc1, 275 tokens": (8800, 192, 768),
    "fc2, 275 tokens": (8800, 768, 192),
}


def forms(rows: int, fan_in: int, fan_out: int) -> dict:
    """{form: (function, operands)} for the forward, input-gradient and weight-gradient
    products of one Dense layer."""
    x, w = tf.random.normal((rows, fan_in)), tf.random.normal((fan_in, fan_out))
    dy = tf.random.normal((rows, fan_out))

    def batched(a, b, adj_x=False, adj_y=False):
        return tf.raw_ops.BatchMatMulV2(x=a[None], y=b[None], adj_x=adj_x, adj_y=adj_y)[0]

    return {
        "forward MatMul": (lambda a, b: tf.matmul(a, b), (x, w)),
        "forward BatchMatMulV2": (batched, (x, w)),
        "input gradient MatMul": (lambda a, b: tf.matmul(a, b, transpose_b=True), (dy, w)),
        "input gradient BatchMatMulV2": (lambda a, b: batched(a, b, adj_y=True), (dy, w)),
        "weight gradient X^T dY": (lambda a, b: tf.matmul(a, b, transpose_a=True), (x, dy)),
        "weight gradient (dY^T X)^T": (
            lambda a, b: tf.transpose(tf.matmul(b, a, transpose_a=True)),
            (x, dy),
        ),
    }


def seconds_per_call(function, operands, calls: int) -> float:
    """Mean seconds of ``calls`` back-to-back calls (the last one's result fetched)."""
    function(*operands).numpy()
    start = time.perf_counter()
    for _ in range(calls):
        result = function(*operands)
    result.numpy()
    return (time.perf_counter() - start) / calls


def measure(rounds: int, calls: int) -> dict:
    """{product: {form: median GFLOP/s}}, the forms of one product round-robin."""
    report = {}
    for name, (rows, fan_in, fan_out) in PRODUCTS.items():
        compiled = {
            form: (tf.function(function), operands)
            for form, (function, operands) in forms(rows, fan_in, fan_out).items()
        }
        times = {form: [] for form in compiled}
        for _ in range(rounds):
            for form, (function, operands) in compiled.items():
                times[form].append(seconds_per_call(function, operands, calls))
        gflop = 2 * rows * fan_in * fan_out / 1e9
        report[name] = {form: gflop / statistics.median(t) for form, t in times.items()}
        print(name, {form: round(g, 1) for form, g in report[name].items()}, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--output")
    args = parser.parse_args()
    emit({"env": capped_env(), "gflops": measure(args.rounds, args.calls)}, args.output)


if __name__ == "__main__":
    main()
