"""Flip + random resized crop with the exact box kept, and the relative position (method §1).

Everything here is stateless: randomness comes from a ``seed`` tensor of shape [2] (int32
or int64), so a view is a pure function of (image, seed).
"""

from __future__ import annotations

import math

import tensorflow as tf

# rel_pos columns, method §1 order: defined once, beside the embedding that reads them.
from siameseim_tf.layers.position import REL_POS_COLUMNS  # noqa: F401 - data re-exports it

CROP_TRIES = 10
RATIO = (3.0 / 4.0, 4.0 / 3.0)
# boxes columns: one row per view, ORIGINAL (unflipped) image pixels.
BOX_COLUMNS = ("top", "left", "height", "width", "flipped")


def sample_crop(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, crop_min: float) -> tf.Tensor:
    """torchvision ``RandomResizedCrop.get_params`` for one image, stateless.

    Up to 10 tries of (area scale U[crop_min, 1], log-uniform ratio in [3/4, 4/3]); the
    first try that fits wins, else the centre-crop fallback. Sizes are rounded half to
    even like Python's ``round``. Returns int32 [4] = (i, j, h, w) (top, left, height,
    width) in pixels of the image it is applied to.
    """
    u = tf.random.stateless_uniform([4, CROP_TRIES], seed, dtype=tf.float64)  # [4, 10]
    h_img = tf.cast(height, tf.float64)
    w_img = tf.cast(width, tf.float64)
    area = h_img * w_img
    target_area = area * (crop_min + (1.0 - crop_min) * u[0])  # [10]
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    aspect = tf.exp(log_lo + (log_hi - log_lo) * u[1])  # [10]
    w = tf.round(tf.sqrt(target_area * aspect))  # [10]
    h = tf.round(tf.sqrt(target_area / aspect))  # [10]
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)  # [10]
    # torch.randint(0, n + 1) == floor(U[0,1) * (n + 1))
    i = tf.floor(u[2] * (h_img - h + 1.0))
    j = tf.floor(u[3] * (w_img - w + 1.0))
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    # gather, not i[first]: a data-dependent slice would make XLA recompile per value
    tried = tf.cast(tf.gather(tf.stack([i, j, h, w]), first, axis=1), tf.int32)  # [4]

    # Fallback: centre crop with the ratio clamped into [3/4, 4/3].
    in_ratio = w_img / h_img
    fb_w = tf.where(
        in_ratio < RATIO[0], w_img, tf.where(in_ratio > RATIO[1], tf.round(h_img * RATIO[1]), w_img)
    )
    fb_h = tf.where(
        in_ratio < RATIO[0], tf.round(w_img / RATIO[0]), tf.where(in_ratio > RATIO[1], h_img, h_img)
    )
    fb_i = tf.math.floordiv(h_img - fb_h, 2.0)
    fb_j = tf.math.floordiv(w_img - fb_w, 2.0)
    fallback = tf.cast(tf.stack([fb_i, fb_j, fb_h, fb_w]), tf.int32)  # [4]
    return tf.where(tf.reduce_any(fits), tried, fallback)


def flipped_crop_resize(
    image: tf.Tensor,
    box: tf.Tensor,
    flip: tf.Tensor,
    size: int,
    antialias: bool = True,
    method: str = "bicubic",
) -> tf.Tensor:
    """Crop ``box`` (i, j, h, w) of the image flipped iff ``flip``, resize to size.

    ``method`` "bicubic" (method §7) or "bilinear", with PIL-like antialiasing when downscaling
    iff ``antialias`` (``tf.image.resize``; the box is exact whatever the filter).

    image: uint8 [H, W, 3]; box: int32 [4] in the (possibly flipped) image; flip: bool [].
    Returns float32 [size, size, 3] in [0, 1]. Instead of mirroring the whole image we crop
    the mirrored region of the original and mirror the (small) result; bicubic resampling
    is symmetric, so this equals flip-then-crop up to float rounding.
    """
    width = tf.shape(image)[1]
    i, j, h, w = box[0], box[1], box[2], box[3]
    left = tf.where(flip, width - j - w, j)  # left edge in the original image
    crop = image[i : i + h, left : left + w]  # [h, w, 3]
    view = tf.image.resize(crop, [size, size], method=method, antialias=antialias)
    view = tf.cond(flip, lambda: tf.reverse(view, axis=[1]), lambda: view)  # [S, S, 3]
    return tf.clip_by_value(view * (1.0 / 255.0), 0.0, 1.0)


def relative_position(
    box1: tf.Tensor, box2: tf.Tensor, flip1: tf.Tensor, flip2: tf.Tensor, width: tf.Tensor
) -> tf.Tensor:
    """The six numbers of method §1 (view 2 in view 1's frame). Boxes int32 [4]; float32 [6]."""
    b1 = tf.cast(box1, tf.float64)
    b2 = tf.cast(box2, tf.float64)
    i1, j1, h1, w1 = b1[0], b1[1], b1[2], b1[3]
    i2, j2, h2, w2 = b2[0], b2[1], b2[2], b2[3]
    rel_flip = tf.cast(tf.math.logical_xor(flip1, flip2), tf.float64)
    rel = tf.stack(
        [
            (i2 - i1) / h1,
            (j2 - j1) / w1,
            h2 / h1,
            w2 / w1,
            rel_flip,
            (tf.cast(width, tf.float64) - j1 - j2) / w1,
        ]
    )
    return tf.cast(rel, tf.float32)


def original_box(box: tf.Tensor, flip: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Box row of ``boxes``: float32 [5] = (top, left, height, width, flipped), where
    top/left/height/width are pixels of the ORIGINAL (unflipped) image. flipped = 1 means the
    view shows that region mirrored: view column fraction u <-> original x = left + (1 - u) * w.
    """
    i, j, h, w = box[0], box[1], box[2], box[3]
    left = tf.where(flip, width - j - w, j)
    return tf.cast(tf.stack([i, left, h, w, tf.cast(flip, tf.int32)]), tf.float32)
