"""AdamW's apply on ViT-Tiny SiameseIM's trainable variables: the library's fused update
(TensorFlow's ResourceApplyAdam) against Keras' own Adam ops, same decay rule.

    python benchmarks/optimizer_apply.py --output benchmarks/results_optimizer_apply.json

Both optimizers apply the same gradients to the same variables in graph mode, interleaved
over ``--rounds``; per round the median of ``--calls`` calls. JSON out: per optimizer the
per-round medians (ms) and their median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from siameseim_tf import SiameseIM  # noqa: E402
from siameseim_tf.training import AdamW  # noqa: E402


class KerasOpsAdamW(AdamW):
    """The library's AdamW (decay on matrices only) with Keras' element-wise Adam ops."""

    def update_step(self, gradient, variable, learning_rate):
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)


def variable_shapes() -> list[tuple[int, ...]]:
    """Shapes of the trainable variables of train_step.py's ViT-Tiny model (built by one
    forward and backward pass)."""
    from benchmarks.train_step import model_arguments
    from tests.helpers import random_batch

    arguments = model_arguments("tiny", 224)
    model = SiameseIM(**arguments)
    model.compile(optimizer=AdamW(learning_rate=1e-4))
    batch = random_batch(2, 224, arguments["patch_size"], arguments["num_masked_patches"])
    model.make_train_function()
    model.train_function(iter(tf.data.Dataset.from_tensors(batch).repeat()))
    return [tuple(v.shape) for v in model.trainable_variables]


def _compiled_apply(optimizer, grads: list, variables: list):
    """``optimizer.apply(grads, variables)`` as a graph taking no arguments."""
    return tf.function(lambda: optimizer.apply(grads, variables))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    shapes = variable_shapes()
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=s).astype("float32") * 1e-3) for s in shapes]
    applies = {}
    for name, cls in (("fused", AdamW), ("keras_ops", KerasOpsAdamW)):
        variables = [keras.Variable(np.zeros(s, "float32")) for s in shapes]
        optimizer = cls(learning_rate=1e-4, weight_decay=0.05, beta_2=0.95)
        optimizer.build(variables)
        applies[name] = _compiled_apply(optimizer, grads, variables)
    rounds = {name: [] for name in applies}
    for _ in range(args.rounds):
        for name, apply in applies.items():
            apply(), apply()
            times = []
            for _ in range(args.calls):
                start = time.perf_counter()
                apply()
                times.append(time.perf_counter() - start)
            rounds[name].append(round(statistics.median(times) * 1e3, 2))
    report = {
        "what": "AdamW apply, ViT-Tiny SiameseIM trainable variables, graph mode",
        "parameters": int(sum(np.prod(s) for s in shapes)),
        "variables": len(shapes),
        "optimizers": [
            {"optimizer": n, "ms_per_round": r, "median_ms": statistics.median(r)}
            for n, r in rounds.items()
        ],
    }
    print(json.dumps(report, indent=1))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
