"""Stateless RandAugment of the MAE / SiameseIM fine-tuning recipe (timm "rand-m9-mstd0.5-inc1").

timm semantics (``rand_augment_transform`` with ``inc1``, hence the 15 "increasing" ops):
for each of ``num_ops`` layers an op is drawn uniformly (with replacement) and applied with
probability ``prob``; when applied its magnitude is ``magnitude + magnitude_std * N(0, 1)``
clipped to [0, 10], mapped to the op's parameter by the ``*_level_to_arg`` rules below, with
a fair sign flip for the signed ops. Geometric ops fill with the ImageNet mean (124, 116, 104).

Every random number comes from the int64 [2] ``seed`` through ``tf.random.stateless_*``, so
the result is a pure function of (image, seed) and runs inside ``tf.data.Dataset.map``.
Differences from timm: geometric ops interpolate bilinearly only (timm draws bilinear or
bicubic per call, or uses bicubic throughout when ``create_transform`` gets
``interpolation="bicubic"``, as MAE's fine-tuning does); PosterizeIncreasing at magnitude 10
(0 bits) gives black, where timm on Pillow 13 raises ValueError. See docs/finetune.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import tensorflow as tf

from siameseim_tf.data import image_ops

LEVEL_DENOM = 10.0  # timm's magnitude scale: level / 10 is the fraction of each op's range
IMAGENET_MEAN_RGB = (124, 116, 104)  # round(255 * (0.485, 0.456, 0.406)), timm's img_mean
RAND_INCREASING_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)

Scalar = image_ops.Scalar


# ---- magnitude -> parameter (timm's *_level_to_arg) ------------------------------------------


def _fraction(magnitude: Scalar) -> tf.Tensor:
    """Magnitude (0..10) -> float64 fraction of the op's range; float64 as timm's Python."""
    return image_ops.ieee_divide(image_ops.as_float64(magnitude), LEVEL_DENOM)


def _signed(value: tf.Tensor, negate: tf.Tensor | bool) -> tf.Tensor:
    return tf.where(tf.cast(negate, tf.bool), -value, value)


def rotate_degrees(magnitude: Scalar, negate: tf.Tensor | bool) -> tf.Tensor:
    """``_rotate_level_to_arg``: +-30 degrees at magnitude 10."""
    return _signed(_fraction(magnitude) * 30.0, negate)


def enhance_factor(magnitude: Scalar, negate: tf.Tensor | bool) -> tf.Tensor:
    """``_enhance_increasing_level_to_arg``: 1 +- 0.9 at magnitude 10, at least 0.1."""
    return tf.maximum(1.0 + _signed(_fraction(magnitude) * 0.9, negate), 0.1)


def shear_factor(magnitude: Scalar, negate: tf.Tensor | bool) -> tf.Tensor:
    """``_shear_level_to_arg``: +-0.3 at magnitude 10."""
    return _signed(_fraction(magnitude) * 0.3, negate)


def translate_fraction(
    magnitude: Scalar, negate: tf.Tensor | bool, translate_pct: float = 0.45
) -> tf.Tensor:
    """``_translate_rel_level_to_arg``: +-``translate_pct`` of the image side at magnitude 10."""
    return _signed(_fraction(magnitude) * translate_pct, negate)


def posterize_bits(magnitude: Scalar) -> tf.Tensor:
    """``_posterize_increasing_level_to_arg``: keeps 4 bits at magnitude 0, 0 bits at 10."""
    return 4.0 - tf.floor(_fraction(magnitude) * 4.0)


def solarize_threshold(magnitude: Scalar) -> tf.Tensor:
    """``_solarize_increasing_level_to_arg``: threshold 256 (no change) down to 0 at 10."""
    return 256.0 - tf.minimum(tf.floor(_fraction(magnitude) * 256.0), 256.0)


def solarize_addition(magnitude: Scalar) -> tf.Tensor:
    """``_solarize_add_level_to_arg``: adds 0 up to 110 at magnitude 10."""
    return tf.minimum(tf.floor(_fraction(magnitude) * 110.0), 128.0)


# ---- one op by name ---------------------------------------------------------------------


def apply_op(
    name: str,
    image: tf.Tensor,
    magnitude: Scalar,
    negate: tf.Tensor | bool = False,
    *,
    translate_pct: float = 0.45,
    fill: tuple[int, int, int] = IMAGENET_MEAN_RGB,
) -> tf.Tensor:
    """Applies the op ``name`` (one of :data:`RAND_INCREASING_OPS`) at ``magnitude`` (0..10).

    uint8 [H, W, 3] -> uint8 [H, W, 3]; ``negate`` flips the sign of the signed ops.
    """
    fill_color = tf.constant(fill, tf.float32)
    if name in ("TranslateXRel", "TranslateYRel"):
        axis = 1 if name == "TranslateXRel" else 0  # timm: width for X, height for Y
        side = tf.cast(tf.shape(image)[axis], tf.float64)
        pixels = translate_fraction(magnitude, negate, translate_pct) * side
        translate = image_ops.translate_x if axis == 1 else image_ops.translate_y
        return translate(image, pixels, fill_color)
    unsigned_ops: dict[str, Callable[[], tf.Tensor]] = {
        "AutoContrast": lambda: image_ops.auto_contrast(image),
        "Equalize": lambda: image_ops.equalize(image),
        "Invert": lambda: image_ops.invert(image),
        "PosterizeIncreasing": lambda: image_ops.posterize(image, posterize_bits(magnitude)),
        "SolarizeIncreasing": lambda: image_ops.solarize(image, solarize_threshold(magnitude)),
        "SolarizeAdd": lambda: image_ops.solarize_add(image, solarize_addition(magnitude)),
    }
    if name in unsigned_ops:
        return unsigned_ops[name]()
    enhance_ops = {
        "ColorIncreasing": image_ops.color,
        "ContrastIncreasing": image_ops.contrast,
        "BrightnessIncreasing": image_ops.brightness,
        "SharpnessIncreasing": image_ops.sharpness,
    }
    if name in enhance_ops:
        return enhance_ops[name](image, enhance_factor(magnitude, negate))
    geometric_ops = {
        "Rotate": (image_ops.rotate, rotate_degrees),
        "ShearX": (image_ops.shear_x, shear_factor),
        "ShearY": (image_ops.shear_y, shear_factor),
    }
    if name in geometric_ops:
        op, level_to_arg = geometric_ops[name]
        return op(image, level_to_arg(magnitude, negate), fill_color)
    raise ValueError(f"unknown RandAugment op {name!r}; expected one of {RAND_INCREASING_OPS}")


# ---- the policy --------------------------------------------------------------------------


def sample_layer(
    seed: tf.Tensor, num_choices: int, magnitude: float, magnitude_std: float, prob: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """One layer's draws: (op index int32, applied bool, magnitude float32, negate bool)."""
    choice_seed, coin_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )  # 3 x [2]
    op_index = tf.random.stateless_uniform([], choice_seed, 0, num_choices, dtype=tf.int32)
    coins = tf.random.stateless_uniform([2], coin_seed)  # [2]
    applied = coins[0] < prob  # timm skips when random() > prob
    negate = coins[1] > 0.5  # timm's _randomly_negate
    drawn = tf.constant(magnitude, tf.float32)
    if math.isinf(magnitude_std):  # timm: mstd > 100 (inf) means uniform in [0, magnitude]
        drawn = tf.random.stateless_uniform([], noise_seed, 0.0, magnitude)
    elif magnitude_std > 0:
        drawn += magnitude_std * tf.random.stateless_normal([], noise_seed)
    drawn = tf.clip_by_value(drawn, 0.0, LEVEL_DENOM)
    return op_index, applied, drawn, negate


def rand_augment(
    image: tf.Tensor,
    seed: tf.Tensor,
    *,
    num_ops: int = 2,
    magnitude: float = 9.0,
    magnitude_std: float = 0.5,
    prob: float = 0.5,
    translate_pct: float = 0.45,
    fill: tuple[int, int, int] = IMAGENET_MEAN_RGB,
    ops: Sequence[str] = RAND_INCREASING_OPS,
) -> tf.Tensor:
    """timm's ``rand-m9-mstd0.5-inc1`` RandAugment on uint8 [H, W, 3], stateless in ``seed``.

    ``seed``: int [2]. ``translate_pct``: TranslateXRel / TranslateYRel shift by up to this
    fraction of the width / height; timm's ``translate_const`` (``int(0.45 * size)``, passed by
    ``create_transform``) only drives the absolute TranslateX/Y ops, absent from the
    increasing set, so it has no parameter here. ``ops``: the op set (default: all 15).
    Returns uint8 [H, W, 3] of the input's shape.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(f"rand_augment expects a uint8 image, got {image.dtype.name}")
    for name in ops:
        if name not in RAND_INCREASING_OPS:
            raise ValueError(f"unknown RandAugment op {name!r}")
    layer_seeds = tf.random.experimental.stateless_split(seed, num_ops)  # [num_ops, 2]
    for layer in range(num_ops):
        op_index, applied, level, negate = sample_layer(
            layer_seeds[layer], len(ops), magnitude, magnitude_std, prob
        )
        image = _apply_one_of(
            ops, image, tf.where(applied, op_index, len(ops)), level, negate, translate_pct, fill
        )
    return image


def _apply_one_of(
    ops: Sequence[str],
    image: tf.Tensor,
    branch: tf.Tensor,
    level: tf.Tensor,
    negate: tf.Tensor,
    translate_pct: float,
    fill: tuple[int, int, int],
) -> tf.Tensor:
    """Runs op ``ops[branch]`` (``branch == len(ops)``: identity) in one ``tf.switch_case``."""

    def branch_fn(name: str) -> Callable[[], tf.Tensor]:
        return lambda: apply_op(name, image, level, negate, translate_pct=translate_pct, fill=fill)

    branches = [branch_fn(name) for name in ops] + [lambda: tf.identity(image)]
    out = tf.switch_case(branch, branches)  # [H, W, 3]
    out.set_shape(image.shape)  # the merged branch shapes may have lost the static size
    return out
