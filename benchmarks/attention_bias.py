"""The qkv bias added inside the attention kernels against a separate bias add, one layer.

Forward + backward (gradients for qkv and the bias) of the float32 C++ attention on a
ViT-Tiny encoder's qkv projection ([32, 197, 576], 3 heads of 64), graph mode: "separate"
is the former path (``SimBiasAdd`` over the whole projection, then the attention, the bias
gradient a ``SimBiasAddGrad`` pass over dqkv), "inside" passes the bias to the attention
kernels (each (batch, head) pair adds it to its own q, k, v in cache and sums its
gradient). The two alternate every ``--calls`` calls; medians and the paired per-round
ratio. JSON out.

    python benchmarks/attention_bias.py --rounds 20
    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/attention_bias.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import tensorflow as tf  # noqa: E402

from benchmarks.train_step import print_report  # noqa: E402
from siameseim_tf.layers.fused import attention_fused, bias_add_fused  # noqa: E402


def attention_step(bias_inside: bool, heads: int, weight):
    """Forward + backward of the attention with its qkv bias, one way or the other."""

    @tf.function
    def step(qkv, bias):
        with tf.GradientTape() as tape:
            tape.watch([qkv, bias])
            if bias_inside:
                out = attention_fused(qkv, heads, "native", bias=bias)  # [B, T, D]
            else:
                out = attention_fused(bias_add_fused(qkv, bias, "native"), heads, "native")
            loss = tf.reduce_sum(out * weight)
        return tape.gradient(loss, [qkv, bias])

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=197)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    width = args.heads * args.head_dim
    qkv = tf.random.normal((args.batch, args.tokens, 3 * width))
    bias = tf.random.normal((3 * width,))
    weight = tf.random.normal((args.batch, args.tokens, width))
    steps = {
        name: attention_step(name == "inside", args.heads, weight)
        for name in ("separate", "inside")
    }
    for step in steps.values():
        step(qkv, bias)  # traced and warm
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                step(qkv, bias)[0].numpy()
            times[name].append((time.perf_counter() - start) / args.calls * 1000)
    ratios = [s / i for s, i in zip(times["separate"], times["inside"])]
    print_report(
        {
            "what": "float32 C++ attention forward + backward with the qkv bias: a separate "
            "bias add (and bias-gradient pass) vs the bias inside the attention kernels",
            "shape": {
                "batch": args.batch,
                "tokens": args.tokens,
                "heads": args.heads,
                "head_dim": args.head_dim,
            },
            "env": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA",) if k in os.environ},
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "ms_per_call_per_round": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "median_ms": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "paired_ratio_median": round(statistics.median(ratios), 4),
            "inside_faster_in_rounds": sum(r > 1 for r in ratios),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
