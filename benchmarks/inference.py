"""Inference benchmark: Keras encoder vs reloaded SavedModel vs ONNX Runtime fp32 / int8.

    python benchmarks/inference.py --preset small --image-size 224 --output bench.json

Every backend gets the same uint8 images [B, H, W, 3] and does the whole job, pixels to
embedding: resize + centre crop + normalise, then the encoder.

- ``keras``: TF preprocessing + the in-process encoder in one ``tf.function``;
- ``saved_model``: the ``embed_pixels`` signature of the reloaded SavedModel;
- ``onnx_fp32`` / ``onnx_int8``: numpy preprocessing (the server's) + ONNX Runtime.

Reports p50 / p99 latency at batch 1 and throughput at batch 32 (JSON on stdout and in
``--output``), and each backend's agreement with ``keras`` (min cosine of embeddings).
The encoder is randomly initialised: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np


def _timings(fn, images: np.ndarray, repeats: int, warmup: int) -> np.ndarray:
    """Seconds per call of ``fn(images)`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def _backends(encoder, workdir: str) -> dict:
    """name -> callable(uint8 [B, H, W, 3]) -> embedding [B, E] numpy."""
    import tensorflow as tf

    from siameseim_tf.export.onnx import export_onnx
    from siameseim_tf.export.saved_model import export_saved_model
    from siameseim_tf.serving.preprocessing import preprocess_numpy, preprocess_uint8
    from siameseim_tf.serving.runtime import EncoderRuntime

    size = encoder.image_size

    @tf.function
    def keras_fn(pixels):
        return encoder(preprocess_uint8(pixels, size), training=False)["pooled"]

    saved = tf.saved_model.load(export_saved_model(encoder, workdir, "bench", verbose=False))
    signature = saved.signatures["embed_pixels"]
    onnx = export_onnx(encoder, os.path.join(workdir, "bench.onnx"), quantize=True, verbose=False)

    def onnx_fn(runtime):
        def run(pixels):
            batch = np.stack([preprocess_numpy(image, size) for image in pixels])
            return runtime.run(batch)["embedding"]

        return run

    return {
        "keras": lambda pixels: keras_fn(tf.constant(pixels)).numpy(),
        "saved_model": lambda pixels: signature(pixels=tf.constant(pixels))["embedding"].numpy(),
        "onnx_fp32": onnx_fn(EncoderRuntime(onnx.path)),
        "onnx_int8": onnx_fn(EncoderRuntime(onnx.int8_path)),
    }


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cosine.min())


def run(args: argparse.Namespace) -> dict:
    """Builds the encoder and its exports, times every backend, returns the report."""
    import keras

    from siameseim_tf.export.common import sample_pixels
    from siameseim_tf.models.vit import ViTEncoder, preset_arguments

    keras.utils.set_random_seed(0)
    encoder = ViTEncoder(**preset_arguments(args.preset, image_size=args.image_size))
    height, width = args.image_size + 32, args.image_size + 96  # e.g. 256 x 320 at 224
    images = sample_pixels(args.batch, height, width, seed=1)  # [32, H, W, 3] uint8
    with tempfile.TemporaryDirectory() as workdir:
        backends = _backends(encoder, workdir)
        reference = backends["keras"](images)
        results = {}
        for name, fn in backends.items():
            single = _timings(fn, images[:1], args.repeats, args.warmup) * 1000.0  # ms
            batch = _timings(fn, images, args.batch_repeats, 1)
            results[name] = {
                "batch1_p50_ms": round(float(np.percentile(single, 50)), 2),
                "batch1_p99_ms": round(float(np.percentile(single, 99)), 2),
                f"batch{args.batch}_ms": round(float(np.median(batch)) * 1000.0, 1),
                f"batch{args.batch}_images_per_s": round(args.batch / float(np.median(batch)), 1),
                "min_cosine_vs_keras": round(_min_cosine(reference, fn(images)), 6),
            }
            print(f"{name}: {results[name]}", flush=True)
    return {
        "config": {
            "preset": args.preset,
            "image_size": args.image_size,
            "input_hw": [height, width],
            "batch": args.batch,
            "batch1_repeats": args.repeats,
            "batch_repeats": args.batch_repeats,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="ViT preset (default: small)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32, help="throughput batch (default 32)")
    parser.add_argument("--repeats", type=int, default=50, help="batch-1 timed calls")
    parser.add_argument("--batch-repeats", type=int, default=5, help="large-batch timed calls")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", help="also write the JSON report here")
    args = parser.parse_args(argv)
    text = json.dumps(run(args), indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
