"""Crop + flip + resize as two matrix products with PIL's resampling weights.

PIL (which torchvision's ``RandomResizedCrop`` calls on PIL images) resizes separably: each
output pixel is a normalised weighted sum of input pixels, the weights being the filter
(bicubic a = -0.5, or the bilinear triangle) stretched by the downscaling factor
(antialiasing) and cut to the image. Writing the two passes as dense matrix products lets
oneDNN do the work: with bfloat16 operands (exact for uint8 pixels; 8 significant bits for
the weights, the precision PIL itself keeps by rounding to uint8 after each pass) a
335 x 335 -> 224 x 224 view costs ~0.5 ms on one core instead of ~1.5 ms for
``tf.image.resize(..., antialias=True)`` (benchmarks/data_pipeline.py --profile).

Output is channels-first ``[3, S, S]`` so that the colour pipeline (``color.py``) works on
contiguous planes and the Gaussian blur is two more matrix products without transposes.
"""

from __future__ import annotations

import math

import tensorflow as tf

from siameseim_tf.hardware import cpu_has_fast_bf16

FILTER_SUPPORT = {"bicubic": 2.0, "bilinear": 1.0}
MATMUL_DTYPES = ("auto", "bfloat16", "float32")


def _bicubic(x: tf.Tensor, a: float = -0.5) -> tf.Tensor:
    """Keys' cubic convolution kernel (PIL's ``bicubic_filter``, a = -0.5)."""
    x = tf.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _triangle(x: tf.Tensor) -> tf.Tensor:
    return tf.maximum(1.0 - tf.abs(x), 0.0)


def _compact_weights(
    in_sizes: tf.Tensor,
    out_size: int,
    interpolation: str,
    antialias: bool,
    taps: int | tf.Tensor,
    dtype: tf.DType,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The nonzero band of each matrix: weights [K, out, taps] and their columns (int32)."""
    kernel = {"bicubic": _bicubic, "bilinear": _triangle}[interpolation]
    n = tf.cast(in_sizes, tf.float32)[:, None]  # [K, 1]
    scale = n / out_size
    stretch = tf.maximum(scale, 1.0) if antialias else tf.ones_like(scale)
    support = FILTER_SUPPORT[interpolation] * stretch  # [K, 1]
    center = (tf.range(out_size, dtype=tf.float32)[None] + 0.5) * scale  # [K, out]
    lo = tf.maximum(tf.floor(center - support + 0.5), 0.0)  # first tap
    hi = tf.minimum(tf.floor(center + support + 0.5), n)  # one past the last
    x = lo[..., None] + tf.range(taps, dtype=tf.float32)  # [K, out, taps]
    w = tf.where(x < hi[..., None], kernel((x + 0.5 - center[..., None]) / stretch[..., None]), 0.0)
    w = tf.cast(w / tf.reduce_sum(w, axis=2, keepdims=True), dtype)
    cols = tf.minimum(tf.cast(x, tf.int32), tf.cast(in_sizes, tf.int32)[:, None, None] - 1)
    return w, cols  # taps past the edge have weight 0 (their clipped columns add nothing)


def resize_weight_matrices(
    in_sizes: tf.Tensor,
    out_size: int,
    interpolation: str = "bicubic",
    antialias: bool = True,
    padded_sizes: tf.Tensor | None = None,
    dtype: tf.DType = tf.float32,
) -> list[tf.Tensor]:
    """PIL's ``precompute_coeffs`` for K input sizes at once: K matrices [out_size, padded_k].

    Output pixel ``o`` has centre ``c = (o + 0.5) * in / out`` in input pixels; input
    pixel ``x`` gets ``filter((x + 0.5 - c) / s)`` with ``s = max(in / out, 1)`` if
    antialiasing (else 1), for ``x`` in PIL's window ``[floor(c - support * s + 0.5),
    floor(c + support * s + 0.5))`` clipped to the image, then the row is normalised.
    Columns from ``in_size`` to ``padded_size`` (default ``in_size``) are zero.

    in_sizes: int32 [K] (K static). The taps are computed compactly ([K, out, taps]) and
    scattered into the dense matrices: evaluating the filter on the whole [out, in] grid,
    or one size at a time, cost more than the matrix products.
    """
    in_sizes = tf.cast(in_sizes, tf.int32)
    stretch = tf.cast(tf.reduce_max(in_sizes), tf.float32) / out_size
    stretch = tf.maximum(stretch, 1.0) if antialias else tf.constant(1.0)
    needed = tf.cast(tf.math.ceil(2.0 * FILTER_SUPPORT[interpolation] * stretch), tf.int32) + 1
    # (An XLA-compiled band with a few static widths picked by tf.switch_case was slower:
    # 0.74 vs 0.50 ms per 4 matrices, the switch and launch cost more than they save.)
    w, cols = _compact_weights(in_sizes, out_size, interpolation, antialias, needed, dtype)
    rows = tf.broadcast_to(tf.range(out_size)[:, None], tf.shape(cols)[1:])  # [out, taps]
    widths = in_sizes if padded_sizes is None else padded_sizes
    return [
        tf.scatter_nd(tf.stack([rows, cols[k]], -1), w[k], tf.stack([out_size, widths[k]]))
        for k in range(in_sizes.shape[0])  # duplicate (clipped) indices add 0
    ]


def resize_weights(
    in_size: tf.Tensor,
    out_size: int,
    interpolation: str = "bicubic",
    antialias: bool = True,
    padded_size: tf.Tensor | None = None,
) -> tf.Tensor:
    """One matrix of :func:`resize_weight_matrices`: float32 [out_size, padded_size]."""
    padded = None if padded_size is None else tf.reshape(padded_size, [1])
    sizes = tf.reshape(tf.cast(in_size, tf.int32), [1])
    return resize_weight_matrices(sizes, out_size, interpolation, antialias, padded)[0]


def matmul_dtype(name: str = "auto") -> tf.DType:
    """ "auto" -> bfloat16 where the CPU multiplies it with AMX, else float32 (slower or
    emulated bfloat16 elsewhere)."""
    if name not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype {name!r} not in {MATMUL_DTYPES}")
    if name == "auto":
        return tf.bfloat16 if cpu_has_fast_bf16() else tf.float32
    return tf.as_dtype(name)


def bucket(n: tf.Tensor) -> tf.Tensor:
    """n rounded up to a multiple of 32 (64 from 512, 128 from 1024, ...): 8 sizes per octave.

    oneDNN builds (JIT-compiles) a kernel for every new matrix shape, ~3 ms per view, which
    random crops would pay nearly every time; zero-padding crops to a few sizes keeps its
    primitive cache warm for ~10 % more arithmetic.
    """
    step = tf.maximum(32, tf.bitwise.left_shift(1, _log2_floor(n) - 3))
    return (n + step - 1) // step * step


def _log2_floor(n: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.math.floor(tf.math.log(tf.cast(n, tf.float32)) / math.log(2.0)), n.dtype)


def crop_resize(
    image: tf.Tensor,
    boxes: tf.Tensor,
    flips: tf.Tensor,
    size: int,
    interpolation: str = "bicubic",
    antialias: bool = True,
    dtype: tf.DType = tf.float32,
) -> list[tf.Tensor]:
    """Regions ``boxes`` of the image (each flipped iff ``flips``) resized to ``size``.

    image: uint8 [H, W, 3]; boxes: int32 [K, 4] = (i, j, h, w), each in the flipped frame
    when its flip is set; flips: bool [K]. Returns K float32 [3, size, size] views in
    [0, 1] (channels first). A flip is a reversal of the column weights (no pixel moves).
    """
    count = boxes.shape[0]
    width = tf.shape(image)[1]
    heights, widths = boxes[:, 2], boxes[:, 3]
    lefts = tf.where(flips, width - boxes[:, 1] - widths, boxes[:, 1])  # in the original
    sizes = tf.concat([heights, widths], 0)  # [2K]: rows of every view, then columns
    padded = bucket(sizes)
    weights = resize_weight_matrices(sizes, size, interpolation, antialias, padded, dtype)
    views = []
    for k in range(count):
        i, left, h, w = boxes[k, 0], lefts[k], heights[k], widths[k]
        hb, wb = padded[k], padded[count + k]
        crop = image[i : i + h, left : left + w]  # [h, w, 3]
        crop = tf.pad(crop, [[0, hb - h], [0, wb - w], [0, 0]])  # [hb, wb, 3]
        cols = weights[count + k]  # [S, wb]
        cols = tf.where(flips[k], tf.reverse(cols, axis=[0]), cols)
        x = tf.reshape(tf.cast(crop, dtype), [hb, wb * 3])  # [hb, wb*3]
        y = tf.matmul(weights[k], x)  # [S, wb*3]
        y = tf.transpose(tf.reshape(y, [size, wb, 3]), [2, 0, 1])  # [3, S, wb]
        y = tf.matmul(tf.reshape(y, [3 * size, wb]), cols, transpose_b=True)  # [3S, S]
        # 1/255 in float32 (in bfloat16 weights it would bias the gain by up to 0.4 %);
        # bicubic overshoots, PIL clips to the pixel range
        y = tf.reshape(tf.cast(y, tf.float32), [3, size, size]) * (1.0 / 255.0)
        views.append(tf.clip_by_value(y, 0.0, 1.0))
    return views
