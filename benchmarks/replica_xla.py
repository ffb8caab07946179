"""XLA under N replicas: the SiameseIM train step, graph mode (as training runs it: fused
GELU / LayerNorm / softmax kernels) vs XLA-compiled transformer blocks (the cross-replica
reductions - synchronised BatchNorm, UniGrad's correlation, gradients - stay outside XLA).

- default: MirroredStrategy on 2 logical CPU devices in one process;
- ``--multi-worker``: MultiWorkerMirroredStrategy, 2 worker processes on 127.0.0.1
  (one replica each, sharing this machine's cores); worker 0 reports.

Both variants run round-robin in the same process(es) (a changing background load hits
both); medians over rounds; JSON out.

    python benchmarks/replica_xla.py --preset tiny --image-size 96 --output replica_xla.json
    python benchmarks/replica_xla.py --multi-worker --output multiworker_xla.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.train_step import model_arguments, print_report, recorded_env  # noqa: E402
from siameseim_tf import SiameseIM  # noqa: E402
from siameseim_tf.training.run import apply_xla  # noqa: E402
from siameseim_tf.training.strategy import split_cpu  # noqa: E402
from tests.helpers import free_ports, loopback_tf_config, random_batch  # noqa: E402


def replica_step(strategy, arguments: dict, batch_size: int, mode: str):
    """One train step under ``strategy`` set up as training sets it up for ``mode``
    ("off": graph mode with fused kernels, "blocks": XLA-compiled blocks)."""
    with strategy.scope():
        model = SiameseIM(**arguments)
        apply_xla(model, mode)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=False)
        model.optimizer.build(model.trainable_variables)
    batch = random_batch(
        batch_size,
        arguments["image_size"],
        arguments["patch_size"],
        arguments["num_masked_patches"],
    )
    data = tf.data.Dataset.from_tensors(batch).repeat().unbatch().batch(batch_size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = strategy.experimental_distribute_dataset(data.with_options(options))
    iterator = iter(data)
    model.make_train_function()
    return lambda: float(model.train_function(iterator)["loss"])


def launch_workers(argv: list[str]) -> None:
    """Runs this script as 2 MultiWorkerMirroredStrategy workers; worker 0 reports."""
    ports = ",".join(free_ports(2))
    command = [sys.executable, __file__, *argv, "--ports", ports, "--worker"]
    workers = [subprocess.Popen([*command, str(i)]) for i in range(2)]
    codes = [worker.wait() for worker in workers]
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None)
    parser.add_argument("--multi-worker", action="store_true", help="2 worker processes")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.multi_worker and args.worker is None:
        return launch_workers(sys.argv[1:])
    if args.multi_worker:  # one per process: both models share it
        os.environ["TF_CONFIG"] = loopback_tf_config(args.ports.split(","), args.worker)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy(split_cpu(2))
    arguments = model_arguments(args.preset, args.image_size)
    steps = {
        "graph": replica_step(strategy, arguments, args.batch_size, "off"),
        "xla_blocks": replica_step(strategy, arguments, args.batch_size, "blocks"),
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
        "env": recorded_env(),
        "strategy": "MultiWorkerMirroredStrategy" if args.multi_worker else "MirroredStrategy",
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
    if not args.worker:  # the single process, or worker 0
        print_report(report, args.output)


if __name__ == "__main__":
    main()
