"""Throughput of the two-view pretraining pipeline, per CPU core, at 224 px.

Generates a folder of JPEGs (natural-looking gradients + shapes, default 500 x 375 like an
average ImageNet photo), runs ``build_pretraining_dataset`` (decode, 2 views with the full
colour pipelines, block mask) and reports images/s, the median over several runs, divided
by the number of cores tf.data may use. ``--profile`` adds a per-stage cost breakdown
(ms per image, one core) and ``--compare-libraries`` keras-cv / core Keras layer timings.

    python benchmarks/data_pipeline.py --output bench.json [--profile] [--compare-libraries]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def make_jpegs(folder: str, count: int, height: int, width: int, seed: int = 0) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for k in range(count):
        base = np.stack(
            [
                127 + 100 * np.sin(xx / rng.uniform(20, 90) + rng.uniform(0, 6)),
                127 + 100 * np.cos(yy / rng.uniform(20, 90) + rng.uniform(0, 6)),
                127 + 100 * np.sin((xx + yy) / rng.uniform(30, 120)),
            ],
            -1,
        )
        base += rng.normal(0, 12, base.shape)
        image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            box = [x0, y0, x0 + rng.integers(10, width // 2), y0 + rng.integers(10, height // 2)]
            draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(os.path.join(folder, f"{k:05d}.jpg"), quality=90)


def throughput(
    folder: str, args: argparse.Namespace, cores: int, stage: str = "full"
) -> list[float]:
    """images/s of the real pipeline; ``stage`` "decode" / "no_color" / "full" for ablation."""
    import tensorflow as tf

    from siameseim_tf.data import build_pretraining_dataset, image_folder_source

    source = image_folder_source(folder)
    if stage == "decode":
        ds = source.raw(1, 0).repeat().map(source.decode, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.map(lambda image: tf.shape(image)).batch(args.batch_size).prefetch(2)
    else:
        ds = build_pretraining_dataset(
            source,
            args.batch_size,
            image_size=args.image_size,
            seed=0,
            antialias=not args.no_antialias,
            interpolation=args.interpolation,
            matmul_dtype=args.matmul_dtype,
            backend=args.backend,
            color=stage == "full",
            num_parallel_calls=args.num_parallel_calls or tf.data.AUTOTUNE,
        )
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    ds = ds.with_options(options)
    it = iter(ds)
    for _ in range(args.warmup_batches):
        next(it)
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(args.batches):
            next(it)
        images = args.batches * args.batch_size
        rates.append(images / (time.perf_counter() - start))
        cpu_rates.append(images / (time.process_time() - cpu_start))
    return rates, cpu_rates


def _time_per_image(fn, inputs, repeats: int = 3) -> float:
    """ms per image of ``fn`` mapped over ``inputs`` inside one tf.function, best of N.

    Each output is summed to a scalar (~0.04 ms per 224^2 view) instead of being stacked
    (stacking copies every output, ~0.2 ms, and hid the cost of the cheap steps).
    """
    import tensorflow as tf

    @tf.function
    def run(xs):
        return tf.map_fn(
            lambda x: tf.reduce_sum(tf.cast(fn(x), tf.float32)), xs, fn_output_signature=tf.float32
        )

    run(inputs)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()  # CPU time: robust to other processes' load
        run(inputs)
        best = min(best, time.process_time() - start)
    return best / int(inputs.shape[0]) * 1e3


def _crop_stages(images, seeds, size: int) -> dict[str, float]:
    """flip + crop + resize of two views (the pipeline's unit), per view, each filter and
    product type, plus ``tf.image.resize`` (the previous implementation) for comparison."""
    import tensorflow as tf

    from siameseim_tf.data.crop import sample_crop
    from siameseim_tf.data.resize import crop_resize

    def boxes(k):
        image = tf.gather(images, k)
        seed = tf.gather(seeds, k)
        two = tf.stack([seed, seed + 1])
        return image, tf.stack(
            [sample_crop(s, tf.shape(image)[0], tf.shape(image)[1], 0.2) for s in tf.unstack(two)]
        )

    def ours(k, method, antialias, dtype):
        image, b = boxes(k)
        views = crop_resize(image, b, tf.constant([False, True]), size, method, antialias, dtype)
        return tf.add_n([tf.reduce_sum(v) for v in views])

    def tf_resize(k, method, antialias):
        image, b = boxes(k)
        views = [
            tf.image.resize(
                image[r[0] : r[0] + r[2], r[1] : r[1] + r[3]],
                [size, size],
                method,
                antialias=antialias,
            )
            for r in tf.unstack(b)
        ]
        return tf.add_n([tf.reduce_sum(v) for v in views])

    idx = tf.range(int(images.shape[0]))
    out = {}
    for method, antialias in (("bicubic", True), ("bilinear", False)):
        name = f"{method}{'_antialias' if antialias else ''}"
        for dtype in (tf.bfloat16, tf.float32):
            fn = lambda k, m=method, a=antialias, d=dtype: ours(k, m, a, d)
            out[f"crop_resize_matmul_{dtype.name}_{name}"] = _time_per_image(fn, idx) / 2
        fn = lambda k, m=method, a=antialias: tf_resize(k, m, a)
        out[f"crop_resize_tf_image_resize_{name}"] = _time_per_image(fn, idx) / 2
    return out


def _fused_stages(images, seeds, size: int) -> dict[str, float]:
    """The fused C++ kernel: both views of an image (ms per image), geometry only and with
    the colour pipelines of SPEC §1, random draws included (views._plan)."""
    import tensorflow as tf

    from siameseim_tf.data import native
    from siameseim_tf.data.views import ViewConfig, _views

    if native.load() is None:
        return {"fused_kernel_unavailable": 0.0}
    out = {}
    for color in (False, True):
        config = ViewConfig(size, 16, 0, 0.2, color, backend="fused")

        def both(k, config=config):
            v1, v2, *_ = _views(tf.gather(images, k), tf.gather(seeds, k), config)
            return tf.reduce_sum(v1) + tf.reduce_sum(v2)

        name = "fused_two_views_with_colour" if color else "fused_two_views_no_colour"
        out[name] = _time_per_image(both, tf.range(int(images.shape[0])))
    return out


def _colour_stages(seeds, views) -> dict[str, float]:
    """The colour steps on one channels-first 224^2 view (ms per view)."""
    import tensorflow as tf

    from siameseim_tf.data import color

    def params(k):
        return color.sample_color_params(tf.gather(seeds, k), color.VIEW1_PROBS)

    idx = tf.range(int(views.shape[0]))
    return {
        "color_jitter_plain_tf": _time_per_image(
            lambda k: color.color_jitter(tf.gather(views, k), params(k)), idx
        ),
        "jitter_and_grayscale_xla": _time_per_image(
            lambda k: color._jitter_and_grayscale(
                tf.gather(views, k), params(k), color.VIEW1_PROBS
            ),
            idx,
        ),
        "grayscale": _time_per_image(color.grayscale, views),
        "gaussian_blur_bfloat16": _time_per_image(
            lambda v: color.gaussian_blur(v, tf.constant(1.0), tf.bfloat16), views
        ),
        "gaussian_blur_float32": _time_per_image(
            lambda v: color.gaussian_blur(v, tf.constant(1.0)), views
        ),
        "solarize": _time_per_image(color.solarize, views),
        "finish_views": _time_per_image(color.finish_views, views),
    }


def _mask_stage(seeds) -> float:
    """ms per mask, drawn per batch like the pipeline (one numpy_function call)."""
    import tensorflow as tf

    from siameseim_tf.data.masking import masks_from_seeds

    run = tf.function(lambda s: masks_from_seeds(s, 14, 118))
    run(seeds)
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        run(seeds)
        best = min(best, time.process_time() - start)
    return best / int(seeds.shape[0]) * 1e3


def profile(folder: str, args: argparse.Namespace) -> dict[str, float]:
    """CPU ms per image (or view) and per operation (intra-op parallelism 1).

    Each number includes ``tf.map_fn``'s per-element overhead (reading the element, ~0.05
    ms for a view) and a final sum (~0.04 ms); the ablation in ``main`` measures the stages
    inside the real pipeline.
    """
    import tensorflow as tf

    size = args.image_size
    files = sorted(os.listdir(folder))[:32]
    data = tf.constant([open(os.path.join(folder, f), "rb").read() for f in files])
    images = tf.stack([tf.io.decode_jpeg(d) for d in data])  # [32, H, W, 3], same size
    seeds = tf.stack([tf.zeros([32], tf.int64), tf.range(32, dtype=tf.int64)], 1)
    views = tf.random.uniform([32, 3, size, size], seed=1)  # channels first, like the pipeline
    decode = {
        f"decode_jpeg_ratio{r}": _time_per_image(
            lambda d, r=r: tf.io.decode_jpeg(d, ratio=r)[0, 0, 0], data
        )
        for r in (1, 2)
    }
    stages = decode | _fused_stages(images, seeds, size)
    stages |= _crop_stages(images, seeds, size) | _colour_stages(seeds, views)
    stages["block_mask_14x14_118_per_batch"] = _mask_stage(seeds)
    return {k: round(v, 3) for k, v in stages.items()}


def compare_libraries(image_size: int) -> dict[str, float]:
    """ms per batch of 32 x S^2 for the candidate implementations (one call, best of 5)."""
    import keras
    import keras_cv
    import tensorflow as tf

    from siameseim_tf.data import color

    x = tf.random.uniform([32, image_size, image_size, 3])
    x_cf = tf.transpose(x, [0, 3, 1, 2])  # our colour code works on channels-first views
    seeds = tf.stack([tf.zeros([32], tf.int64), tf.range(32, dtype=tf.int64)], 1)
    ours_params = lambda s: color.sample_color_params(s, color.VIEW1_PROBS)  # noqa: E731
    candidates = {
        "blur_ours_reflect_matmul_bf16": lambda: tf.map_fn(
            lambda v: color.gaussian_blur(v, tf.constant(1.0), tf.bfloat16), x_cf
        ),
        "blur_keras_cv_RandomGaussianBlur": keras_cv.layers.RandomGaussianBlur(13, (0.1, 2.0)),
        "blur_core_keras_RandomGaussianBlur": keras.layers.RandomGaussianBlur(
            factor=1.0, kernel_size=13, sigma=(0.1, 2.0), value_range=(0, 1)
        ),
        "jitter_gray_ours_torchvision_xla": lambda: tf.map_fn(
            lambda k: color._jitter_and_grayscale(
                tf.gather(x_cf, k), ours_params(tf.gather(seeds, k)), color.VIEW1_PROBS
            ),
            tf.range(32),
            fn_output_signature=tf.float32,
        ),
        "jitter_keras_cv_RandomColorJitter": keras_cv.layers.RandomColorJitter(
            (0, 1), 0.4, 0.4, 0.2, 0.1
        ),
        "jitter_core_keras_RandomColorJitter": keras.layers.RandomColorJitter(
            (0, 1), 0.4, 0.4, 0.2, 0.1
        ),
        "grayscale_keras_cv": keras_cv.layers.Grayscale(output_channels=3),
        "grayscale_ours": lambda: tf.map_fn(color.grayscale, x_cf),
    }
    out = {}
    for name, layer in candidates.items():
        is_layer = callable(getattr(layer, "call", None))
        fn = tf.function((lambda f=layer: f(x)) if is_layer else layer)
        fn()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        out[name] = round(best * 1e3, 2)
    return out


def ablation(folder: str, args: argparse.Namespace, full_cpu_rate: float) -> dict[str, float]:
    """CPU ms per image of the real tf.data pipeline, stage by stage (process CPU time)."""
    ms = {"full": 1e3 / full_cpu_rate}
    for stage in ("decode", "no_color"):
        ms[stage] = 1e3 / statistics.median(throughput(folder, args, args.cores, stage)[1])
    return {
        "decode_jpeg": round(ms["decode"], 2),
        "draws_flip_crop_resize_x2_normalize_mask": round(ms["no_color"] - ms["decode"], 2),
        "colour_pipelines_both_views": round(ms["full"] - ms["no_color"], 2),
        "total": round(ms["full"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8, help="batches per run")
    parser.add_argument("--warmup-batches", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-antialias", action="store_true")
    parser.add_argument("--interpolation", default="bicubic", choices=["bicubic", "bilinear"])
    parser.add_argument("--backend", default="auto", choices=["auto", "fused", "tf"])
    parser.add_argument("--matmul-dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--num-parallel-calls", type=int, default=0, help="0 = AUTOTUNE")
    parser.add_argument("--profile", action="store_true", help="per-stage ms per image")
    parser.add_argument("--compare-libraries", action="store_true")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from siameseim_tf.data import native

    tf.config.threading.set_intra_op_parallelism_threads(1)
    result = {"config": vars(args).copy()}
    with tempfile.TemporaryDirectory() as folder:
        make_jpegs(folder, args.num_images, args.height, args.width)
        rates, cpu_rates = throughput(folder, args, args.cores)
        median, cpu_median = statistics.median(rates), statistics.median(cpu_rates)
        result |= {
            "images_per_s": round(median, 1),
            "images_per_s_per_core": round(median / args.cores, 1),
            # images per second of process CPU time (all threads): robust to other load
            "images_per_cpu_s": round(cpu_median, 1),
            "runs_images_per_s": [round(r, 1) for r in rates],
            "runs_images_per_cpu_s": [round(r, 1) for r in cpu_rates],
            "cores": args.cores,
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "target_per_core": 300,
            "fused_kernel": native.status() if args.backend != "tf" else "not used",
        }
        if args.profile:
            result["ms_per_image_one_core"] = profile(folder, args)
            result["pipeline_ablation_cpu_ms_per_image"] = ablation(folder, args, cpu_median)
    if args.compare_libraries:
        result["ms_per_batch32"] = compare_libraries(args.image_size)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
