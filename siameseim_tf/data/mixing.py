"""Label smoothing, mixup and cutmix on a batch (method §7), stateless.

Semantics of timm's ``Mixup`` in its default batch mode (what the MAE / SiameseIM
fine-tuning scripts use): one lambda per batch, the partner of image b is image B-1-b
(the batch reversed), cutmix or mixup chosen per batch with probability ``switch_prob``
when both are on, the cutmix box of side ``int(S * sqrt(1 - lam))`` centred at a uniform
pixel and clipped to the image, lambda corrected to the area actually pasted, and targets
mixed after smoothing (off value ``smoothing / C``). Randomness comes from a seed [2], so
a batch is mixed the same way on every run; under a distribution strategy each replica
mixes its own batch (as timm does per GPU).
"""

from __future__ import annotations

import tensorflow as tf


def smooth_one_hot(labels: tf.Tensor, num_classes: int, smoothing: float) -> tf.Tensor:
    """int [B] -> float32 [B, C]: 1 - smoothing + smoothing / C on the class, else
    smoothing / C (timm's ``mixup_target`` values)."""
    off = smoothing / num_classes
    return tf.one_hot(labels, num_classes, on_value=1.0 - smoothing + off, off_value=off)


def _beta(seed: tf.Tensor, alpha: float) -> tf.Tensor:
    """One Beta(alpha, alpha) sample from two stateless gammas."""
    g = tf.random.stateless_gamma([2], seed, alpha=alpha, dtype=tf.float32)
    return g[0] / (g[0] + g[1])


def cutmix_box(seed: tf.Tensor, height: int, width: int, lam: tf.Tensor):
    """timm's ``rand_bbox``: (y0, y1, x0, x1) int32 of a box of side int(side * sqrt(1 -
    lam)) centred at a uniform pixel, clipped to the image."""
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(float(height) * ratio, tf.int32)
    cut_w = tf.cast(float(width) * ratio, tf.int32)
    cy = tf.random.stateless_uniform([], seed, 0, height, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], seed + [0, 1], 0, width, dtype=tf.int32)
    y0, y1 = (
        tf.clip_by_value(cy - cut_h // 2, 0, height),
        tf.clip_by_value(cy + cut_h // 2, 0, height),
    )
    x0, x1 = (
        tf.clip_by_value(cx - cut_w // 2, 0, width),
        tf.clip_by_value(cx + cut_w // 2, 0, width),
    )
    return y0, y1, x0, x1


def mix_batch(
    images: tf.Tensor,
    targets: tf.Tensor,
    seed: tf.Tensor,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    switch_prob: float = 0.5,
) -> tuple[tf.Tensor, tf.Tensor]:
    """images [B, S, S, C] float, soft targets [B, K] -> the mixed pair (same shapes).

    ``seed``: int64 [2]. Both alphas 0 returns the inputs unchanged.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, targets
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)  # [4, 2]
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], seeds[0]) < switch_prob
    else:
        use_cutmix = tf.constant(cutmix_alpha > 0)
    partner_x, partner_y = tf.reverse(images, [0]), tf.reverse(targets, [0])

    def mixup():
        lam = _beta(seeds[1], mixup_alpha) if mixup_alpha > 0 else tf.constant(1.0)
        return lam * images + (1.0 - lam) * partner_x, lam

    def cutmix():
        lam = _beta(seeds[2], cutmix_alpha) if cutmix_alpha > 0 else tf.constant(1.0)
        height, width = images.shape[1], images.shape[2]
        y0, y1, x0, x1 = cutmix_box(seeds[3], height, width, lam)
        rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
        box = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # [S, S]
        mixed = tf.where(box[None, :, :, None], partner_x, images)
        area = tf.cast((y1 - y0) * (x1 - x0), tf.float32)
        return mixed, 1.0 - area / float(height * width)  # lam of the pasted area

    mixed, lam = tf.cond(use_cutmix, cutmix, mixup)
    return mixed, lam * targets + (1.0 - lam) * partner_y
