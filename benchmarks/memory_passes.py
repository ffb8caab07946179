"""The train step with and without the 2026-12-06 memory-pass savings, interleaved in one
process: the visible-token gather as one row gather (``take_tokens``), token slices whose
gradient is a Pad (``token_range``), and the projections' bias and residual adds as one
kernel (``SimBiasAddResidual``). The "before" model is traced with the former code paths
put back (``take_along_axis``, strided slices, a bias add then an add); both models run
the same step (ViT-Tiny/16 SiameseIM, 224 px, batch 32, float32 graph mode, AdamW +
clipping), alternating every ``--steps`` steps, so that load on the host hits both alike.

    python benchmarks/memory_passes.py --rounds 15
    python benchmarks/cpu_emulation/run.py avx2 -- python benchmarks/memory_passes.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

from keras import ops  # noqa: E402

from benchmarks.train_step import keras_step, model_arguments, print_report  # noqa: E402
from siameseim_tf.layers import transformer  # noqa: E402
from siameseim_tf.models import siameseim, vit  # noqa: E402


def _strided(x, start, stop=None):
    return x[:, start:stop]


def _take_along_axis(x, indices):
    return ops.take_along_axis(x, ops.expand_dims(indices, -1), axis=1)


@contextlib.contextmanager
def former_paths():
    """The code paths before the change, for tracing the "before" step."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(vit, "take_tokens", _take_along_axis))
        stack.enter_context(mock.patch.object(siameseim, "token_range", _strided))
        stack.enter_context(mock.patch.object(transformer, "token_range", _strided))
        stack.enter_context(
            mock.patch.object(transformer.TransformerBlock, "_plain_residual", lambda *_: False)
        )
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    arguments = model_arguments("tiny", 224)
    with former_paths():
        before = keras_step(arguments, 32, False)
        before()  # traced here, under the former paths
    after = keras_step(arguments, 32, False)
    after()
    times = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name, step in (("before", before), ("after", after)):
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)
    median = {name: statistics.median(t) for name, t in times.items()}
    print_report(
        {
            "what": "ViT-Tiny/16 SiameseIM train step, 224 px, batch 32, float32 graph mode: "
            "before / after the memory-pass savings, interleaved in one process",
            "env": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA",) if k in os.environ},
            "rounds": args.rounds,
            "steps_per_round": args.steps,
            "step_seconds_per_round": {k: [round(s, 4) for s in t] for k, t in times.items()},
            "median_step_seconds": {k: round(s, 4) for k, s in median.items()},
            "speedup": round(median["before"] / median["after"], 4),
            "after_faster_in_rounds": sum(a < b for a, b in zip(times["after"], times["before"])),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
