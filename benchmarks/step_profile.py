"""Where the SiameseIM train step's time goes: each part timed alone, summed per step.

Every block of the step (online encoder on the visible tokens, momentum encoder on all,
projectors, predictor) is split into attention, MLP and norms; each part is timed on its
own (tf.function, forward + backward where the step differentiates it, forward only in
the momentum branch), multiplied by how often the step runs it, and compared with the
measured whole step. Also the momentum update (every target weight) and the gather of
the visible tokens. JSON out.

    python benchmarks/step_profile.py --preset tiny --image-size 224 --batch-size 32
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

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.train_step import keras_step, model_arguments, print_report, recorded_env  # noqa: E402
from siameseim_tf.layers.transformer import TransformerBlock, configure_blocks  # noqa: E402


def seconds(fn, repeats: int) -> float:
    fn()  # trace / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def part_time(layer_fn, weights, shape, backward: bool, repeats: int, jit: bool) -> float:
    x = tf.random.normal(shape)

    @tf.function(jit_compile=jit)
    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer_fn(x)
            loss = tf.reduce_sum(y)
        if backward:
            return tape.gradient(loss, [x, *weights()])
        return loss

    return seconds(lambda: tf.nest.map_structure(lambda t: t.numpy(), run()), repeats)


def block_parts(dim, heads, mlp_ratio, norm, shape, backward, repeats, jit: bool):
    """A block's attention, MLP and norms timed apart, each run as training runs it: in
    graph mode with the fused kernels (C++ where they load), under XLA as plain ops."""
    block = TransformerBlock(dim, heads, mlp_ratio, norm=norm)
    block.build(shape)
    configure_blocks(block, fused_kernels=not jit)
    mlp_weights = block.fc1.trainable_weights + block.fc2.trainable_weights
    return {
        "attention": part_time(
            lambda x: block._attention_branch(x, training=True),
            lambda: block.attn.trainable_weights,
            shape,
            backward,
            repeats,
            jit,
        ),
        "mlp": part_time(
            lambda x: block._mlp_branch(x, training=True),
            lambda: mlp_weights,
            shape,
            backward,
            repeats,
            jit,
        ),
        # two norms per block
        "norms": 2
        * part_time(
            lambda x: block._norm(block.norm1, x, training=True),
            lambda: block.norm1.trainable_weights,
            shape,
            backward,
            repeats,
            jit,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--jit-compile", action="store_true", help="parts and step XLA-compiled (else graph)"
    )
    args = parser.parse_args()
    a = model_arguments(args.preset, args.image_size)
    b, n = args.batch_size, (args.image_size // a["patch_size"]) ** 2
    visible = n - a["num_masked_patches"]
    e, d = a["embed_dim"], a["decoder_dim"]
    # (name, width, heads, norm, tokens, backward, how many blocks)
    stages = [
        ("online encoder", e, a["num_heads"], "layer", 1 + visible, True, a["depth"]),
        ("momentum encoder", e, a["num_heads"], "layer", 1 + n, False, a["depth"]),
        ("online projector", d, a["decoder_num_heads"], "batch", 1 + visible, True, 2),
        ("momentum projector", d, a["decoder_num_heads"], "batch", 1 + n, False, 2),
        ("predictor", d, a["decoder_num_heads"], "batch", 1 + visible + n, True, 4),
    ]
    report = {
        "preset": args.preset,
        "image_size": args.image_size,
        "batch_size": b,
        "mode": "xla" if args.jit_compile else "graph",
        "env": recorded_env(),
    }
    parts: dict[str, float] = {}
    for name, width, heads, norm, tokens, backward, count in stages:
        timed = block_parts(
            width,
            heads,
            a["mlp_ratio"],
            norm,
            (b, tokens, width),
            backward,
            args.repeats,
            args.jit_compile,
        )
        for part, t in timed.items():
            parts[f"{name}: {part}"] = count * t
        print(name, {k: round(count * v, 3) for k, v in timed.items()}, flush=True)
    whole = seconds(keras_step(a, b, jit_compile=args.jit_compile), args.repeats)
    from siameseim_tf import SiameseIM
    from siameseim_tf.models.momentum import update_ema

    siam = SiameseIM(**a)
    siam.build()
    pairs = siam.momentum_pairs()
    update = tf.function(lambda: update_ema(pairs, 0.99), jit_compile=args.jit_compile)
    parts["momentum update"] = seconds(lambda: update(), args.repeats)
    tokens = tf.random.normal((b, n, e))
    index = tf.argsort(tf.random.uniform((b, n)), axis=1)[:, :visible]
    gather = tf.function(
        lambda: tf.gather(tokens, index, batch_dims=1), jit_compile=args.jit_compile
    )
    parts["visible-token gather"] = seconds(lambda: gather().numpy(), args.repeats)
    total = sum(parts.values())
    report.update(
        whole_step_seconds=whole,
        parts_seconds=parts,
        parts_sum_seconds=total,
        shares_of_parts={k: v / total for k, v in parts.items()},
    )
    print_report(report, args.output)


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    main()
