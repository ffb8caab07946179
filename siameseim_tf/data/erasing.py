"""Stateless random erasing of the fine-tuning recipe: timm's ``RandomErasing(0.25, mode="pixel")``.

Applied to a float32 image after ImageNet normalisation, as timm does. With probability
``probability`` one box (``max_count=1``) is replaced by per-pixel, per-channel N(0, 1) noise.
The box follows timm's search: up to ``attempts`` draws of an area fraction ~ U[min_area,
max_area] and a log-uniform aspect ratio in [min_aspect, max_aspect]; h = round(sqrt(area *
aspect)), w = round(sqrt(area / aspect)) (half to even, like Python's ``round``); the first
draw with h < H and w < W is used, at a uniform top-left corner; if none fits, nothing is
erased. All draws come from the int [2] ``seed`` (``tf.random.stateless_*``).
"""

from __future__ import annotations

import math

import tensorflow as tf


def erasing_box(
    seed: tf.Tensor,
    height: tf.Tensor | int,
    width: tf.Tensor | int,
    *,
    probability: float = 0.25,
    min_area: float = 0.02,
    max_area: float = 1 / 3,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    attempts: int = 10,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The box :func:`random_erasing` erases: (erased bool, top, left, box_h, box_w) int32.

    ``box_h = box_w = 0`` when nothing is erased (the coin said no, or no draw fit).
    """
    coin_seed, area_seed, aspect_seed, corner_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )  # 4 x [2]
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    image_area = tf.cast(height * width, tf.float32)
    max_aspect = max_aspect or 1.0 / min_aspect
    log_aspect_range = (math.log(min_aspect), math.log(max_aspect))

    area = tf.random.stateless_uniform([attempts], area_seed, min_area, max_area) * image_area
    aspect = tf.exp(tf.random.stateless_uniform([attempts], aspect_seed, *log_aspect_range))
    box_hs = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)  # [attempts]
    box_ws = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (box_hs < height) & (box_ws < width)  # [attempts]
    first_fit = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)  # 0 if none fits

    coin = tf.random.stateless_uniform([], coin_seed)
    erased = (coin < probability) & tf.reduce_any(fits)  # timm skips when random() > p
    box_h = tf.where(erased, box_hs[first_fit], 0)
    box_w = tf.where(erased, box_ws[first_fit], 0)
    corner = tf.random.stateless_uniform([2], corner_seed)  # [2], for randint(0, H - h) etc.
    free = tf.stack([height - box_h, width - box_w])  # [2]
    top_left = tf.minimum(tf.cast(corner * tf.cast(free + 1, tf.float32), tf.int32), free)
    return erased, top_left[0], top_left[1], box_h, box_w


def random_erasing(
    image: tf.Tensor,
    seed: tf.Tensor,
    *,
    probability: float = 0.25,
    min_area: float = 0.02,
    max_area: float = 1 / 3,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    attempts: int = 10,
) -> tf.Tensor:
    """timm's RandomErasing, mode "pixel", one box, on a normalised float [H, W, C] image.

    ``seed``: int [2]. Returns the image with the box of :func:`erasing_box` (drawn from a
    split of ``seed``) replaced by standard normal noise of the image's dtype.
    """
    image = tf.convert_to_tensor(image)
    box_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)  # [3]: H, W, C
    erased, top, left, box_h, box_w = erasing_box(
        box_seed,
        shape[0],
        shape[1],
        probability=probability,
        min_area=min_area,
        max_area=max_area,
        min_aspect=min_aspect,
        max_aspect=max_aspect,
        attempts=attempts,
    )

    def erase() -> tf.Tensor:
        rows = tf.range(shape[0])[:, None]  # [H, 1]
        cols = tf.range(shape[1])[None, :]  # [1, W]
        in_box = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
        noise = tf.random.stateless_normal(shape, noise_seed, dtype=image.dtype)  # [H, W, C]
        return tf.where(in_box[..., None], noise, image)

    # The noise is drawn only for the erased quarter of the images.
    return tf.cond(erased, erase, lambda: tf.identity(image))
