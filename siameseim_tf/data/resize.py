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

import functools
import math

import tensorflow as tf

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


def resize_weights(
    in_size: tf.Tensor,
    out_size: int,
    interpolation: str = "bicubic",
    antialias: bool = True,
    padded_size: tf.Tensor | None = None,
) -> tf.Tensor:
    """PIL's ``precompute_coeffs``: float32 [out_size, padded_size], rows sum to 1.

    Output pixel ``o`` has centre ``c = (o + 0.5) * in / out`` in input pixels; input
    pixel ``x`` gets ``filter((x + 0.5 - c) / s)`` with ``s = max(in / out, 1)`` if
    antialiasing (else 1), for ``x`` in PIL's window ``[floor(c - support * s + 0.5),
    floor(c + support * s + 0.5))`` clipped to the image, then the row is normalised.
    The taps are computed compactly ([out, taps]) and scattered into the dense matrix:
    evaluating the filter on the whole [out, in] grid cost more than the products.
    Columns from ``in_size`` to ``padded_size`` (default ``in_size``) are zero.
    """
    kernel = {"bicubic": _bicubic, "bilinear": _triangle}[interpolation]
    n = tf.cast(in_size, tf.float32)
    scale = n / out_size
    stretch = tf.maximum(scale, 1.0) if antialias else tf.constant(1.0)
    support = FILTER_SUPPORT[interpolation] * stretch
    center = (tf.range(out_size, dtype=tf.float32) + 0.5) * scale  # [out]
    lo = tf.maximum(tf.floor(center - support + 0.5), 0.0)  # [out], first tap
    hi = tf.minimum(tf.floor(center + support + 0.5), n)  # [out], one past the last
    taps = tf.cast(tf.math.ceil(2.0 * support), tf.int32) + 1  # >= max(hi - lo)
    x = lo[:, None] + tf.range(taps, dtype=tf.float32)[None]  # [out, taps]
    w = tf.where(x < hi[:, None], kernel((x + 0.5 - center[:, None]) / stretch), 0.0)
    w = w / tf.reduce_sum(w, axis=1, keepdims=True)  # [out, taps]
    rows = tf.broadcast_to(tf.range(out_size)[:, None], tf.shape(w))
    cols = tf.minimum(tf.cast(x, tf.int32), in_size - 1)  # taps past the edge weigh 0
    index = tf.stack([rows, cols], axis=-1)  # [out, taps, 2]
    width = in_size if padded_size is None else padded_size
    return tf.scatter_nd(index, w, tf.stack([out_size, width]))  # duplicates add 0


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16_matmul() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def matmul_dtype(name: str = "auto") -> tf.DType:
    """ "auto" -> bfloat16 where the CPU multiplies it natively (AMX / AVX512-BF16), else
    float32 (bfloat16 is emulated, slowly, elsewhere)."""
    if name not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype {name!r} not in {MATMUL_DTYPES}")
    if name == "auto":
        return tf.bfloat16 if _cpu_has_bf16_matmul() else tf.float32
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
    box: tf.Tensor,
    flip: tf.Tensor,
    size: int,
    interpolation: str = "bicubic",
    antialias: bool = True,
    dtype: tf.DType = tf.float32,
) -> tf.Tensor:
    """Region ``box`` of the image (flipped iff ``flip``) resized to ``size``, in [0, 1].

    image: uint8 [H, W, 3]; box: int32 [4] = (i, j, h, w) in the flipped frame when
    ``flip``; flip: bool []. Returns float32 [3, size, size] (channels first). The flip is
    a reversal of the column weights (no pixel is moved).
    """
    width = tf.shape(image)[1]
    i, j, h, w = box[0], box[1], box[2], box[3]
    left = tf.where(flip, width - j - w, j)  # left edge in the original image
    hb, wb = bucket(h), bucket(w)
    crop = tf.pad(image[i : i + h, left : left + w], [[0, hb - h], [0, wb - w], [0, 0]])
    rows = resize_weights(h, size, interpolation, antialias, hb)  # [S, hb]
    cols = resize_weights(w, size, interpolation, antialias, wb)  # [S, wb]
    cols = tf.where(flip, tf.reverse(cols, axis=[0]), cols)
    x = tf.reshape(tf.cast(crop, dtype), [hb, wb * 3])  # [hb, wb*3]
    y = tf.matmul(tf.cast(rows, dtype), x)  # [S, wb*3]
    y = tf.transpose(tf.reshape(y, [size, wb, 3]), [2, 0, 1])  # [3, S, wb]
    y = tf.matmul(tf.reshape(y, [3 * size, wb]), tf.cast(cols, dtype), transpose_b=True)
    # 1/255 applied in float32 (in bfloat16 weights it would bias the gain by up to 0.4 %);
    # bicubic overshoots, PIL clips to the pixel range
    y = tf.reshape(tf.cast(y, tf.float32), [3, size, size]) * (1.0 / 255.0)
    return tf.clip_by_value(y, 0.0, 1.0)
