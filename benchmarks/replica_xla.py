"""XLA under N replicas: the SiameseIM train step on 2 logical CPU devices
(MirroredStrategy), graph mode vs XLA-compiled transformer blocks (the cross-replica
reductions - synchronised BatchNorm, UniGrad's correlation, gradients - stay outside XLA).

Both variants run round-robin in one process (a changing background load hits both);
medians over rounds; JSON out.

    python benchmarks/replica_xla.py --preset tiny --image-size 96 --output replica_xla.json
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

from siameseim_tf.training.strategy import split_cpu  # noqa: E402

DEVICES = split_cpu(2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.train_step import model_arguments, print_report  # noqa: E402
from siameseim_tf import SiameseIM  # noqa: E402
from siameseim_tf.layers.transformer import configure_blocks  # noqa: E402
from tests.helpers import random_batch  # noqa: E402


def mirrored_step(arguments: dict, batch_size: int, xla_blocks: bool):
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    with strategy.scope():
        model = SiameseIM(**arguments)
        if xla_blocks:
            configure_blocks(model, xla_per_replica=True)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=False)
        model.optimizer.build(model.trainable_variables)
    batch = random_batch(
        batch_size,
        arguments["image_size"],
        arguments["patch_size"],
        arguments["num_masked_patches"],
    )
    data = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat().unbatch().batch(batch_size)
    )
    iterator = iter(data)
    model.make_train_function()
    return lambda: float(model.train_function(iterator)["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    arguments = model_arguments(args.preset, args.image_size)
    steps = {
        "graph": mirrored_step(arguments, args.batch_size, xla_blocks=False),
        "xla_blocks": mirrored_step(arguments, args.batch_size, xla_blocks=True),
    }
    compile_seconds = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        compile_seconds[name] = time.perf_counter() - start
    rounds = []
    for _ in range(args.repeats):
        seconds = {}
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[name] = (time.perf_counter() - start) / args.steps
        rounds.append(seconds)
    report = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "replicas": 2,
        "preset": args.preset,
        "image_size": args.image_size,
        "global_batch_size": args.batch_size,
        "first_step_seconds": compile_seconds,
        "step_seconds": {name: [r[name] for r in rounds] for name in steps},
        "median_step_seconds": {name: statistics.median(r[name] for r in rounds) for name in steps},
        "speedup_xla_blocks_vs_graph": statistics.median(
            r["graph"] / r["xla_blocks"] for r in rounds
        ),
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()
