"""The train step with and without the 2026-12-06 memory-pass savings, interleaved in one
process: the visible-token gather as one row gather (``take_tokens``), token slices whose
gradient is a Pad (``token_range``), the projections' bias and residual adds as one kernel
(``SimBiasAddResidual``) and the qkv projection's bias added inside the attention kernels.
The "before" model is traced with the former code paths of the savings named by
``--former`` put back (``take_along_axis``, strided slices, a bias add then an add, a
bias add over the whole qkv projection); both models run the same step (ViT-Tiny/16
SiameseIM, 224 px, batch 32, float32 graph mode, AdamW + clipping), alternating every
``--steps`` steps, so that load on the host hits both alike.

    python benchmarks/memory_passes.py --rounds 15
    python benchmarks/memory_passes.py --former qkv_bias --rounds 15
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


def _attention_with_bias_add(self, x, training=False, residual=None):
    """MultiHeadSelfAttention.call before the qkv bias went into the attention kernels."""
    fused = training and self.fused_softmax
    qkv = transformer.dense(self.qkv, x, fused)  # a bias add over the whole [B, T, 3D]
    out = transformer.attention_fused(qkv, self.num_heads) if fused else None
    if out is None:
        out = self._attend(qkv, fused)
    return transformer.dense(self.proj, out, fused, residual)


FORMER_PATHS = {  # saving -> (object, attribute, the former code path)
    "tokens": (vit, "take_tokens", _take_along_axis),
    "slices": (siameseim, "token_range", _strided),
    "block_slices": (transformer, "token_range", _strided),
    "residual": (transformer.TransformerBlock, "_plain_residual", lambda *_: False),
    "qkv_bias": (transformer.MultiHeadSelfAttention, "call", _attention_with_bias_add),
}


def former_names(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The savings named in ``text`` (comma-separated), or the parser's error."""
    names = [name for name in text.split(",") if name]
    if unknown := set(names) - set(FORMER_PATHS):
        parser.error(f"--former: unknown {sorted(unknown)}; known: {list(FORMER_PATHS)}")
    return names


@contextlib.contextmanager
def former_paths(names):
    """The code paths before the savings ``names``, for tracing the "before" step."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(*FORMER_PATHS[name]))
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--former",
        default=",".join(FORMER_PATHS),
        help=f"comma-separated savings to undo in the 'before' model, of {list(FORMER_PATHS)}",
    )
    args = parser.parse_args()
    former = former_names(parser, args.former)
    arguments = model_arguments("tiny", 224)
    with former_paths(former):
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
            "former_paths_before": former,
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
