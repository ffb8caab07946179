"""The fused block kernels: C++ ops (siameseim_tf/layers/native) against the XLA kernels.

Each kernel of siameseim_tf/layers/fused.py (LayerNorm forward / backward, exact GELU
forward / backward, softmax's backward, bias add / bias gradient, the last against
TensorFlow's BiasAdd / BiasAddGrad) at the shapes of a ViT-Tiny block on 32 x 197 tokens,
float32 and bfloat16, both backends in this process, interleaved over rounds
(median of rounds, each the mean of 10 calls). JSON out with the speed-up per kernel.

    python benchmarks/fused_kernels.py --output benchmarks/results_fused_kernels_zen5_epyc.json
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
from siameseim_tf.layers import fused, native  # noqa: E402


def kernels(backend: str, dtype, tokens: tuple[int, int], width: int, heads: int) -> dict:
    """{kernel name: zero-argument graph function} for one backend and dtype."""

    def normal(shape, scale=1.0):
        return tf.cast(tf.random.normal(shape) * scale, dtype)

    x, dy = normal((*tokens, width), 3.0), normal((*tokens, width))
    h, dh = normal((*tokens, 4 * width), 2.0), normal((*tokens, 4 * width))
    logits = tf.random.normal((tokens[0], heads, tokens[1], tokens[1])) * 3.0
    dprobs = normal(logits.shape)
    gamma, beta = tf.random.normal((width,)) + 1.0, tf.random.normal((width,))

    def value_and_grad(fn, inputs, upstream):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = fn(inputs)
        return tape.gradient(out, inputs, output_gradients=upstream)

    def layer_norm(t):
        return fused.layer_norm_fused(t, gamma, beta, 1e-6, backend)

    def gelu(t):
        return fused.gelu_exact_fused(t, backend)

    def softmax(t):
        return fused.softmax_fused(t, backend)

    bias = tf.random.normal((4 * width,))

    def bias_add_and_grads():
        with tf.GradientTape() as tape:
            tape.watch([h, bias])
            out = fused.bias_add_fused(h, bias, backend)
        return tape.gradient(out, [h, bias], output_gradients=dh)

    return {
        "layer_norm forward": tf.function(lambda: layer_norm(x)),
        "layer_norm forward + backward": tf.function(lambda: value_and_grad(layer_norm, x, dy)),
        "gelu forward": tf.function(lambda: gelu(h)),
        "gelu forward + backward": tf.function(lambda: value_and_grad(gelu, h, dh)),
        # softmax's forward is oneDNN's in both backends: the difference is the backward
        "softmax forward + backward": tf.function(
            lambda: value_and_grad(softmax, tf.cast(logits, dtype), dprobs)
        ),
        # the "xla" backend's bias add is TensorFlow's BiasAdd (grappler rewrites the add)
        "bias add forward + backward [.., 768]": tf.function(bias_add_and_grads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if native.load() is None:
        sys.exit(f"the C++ kernels are unavailable: {native.status()}")
    rows = []
    for dtype in (tf.float32, tf.bfloat16):
        funcs = {b: kernels(b, dtype, (32, 197), 192, 3) for b in ("xla", "native")}
        times = {(b, k): [] for b in funcs for k in funcs[b]}
        for fn in (f for b in funcs.values() for f in b.values()):
            for _ in range(3):
                fn()  # trace, compile, warm up
        for _ in range(args.rounds):
            for (backend, name), samples in times.items():
                fn = funcs[backend][name]
                start = time.perf_counter()
                for _ in range(10):
                    fn()
                samples.append((time.perf_counter() - start) / 10)
        for name in funcs["xla"]:
            xla_ms = statistics.median(times[("xla", name)]) * 1e3
            native_ms = statistics.median(times[("native", name)]) * 1e3
            rows.append(
                {
                    "dtype": dtype.name,
                    "kernel": name,
                    "xla_ms": round(xla_ms, 3),
                    "native_ms": round(native_ms, 3),
                    "speedup": round(xla_ms / native_ms, 2),
                }
            )
            print(f"{dtype.name:9s} {name:30s} {rows[-1]['speedup']:.2f}x", file=sys.stderr)
    report = {
        "what": "fused kernels at ViT-Tiny block shapes ([32, 197, 192], GELU [32, 197, 768], "
        "softmax [32, 3, 197, 197]): XLA-compiled vs C++ ops, ms per call",
        "rounds": args.rounds,
        "kernels": rows,
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()
