"""The asymmetric colour pipelines of method §1, with torchvision semantics, stateless.

View 1: ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2, blur sigma~U[0.1, 2] p=1.0.
View 2: the same jitter p=0.8, grayscale p=0.2, blur p=0.1, solarize (128 of 255) p=0.2.

Jitter follows torchvision's ``ColorJitter``: factors b~U[0.6,1.4], c~U[0.6,1.4],
s~U[0.8,1.2], hue~U[-0.1,0.1], applied in a random order (``torch.randperm(4)``);
brightness multiplies, contrast blends with the mean of the grayscale image, saturation
blends with the grayscale image, hue rotates in HSV; each step clips to [0, 1].
Views are channels first, [3, S, S]: every step then works on contiguous planes and the
blur is two matrix products (docs/data_pipeline.md has the measurements).
keras-cv's / core Keras' jitter layers use other semantics
(additive brightness, per-channel contrast means, HSV saturation, fixed order) and draw
their own randomness, so they are not used; see docs/data_pipeline.md for the numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from keras_cv.layers import RandomGaussianBlur

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL convert("L")
BLUR_SIGMA = (0.1, 2.0)
BLUR_KERNEL = 13  # 2 * ceil(3 * sigma_max) + 1
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}


@dataclass(frozen=True)
class ColorProbs:
    """Probabilities of one view's colour pipeline."""

    jitter: float = 0.8
    grayscale: float = 0.2
    blur: float = 1.0
    solarize: float = 0.0


VIEW1_PROBS = ColorProbs(jitter=0.8, grayscale=0.2, blur=1.0, solarize=0.0)
VIEW2_PROBS = ColorProbs(jitter=0.8, grayscale=0.2, blur=0.1, solarize=0.2)


def sample_color_params(seed: tf.Tensor, probs: ColorProbs) -> dict[str, tf.Tensor]:
    """All random numbers of one view's colour pipeline from one seed ([2] int).

    Returns scalars (bool / float32) and ``order`` int32 [4] (a uniform permutation of
    brightness=0, contrast=1, saturation=2, hue=3).
    """
    u = tf.random.stateless_uniform([13], seed)  # [13]
    b, c, s, h = JITTER["brightness"], JITTER["contrast"], JITTER["saturation"], JITTER["hue"]
    return {
        "jitter": u[0] < probs.jitter,
        "brightness": 1.0 - b + 2.0 * b * u[1],
        "contrast": 1.0 - c + 2.0 * c * u[2],
        "saturation": 1.0 - s + 2.0 * s * u[3],
        "hue": -h + 2.0 * h * u[4],
        "order": tf.argsort(u[5:9]),  # int32 [4]
        "grayscale": u[9] < probs.grayscale,
        "blur": u[10] < probs.blur,
        "sigma": BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * u[11],
        "solarize": u[12] < probs.solarize,
    }


def luma(x: tf.Tensor) -> tf.Tensor:
    """[3, H, W] -> [H, W]: ITU-R 601-2 luma (PIL ``convert("L")``), one [1, 3] x [3, P] product."""
    shape = tf.shape(x)
    planes = tf.reshape(x, [3, -1])  # [3, P]
    gray = tf.matmul(tf.constant([GRAY_WEIGHTS], x.dtype), planes)  # [1, P]
    return tf.reshape(gray, shape[1:])


def grayscale(x: tf.Tensor) -> tf.Tensor:
    """[3, H, W] -> [3, H, W], the luma in all three planes."""
    return tf.broadcast_to(luma(x)[None], tf.shape(x))


def _clip(x: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(x, 0.0, 1.0)


def _brightness(x, factor):
    return _clip(x * factor)  # blend with black


def _contrast(x, factor):
    # mean of the grayscale image = luma of the per-plane means (linear)
    mean = tf.tensordot(tf.constant(GRAY_WEIGHTS), tf.reduce_mean(x, axis=[1, 2]), 1)  # []
    return _clip(x * factor + (1.0 - factor) * mean)


def _saturation(x, factor):
    return _clip(x * factor + (1.0 - factor) * luma(x)[None])  # blend with grayscale


def adjust_hue(x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
    """Rotate the hue of [3, H, W] (RGB in [0, 1]) by ``delta`` turns, in HSV.

    Same maths as ``tf.image.adjust_hue`` / torchvision (hexcone HSV), written on planes:
    HSV -> RGB uses the closed form ``v - chroma * clip(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 h) mod 6``, n = 5, 3, 1 for R, G, B, equal to the six-sector switch.
    (``mod`` as ``k - 6 floor(k / 6)``: ``floormod`` on floats costs 4x more.)
    """
    r, g, b = x[0], x[1], x[2]  # [H, W] each
    v = tf.maximum(tf.maximum(r, g), b)
    chroma = v - tf.minimum(tf.minimum(r, g), b)
    inv = 1.0 / tf.maximum(chroma, 1e-12)  # grey pixels: every difference below is 0
    h = tf.where(r == v, (g - b) * inv, tf.where(g == v, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    k = tf.constant([5.0, 3.0, 1.0])[:, None, None] + (h + 6.0 * delta)[None]  # [3, H, W]
    k = k - 6.0 * tf.floor(k * (1.0 / 6.0))
    return v[None] - chroma[None] * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)


def _hue(x, delta):
    return _clip(adjust_hue(x, delta))


def color_jitter(x: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
    """torchvision ColorJitter on one image float32 [3, S, S] in [0, 1]."""
    ops = [
        lambda y: _brightness(y, params["brightness"]),
        lambda y: _contrast(y, params["contrast"]),
        lambda y: _saturation(y, params["saturation"]),
        lambda y: _hue(y, params["hue"]),
    ]
    for k in range(4):
        x = tf.switch_case(params["order"][k], [lambda f=f, y=x: f(y) for f in ops])
    return x


@functools.lru_cache(maxsize=8)
def _reflect_shifts(size: int) -> np.ndarray:
    """[13, size * size] 0/1: tap t of output row y reads row reflect(y + t - 6)."""
    r = BLUR_KERNEL // 2
    shifts = np.zeros([BLUR_KERNEL, size, size], np.float32)
    for t in range(BLUR_KERNEL):
        src = np.arange(size) + t - r
        src = np.abs(src)  # reflect (edge not repeated), like torchvision / tf.pad REFLECT
        src = np.where(src > size - 1, 2 * (size - 1) - src, src)
        shifts[t, np.arange(size), src] = 1.0
    return shifts.reshape(BLUR_KERNEL, size * size)


def blur_matrix(sigma: tf.Tensor, size: int) -> tf.Tensor:
    """[size, size]: the 13-tap Gaussian with reflect padding as a matrix (rows = outputs)."""
    k = RandomGaussianBlur.get_kernel(sigma, BLUR_KERNEL)  # [13], keras-cv's kernel
    shifts = tf.constant(_reflect_shifts(size))  # [13, size^2]
    return tf.reshape(tf.matmul(tf.reshape(k, [1, -1]), shifts), [size, size])


def gaussian_blur(x: tf.Tensor, sigma: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Separable Gaussian blur of [3, S, S] with reflect padding (torchvision's padding).

    The 13-tap kernel comes from keras-cv (``RandomGaussianBlur.get_kernel``); its layer
    pads with zeros (dark borders) and draws its own sigma, so the convolution is ours:
    two products with the [S, S] blur matrix (oneDNN; ~4x faster than a depthwise
    convolution on one core, more in bfloat16).
    """
    size = x.shape[-1]
    if size is None:
        raise ValueError("gaussian_blur needs a static image size")
    k = tf.cast(blur_matrix(sigma, size), dtype)  # [S, S]
    y = tf.matmul(tf.reshape(tf.cast(x, dtype), [-1, size]), k, transpose_b=True)  # rows
    y = tf.matmul(k[None], tf.reshape(y, [3, -1, size]))  # columns: [3, S, S]
    return tf.cast(y, tf.float32)


def solarize(x: tf.Tensor) -> tf.Tensor:
    """``where(v < 128, v, 255 - v)`` on v = 255 x, returned in [0, 1] (step form: one
    comparison and two cheap passes instead of a slow ``tf.where``)."""
    step = tf.cast(x * 255.0 >= 128.0, x.dtype)
    return x + step * (1.0 - 2.0 * x)


def _maybe(flag: tf.Tensor, probability: float, fn, x: tf.Tensor) -> tf.Tensor:
    """fn(x) if flag; static shortcut when the probability is 0 or 1."""
    if probability <= 0.0:
        return x
    if probability >= 1.0:
        return fn(x)
    return tf.cond(flag, lambda: fn(x), lambda: tf.identity(x))


@tf.function(jit_compile=True)
def _jitter_and_grayscale(x: tf.Tensor, params: dict, probs: ColorProbs) -> tf.Tensor:
    # Element-wise work, compiled by XLA into a few fused loops: 2-4x faster on CPU than
    # one TF kernel per operation (hue alone: 0.14 ms instead of 0.52 per 224^2 view).
    x = _maybe(params["jitter"], probs.jitter, lambda y: color_jitter(y, params), x)
    return _maybe(params["grayscale"], probs.grayscale, grayscale, x)


def apply_color(
    x: tf.Tensor,
    params: dict[str, tf.Tensor],
    probs: ColorProbs | None = None,
    matmul_dtype: tf.DType = tf.float32,
) -> tf.Tensor:
    """The colour pipeline on one view float32 [3, S, S] (channels first) in [0, 1].

    ``probs`` (the probabilities ``params`` were drawn with) only lets steps with
    probability 0 or 1 skip their branch; the result is the same without it.
    ``matmul_dtype``: operand type of the blur's matrix products (see ``resize.py``;
    the blur stays outside XLA, whose CPU matrix products are 5x slower than oneDNN's).
    """
    probs = probs or ColorProbs(0.5, 0.5, 0.5, 0.5)
    x = _jitter_and_grayscale(x, params, probs)
    blur = lambda y: gaussian_blur(y, params["sigma"], matmul_dtype)
    x = _maybe(params["blur"], probs.blur, blur, x)
    return _maybe(params["solarize"], probs.solarize, solarize, x)


@tf.function(jit_compile=True)
def finish_views(x: tf.Tensor) -> tf.Tensor:
    """Channels-first views [..., 3, S, S] in [0, 1] -> ImageNet-normalised [..., S, S, 3].

    One XLA loop for the affine map and the transpose (0.11 ms per 224^2 view on a batch,
    against 0.32 for TF's transpose + two element-wise kernels); the pipeline calls it
    once per batch.
    """
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]  # [3, 1, 1]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    x = x * tf.constant(1.0 / std) + tf.constant(-mean / std)
    rank = x.shape.rank
    return tf.transpose(x, [*range(rank - 3), rank - 2, rank - 1, rank - 3])


def _full(values, x: tf.Tensor) -> tf.Tensor:
    """A per-channel constant as a tensor of x's static shape (avoids a slow [3] broadcast)."""
    shape = x.shape
    if not shape.is_fully_defined():
        return tf.constant(values, x.dtype)
    return tf.constant(np.broadcast_to(np.asarray(values, np.float32), shape), x.dtype)


def normalize(x: tf.Tensor) -> tf.Tensor:
    """ImageNet normalisation of [..., 3] in [0, 1]: (x - mean) / std as x * a + b."""
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    return x * _full(1.0 / std, x) + _full(-mean / std, x)


def denormalize(x: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`normalize`."""
    return x * tf.constant(IMAGENET_STD) + tf.constant(IMAGENET_MEAN)
