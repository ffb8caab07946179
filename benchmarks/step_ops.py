"""Where the whole SiameseIM train step's op time goes, by TensorFlow op type (TF profiler).

The Keras train step of train_step.py (ViT-Tiny/16 SiameseIM, 224 px, batch 32, AdamW +
clipping, graph mode) runs under the TensorFlow profiler; op events are summed per type
and per op name (block indices collapsed), ms per step. Ops on the two cores overlap, so
read the shares. JSON out.

    python benchmarks/step_ops.py --output benchmarks/results_step_ops.json
    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/step_ops.py
    python benchmarks/step_ops.py --former qkv_bias   # a saving undone (memory_passes.py)
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks.memory_passes import FORMER_PATHS, former_names, former_paths  # noqa: E402
from benchmarks.train_step import keras_step, model_arguments, print_report  # noqa: E402

OP_EVENT = re.compile(r"^([\w/.\-]+):([A-Za-z_]\w*)$")  # "scope/op_name:OpType"


def profile_step(step, steps: int) -> tuple[collections.Counter, collections.Counter]:
    """(ms per step by op type, ms per step by (collapsed op name, op type))."""
    logdir = tempfile.mkdtemp(prefix="step_ops_")
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        step()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(
        Path(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]).read_bytes()
    )
    by_type, by_name = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                match = OP_EVENT.match(names.get(event.metadata_id, ""))
                if match:
                    ms = event.duration_ps / 1e9 / steps
                    by_type[match.group(2)] += ms
                    by_name[(re.sub(r"_\d+", "_N", match.group(1)), match.group(2))] += ms
    return by_type, by_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--former", default="", help=f"savings to undo, comma-separated, of {list(FORMER_PATHS)}"
    )
    args = parser.parse_args()
    former = former_names(parser, args.former)
    with former_paths(former):  # traced under them
        step = keras_step(model_arguments("tiny", 224), 32, False, args.precision)
        step()
    for _ in range(2):  # warm up
        step()
    by_type, by_name = profile_step(step, args.steps)
    total = sum(by_type.values())
    print_report(
        {
            "what": f"ViT-Tiny/16 SiameseIM train step, 224 px, batch 32, {args.precision}, "
            "graph mode: op time by TensorFlow op type",
            "env": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA",) if k in os.environ},
            "former_paths": former,
            "op_ms_per_step_total": round(total, 1),
            "by_type": {op: round(ms, 1) for op, ms in by_type.most_common(args.top)},
            "shares": {op: round(ms / total, 4) for op, ms in by_type.most_common(args.top)},
            "by_name": {
                f"{op} {name}": round(ms, 1) for (name, op), ms in by_name.most_common(args.top)
            },
        },
        args.output,
    )


if __name__ == "__main__":
    main()
