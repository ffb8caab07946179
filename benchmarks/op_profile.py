"""Where a transformer block's training time goes, by TensorFlow op type (TF profiler).

One block (forward + backward, the shape of ViT-Tiny's momentum / predictor stages by
default) runs under the TensorFlow profiler; the op events of the trace are summed by op
type (ms per step; ops on the two cores overlap, so shares of the total are what to read).
The variants are the execution paths of training/run.py: graph mode with or without fused
GELU, float32 or mixed_bfloat16. JSON out.

    python benchmarks/op_profile.py --output benchmarks/results_op_profile.json
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

from benchmarks.train_step import print_report  # noqa: E402
from siameseim_tf.layers.transformer import TransformerBlock, configure_blocks  # noqa: E402

# "scope/op_name:OpType"; C++ scopes ("Thread::Run") and function names are not ops.
OP_EVENT = re.compile(r"^[\w/.\-]+:([A-Za-z_]\w*)$")


def profile_block(shape, heads: int, policy: str, fused_kernels: bool, steps: int) -> dict:
    """ms per step by op type for one block's forward + backward in graph mode."""
    block = TransformerBlock(shape[-1], heads, dtype=policy)
    block.build(shape)
    configure_blocks(block, fused_kernels=fused_kernels)
    x = tf.random.normal(shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(block(x, training=True), tf.float32))
        return tape.gradient(loss, [x, *block.trainable_weights])

    for _ in range(3):
        step()
    logdir = tempfile.mkdtemp(prefix="op_profile_")
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        [g.numpy() for g in step()]
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(
        Path(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]).read_bytes()
    )
    by_type = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                match = OP_EVENT.match(name)
                if name == "CpuExecutable::ExecuteAsyncOnStream":  # a compiled XLA kernel
                    by_type["XLA kernels (fused GELU / LayerNorm / softmax)"] += (
                        event.duration_ps / 1e9 / steps
                    )
                elif match:  # a TensorFlow op
                    by_type[match.group(1)] += event.duration_ps / 1e9 / steps
    total = sum(by_type.values())
    return {
        "policy": policy,
        "fused_kernels": fused_kernels,
        "op_ms_per_step_total": round(total, 2),
        "ops": {op: round(ms, 2) for op, ms in by_type.most_common(12)},
        "shares": {op: round(ms / total, 3) for op, ms in by_type.most_common(12)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 197, 192])
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    runs = []
    for policy in ("float32", "mixed_bfloat16"):
        for fused in (False, True):
            run = profile_block(tuple(args.shape), args.heads, policy, fused, args.steps)
            runs.append(run)
            top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(run["ops"].items())[:5])
            print(f"{policy:15s} fused_kernels={fused!s:5s} {top}", flush=True)
    print_report({"shape": args.shape, "heads": args.heads, "runs": runs}, args.output)


if __name__ == "__main__":
    main()
