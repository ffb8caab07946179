"""The 15 image ops of timm's increasing RandAugment, on uint8 [H, W, 3], with PIL's arithmetic.

Each op is a pure TensorFlow function of the image and explicit parameters (no randomness),
so it traces into ``tf.data`` / ``tf.function`` graphs; :mod:`siameseim_tf.data.randaugment`
draws the parameters. The rounding is Pillow's (checked against Pillow 13 in
tests/data/test_finetune_augment.py):

* ImageEnhance (color, contrast, brightness, sharpness) is ``Image.blend(degenerate, image,
  factor)``, which truncates ``d + factor * (x - d)`` after clipping to [0, 255];
* ``convert("L")`` is the 16.16 fixed-point ITU-R 601-2 luma, rounded half up;
* the SMOOTH filter behind sharpness rounds half up and leaves the 1-pixel border as it was;
* ``Image.transform(size, AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor)`` reads output
  pixel (x, y) from input (a x + b y + c, d x + e y + f) in PIL's continuous coordinates (pixel
  i covers [i, i + 1]), clamps the bilinear neighbours at the edges, truncates the value, and
  leaves ``fillcolor`` where the source point falls outside [0, W) x [0, H).
"""

from __future__ import annotations

import math

import tensorflow as tf

LUMA_WEIGHTS_Q16 = (19595, 38470, 7471)  # PIL convert("L"): 0.299, 0.587, 0.114 times 2**16
SMOOTH_KERNEL = ((1, 1, 1), (1, 5, 1), (1, 1, 1))  # PIL ImageFilter.SMOOTH, divided by 13

Fill = tf.Tensor | tuple[int, int, int]  # RGB levels for the area a geometric op uncovers
Scalar = tf.Tensor | float


def as_float64(value: Scalar) -> tf.Tensor:
    """float64 tensor; Python numbers go straight to float64 (``tf.cast`` would pass float32)."""
    if isinstance(value, tf.Tensor | tf.Variable):
        return tf.cast(value, tf.float64)
    return tf.convert_to_tensor(value, tf.float64)


def ieee_divide(numerator: tf.Tensor, denominator: Scalar) -> tf.Tensor:
    """numerator / denominator, correctly rounded (for denominator != 0).

    In graphs, grappler rewrites ``x / constant`` as ``x * (1 / constant)``, which rounds
    differently; DivNoNan is left alone.
    """
    if isinstance(denominator, tf.Tensor | tf.Variable):
        denominator = tf.cast(denominator, numerator.dtype)
    else:  # straight to the numerator's dtype: tf.cast would pass through float32
        denominator = tf.convert_to_tensor(denominator, numerator.dtype)
    return tf.math.divide_no_nan(numerator, denominator)


def _as_uint8(values: tf.Tensor) -> tf.Tensor:
    """Float values already in [0, 255] with integer levels -> uint8."""
    return tf.cast(values, tf.uint8)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """PIL ``Image.blend(degenerate, image, factor)``: clip to [0, 255], then truncate."""
    d = tf.cast(degenerate, tf.float32)  # [H, W, 3]
    x = tf.cast(image, tf.float32)
    mixed = d + tf.cast(factor, tf.float32) * (x - d)
    return _as_uint8(tf.floor(tf.clip_by_value(mixed, 0.0, 255.0)))


def luma(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] -> int32 [H, W]: PIL ``convert("L")``, bit-exact."""
    weights = tf.constant(LUMA_WEIGHTS_Q16, tf.int32)
    weighted = tf.reduce_sum(tf.cast(image, tf.int32) * weights, axis=-1)  # [H, W]
    return tf.bitwise.right_shift(weighted + 2**15, 16)


def _lut_per_channel(image: tf.Tensor, tables: tf.Tensor) -> tf.Tensor:
    """Applies int32 [3, 256] look-up tables, one per channel."""
    flat_tables = tf.reshape(tables, [-1])  # [768]
    index = tf.cast(image, tf.int32) + tf.range(3) * 256  # [H, W, 3]
    return _as_uint8(tf.gather(flat_tables, index))


def _channel_histograms(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] -> int32 [3, 256] pixel counts per channel."""
    index = tf.reshape(tf.cast(image, tf.int32) + tf.range(3) * 256, [-1])
    return tf.reshape(tf.math.bincount(index, minlength=768, maxlength=768), [3, 256])


# ---- pixel ops -------------------------------------------------------------------------------


def invert(image: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageOps.invert``: 255 - x."""
    return 255 - tf.convert_to_tensor(image)


def posterize(image: tf.Tensor, bits: Scalar) -> tf.Tensor:
    """Keeps the ``bits`` (0..8) most significant bits. bits = 0 gives black.

    Older Pillow turned bits = 0 black; Pillow 13 raises ValueError for it. timm's
    PosterizeIncreasing asks for 0 bits at magnitude 10, so the older result is kept here.
    """
    dropped = 8 - tf.cast(tf.clip_by_value(tf.cast(bits, tf.float32), 0.0, 8.0), tf.int32)
    mask = tf.bitwise.invert(tf.bitwise.left_shift(1, dropped) - 1)  # int32, ~(2**dropped - 1)
    return _as_uint8(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask))


def solarize(image: tf.Tensor, threshold: Scalar) -> tf.Tensor:
    """PIL ``ImageOps.solarize``: levels >= threshold are inverted (threshold 256: no change)."""
    image = tf.convert_to_tensor(image)
    below = tf.cast(image, tf.float32) < tf.cast(threshold, tf.float32)
    return tf.where(below, image, 255 - image)


def solarize_add(image: tf.Tensor, addition: Scalar, threshold: Scalar = 128) -> tf.Tensor:
    """timm's ``solarize_add``: levels below ``threshold`` get ``addition`` added, capped at 255."""
    x = tf.cast(image, tf.float32)
    raised = tf.minimum(x + tf.cast(addition, tf.float32), 255.0)
    return _as_uint8(tf.where(x < tf.cast(threshold, tf.float32), raised, x))


def auto_contrast(image: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageOps.autocontrast`` (no cutoff): stretches each channel's [lo, hi] to [0, 255].

    A channel with a single level is unchanged. Float64 as in PIL's Python table.
    """
    x = tf.cast(image, tf.float64)  # [H, W, 3]
    lo = tf.reduce_min(x, axis=[0, 1])  # [3]
    hi = tf.reduce_max(x, axis=[0, 1])
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    offset = -lo * scale
    stretched = tf.clip_by_value(tf.math.floor(x * scale + offset), 0.0, 255.0)
    return tf.where(hi > lo, _as_uint8(stretched), image)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageOps.equalize``: per channel, the level table of Pillow's histogram algorithm.

    step = (pixels - count of the highest level present) // 255; level i maps to
    (step // 2 + pixels below i) // step, capped at 255; step = 0 leaves the channel as is.
    """
    histograms = _channel_histograms(image)  # [3, 256]
    levels = tf.range(256)
    highest = tf.reduce_max(tf.where(histograms > 0, levels, -1), axis=1)  # [3]
    highest_count = tf.gather(histograms, highest, batch_dims=1)  # [3]
    total = tf.reduce_sum(histograms, axis=1)
    step = (total - highest_count) // 255  # [3]
    below = tf.cumsum(histograms, axis=1, exclusive=True)  # [3, 256]
    safe_step = tf.maximum(step, 1)[:, None]
    tables = tf.minimum((safe_step // 2 + below) // safe_step, 255)
    tables = tf.where(step[:, None] > 0, tables, levels[None, :])
    return _lut_per_channel(image, tables)


# ---- ImageEnhance ops --------------------------------------------------------------------------


def color(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """PIL ``ImageEnhance.Color``: blend with the grayscale image (0: gray, 1: unchanged)."""
    gray = tf.broadcast_to(luma(image)[..., None], tf.shape(image))  # [H, W, 3]
    return _blend(gray, image, factor)


def contrast(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """PIL ``ImageEnhance.Contrast``: blend with a flat image at the rounded mean luma."""
    mean = tf.reduce_mean(tf.cast(luma(image), tf.float64))
    flat = tf.fill(tf.shape(image), tf.floor(mean + 0.5))  # [H, W, 3]
    return _blend(flat, image, factor)


def brightness(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """PIL ``ImageEnhance.Brightness``: blend with black, i.e. trunc(factor * x)."""
    return _blend(tf.zeros_like(image), image, factor)


def smooth(image: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageFilter.SMOOTH``: 3x3 kernel / 13, rounded half up; border pixels unchanged."""
    x = tf.cast(image, tf.float32)  # [H, W, 3]
    kernel = tf.constant(SMOOTH_KERNEL, tf.float32)[:, :, None, None]
    kernel = tf.tile(kernel, [1, 1, 3, 1])  # [3, 3, 3, 1]
    sums = tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], "SAME")[0]  # [H, W, 3]
    smoothed = tf.clip_by_value(tf.floor(ieee_divide(sums, 13.0) + 0.5), 0.0, 255.0)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
    interior = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)  # [H, W]
    return tf.where(interior[..., None], _as_uint8(smoothed), image)


def sharpness(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """PIL ``ImageEnhance.Sharpness``: blend with :func:`smooth` (0: smoothed, 2: sharpened)."""
    return _blend(smooth(image), image, factor)


# ---- geometric ops -------------------------------------------------------------------------


def affine(image: tf.Tensor, coefficients: tuple[Scalar, ...], fill: Fill) -> tf.Tensor:
    """PIL ``Image.transform(size, AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor=fill)``.

    Output pixel (x, y) samples the input at (a (x + .5) + b (y + .5) + c, d (x + .5) +
    e (y + .5) + f), pixel i's value sitting at i + .5. Points outside [0, W) x [0, H) get
    ``fill``; inside, the two neighbours per axis are clamped to the image. The arithmetic is
    PIL's, in float64 and in its order, because PIL truncates the interpolated value: the
    float32 coordinates of ImageProjectiveTransformV3 moved ~3 % of the pixels by one level.
    """
    a, b, c, d, e, f = (as_float64(v) for v in coefficients)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    cols = tf.range(tf.cast(width, tf.float64))[None, :] + 0.5  # [1, W], PIL pixel centres
    rows = tf.range(tf.cast(height, tf.float64))[:, None] + 0.5  # [H, 1]
    source_x = a * cols + b * rows + c  # [H, W]
    source_y = d * cols + e * rows + f
    inside = (source_x >= 0.0) & (source_x < tf.cast(width, tf.float64))
    inside &= (source_y >= 0.0) & (source_y < tf.cast(height, tf.float64))  # [H, W]

    x, y = source_x - 0.5, source_y - 0.5  # to pixel-index coordinates
    x0, y0 = tf.floor(x), tf.floor(y)
    dx, dy = (x - x0)[..., None], (y - y0)[..., None]  # [H, W, 1]
    # Clamped so that far-away (filled) points still index safely.
    x0 = tf.cast(tf.clip_by_value(x0, -1.0, tf.cast(width, tf.float64)), tf.int32)
    y0 = tf.cast(tf.clip_by_value(y0, -1.0, tf.cast(height, tf.float64)), tf.int32)
    left, right = tf.clip_by_value(x0, 0, width - 1), tf.clip_by_value(x0 + 1, 0, width - 1)
    top, bottom = tf.clip_by_value(y0, 0, height - 1), tf.clip_by_value(y0 + 1, 0, height - 1)
    pixels = tf.reshape(tf.cast(image, tf.float64), [-1, 3])  # [H * W, 3]

    def at(row: tf.Tensor, col: tf.Tensor) -> tf.Tensor:
        return tf.gather(pixels, row * width + col)  # [H, W, 3]

    upper_left, upper_right = at(top, left), at(top, right)
    lower_left, lower_right = at(bottom, left), at(bottom, right)
    upper = upper_left + (upper_right - upper_left) * dx
    lower = lower_left + (lower_right - lower_left) * dx
    value = tf.floor(upper + (lower - upper) * dy)  # values in [0, 255]: PIL's (UINT8) cast
    fill_color = tf.cast(tf.convert_to_tensor(fill), tf.float64)  # [3]
    return _as_uint8(tf.where(inside[..., None], value, fill_color))


def _veltkamp_split(value):
    """value = high + low exactly, each half with <= 26 significant bits (float64)."""
    scaled = 134217729.0 * value  # 2**27 + 1
    high = scaled - (scaled - value)
    return high, value - high


_TEN15_HIGH, _TEN15_LOW = _veltkamp_split(1e15)


def _round15(value: tf.Tensor) -> tf.Tensor:
    """Python's ``round(value, 15)`` for float64 |value| <= 1, as ``Image.rotate`` applies to
    its cosine and sine.

    value * 1e15 is itself rounded; on a .5 tie of that product, the sign of its rounding
    error (exact, from the split halves) says on which side the exact product lies.
    """
    scaled = value * 1e15
    high, low = _veltkamp_split(value)
    error = (high * _TEN15_HIGH - scaled) + high * _TEN15_LOW + low * _TEN15_HIGH
    error += low * _TEN15_LOW  # exact product - scaled
    nearest = tf.round(scaled)  # half to even: Python's rule for exact ties
    tie = scaled - tf.floor(scaled) == 0.5
    towards_exact = tf.where(error > 0, tf.math.ceil(scaled), tf.floor(scaled))
    return ieee_divide(tf.where(tie & (error != 0), towards_exact, nearest), 1e15)


def rotate(image: tf.Tensor, degrees: Scalar, fill: Fill) -> tf.Tensor:
    """PIL ``Image.rotate(degrees, BILINEAR, fillcolor=fill)``: counter-clockwise about the
    centre (W / 2, H / 2), same size."""
    # PIL first takes degrees % 360, which changes the last bits of the cosine and sine.
    angle = -tf.math.floormod(as_float64(degrees), 360.0) * (math.pi / 180.0)
    cos, sin = _round15(tf.cos(angle)), _round15(tf.sin(angle))
    centre_x = tf.cast(tf.shape(image)[1], tf.float64) / 2.0
    centre_y = tf.cast(tf.shape(image)[0], tf.float64) / 2.0
    offset_x = cos * -centre_x + sin * -centre_y + centre_x
    offset_y = -sin * -centre_x + cos * -centre_y + centre_y
    return affine(image, (cos, sin, offset_x, -sin, cos, offset_y), fill)


def shear_x(image: tf.Tensor, factor: Scalar, fill: Fill) -> tf.Tensor:
    """timm's ``shear_x``: output (x, y) reads input (x + factor y, y)."""
    return affine(image, (1.0, factor, 0.0, 0.0, 1.0, 0.0), fill)


def shear_y(image: tf.Tensor, factor: Scalar, fill: Fill) -> tf.Tensor:
    """timm's ``shear_y``: output (x, y) reads input (x, factor x + y)."""
    return affine(image, (1.0, 0.0, 0.0, factor, 1.0, 0.0), fill)


def translate_x(image: tf.Tensor, pixels: Scalar, fill: Fill) -> tf.Tensor:
    """timm's ``translate_x_abs``: output x reads input x + pixels (content moves left)."""
    return affine(image, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill)


def translate_y(image: tf.Tensor, pixels: Scalar, fill: Fill) -> tf.Tensor:
    """timm's ``translate_y_abs``: output y reads input y + pixels (content moves up)."""
    return affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill)
