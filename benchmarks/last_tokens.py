"""The predictor's last block with and without ``last_tokens`` (only the query tokens).

One BatchNorm transformer block at the predictor's shape of ViT-Tiny/16 at 224 px
([32, 276, 192], 3 heads), forward + backward in graph mode as training runs it (fused
kernels), the loss on its last 196 tokens; the full block against the block that runs its
MLP on those tokens only, interleaved over rounds (median of rounds, each the mean of 10
calls). JSON out.

    python benchmarks/last_tokens.py --output benchmarks/results_last_tokens_zen5_epyc.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import tensorflow as tf  # noqa: E402

from benchmarks.train_step import print_report  # noqa: E402
from siameseim_tf.layers.transformer import TransformerBlock, configure_blocks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    tokens, queries, width = 276, 196, 192
    block = TransformerBlock(width, 3, norm="batch")
    x = tf.random.normal([32, tokens, width])
    block(x)
    configure_blocks(block, fused_kernels=True)

    def step(last_tokens):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = block(x, training=True, last_tokens=last_tokens)[:, -queries:]
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [x, *block.trainable_variables])[0]

        return run

    variants = {"all_tokens": step(None), "last_tokens": step(queries)}
    times = {name: [] for name in variants}
    for run in variants.values():
        run(), run()
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            for _ in range(10):
                out = run()
            out.numpy()
            times[name].append((time.perf_counter() - start) / 10 * 1e3)
    medians = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "what": f"one BatchNorm block, [32, {tokens}, {width}], loss on the last {queries}",
        "ms_per_round": {name: [round(t, 2) for t in v] for name, v in times.items()},
        "median_ms": {name: round(m, 2) for name, m in medians.items()},
        "speedup": round(medians["all_tokens"] / medians["last_tokens"], 3),
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()
