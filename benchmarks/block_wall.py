"""One transformer block's training wall time against its dense GEMMs and attention core.

Graph mode with the fused kernels (the float32 path on CPUs with AVX-512): the block's
forward + backward, then the same block's dense products alone (forward, input gradient
and weight gradient of qkv, proj, fc1 and fc2 as plain matmuls) and its attention core
alone (``attention_fused`` forward + backward on the qkv projection). What is left is the
element-wise work (norms, bias adds, GELU, residuals) and the executor. Wall times,
median of ``--repeats``, all cores. JSON out.

    python benchmarks/block_wall.py --tokens 197 275 --output benchmarks/results_block_wall.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import tensorflow as tf  # noqa: E402

from benchmarks.step_env import capped_env, emit  # noqa: E402
from benchmarks.step_profile import seconds  # noqa: E402
from siameseim_tf.layers.fused import attention_fused  # noqa: E402
from siameseim_tf.layers.transformer import TransformerBlock, configure_blocks  # noqa: E402
from siameseim_tf.training.machine import cpu_model  # noqa: E402


def measure(batch: int, tokens: int, width: int, heads: int, repeats: int) -> dict:
    block = TransformerBlock(width, heads)
    block.build((batch, tokens, width))
    configure_blocks(block, fused_kernels=True)
    x = tf.random.normal((batch, tokens, width))
    qkv = tf.random.normal((batch, tokens, 3 * width))

    @tf.function
    def whole(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = block(x, training=True)  # [B, T, D]
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, *block.trainable_weights])

    kernels = [block.attn.qkv.kernel, block.attn.proj.kernel, block.fc1.kernel, block.fc2.kernel]

    @tf.function
    def dense_only(x):
        rows = tf.reshape(x, (-1, width))  # [B*T, D]
        sums = []
        for kernel in kernels:  # each Dense layer's products, on inputs of its width
            inputs = tf.tile(rows, [1, kernel.shape[0] // width])  # [B*T, K]
            w = tf.ones(kernel.shape)  # [K, N]
            y = tf.matmul(inputs, w)  # forward
            dx = tf.matmul(y, w, transpose_b=True)  # input gradient
            dw = tf.matmul(inputs, y, transpose_a=True)  # weight gradient
            sums += [tf.reduce_sum(y), tf.reduce_sum(dx), tf.reduce_sum(dw)]
        return sums

    @tf.function
    def attention_only(qkv):
        with tf.GradientTape() as tape:
            tape.watch(qkv)
            out = attention_fused(qkv, heads)  # [B, T, D]
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, qkv)

    def run(fn, arg):
        return lambda: tf.nest.map_structure(lambda t: t.numpy(), fn(arg))

    dense_gflop = 3 * sum(2 * batch * tokens * k.shape[0] * k.shape[1] for k in kernels)
    result = {
        "shape": [batch, tokens, width],
        "heads": heads,
        "block_ms": 1e3 * seconds(run(whole, x), repeats),
        "dense_gemms_ms": 1e3 * seconds(run(dense_only, x), repeats),
        "attention_core_ms": 1e3 * seconds(run(attention_only, qkv), repeats),
    }
    result["dense_gemm_gflops"] = dense_gflop / 1e9 / (result["dense_gemms_ms"] / 1e3)
    result["rest_ms"] = result["block_ms"] - result["dense_gemms_ms"] - result["attention_core_ms"]
    print({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[197, 275])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    runs = [measure(args.batch_size, t, args.width, args.heads, args.repeats) for t in args.tokens]
    report = {"what": __doc__.splitlines()[0], "cpu": cpu_model(), "env": capped_env()}
    emit({**report, "runs": runs}, args.output)


if __name__ == "__main__":
    main()
