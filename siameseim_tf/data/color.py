"""The asymmetric colour pipelines of SPEC §1, with torchvision semantics, stateless.

View 1: ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2, blur sigma~U[0.1, 2] p=1.0.
View 2: the same jitter p=0.8, grayscale p=0.2, blur p=0.1, solarize (128 of 255) p=0.2.

Jitter follows torchvision's ``ColorJitter``: factors b~U[0.6,1.4], c~U[0.6,1.4],
s~U[0.8,1.2], hue~U[-0.1,0.1], applied in a random order (``torch.randperm(4)``);
brightness multiplies, contrast blends with the mean of the grayscale image, saturation
blends with the grayscale image, hue rotates in HSV (TF's fused ``AdjustHue`` kernel);
each step clips to [0, 1]. keras-cv's / core Keras' jitter layers use other semantics
(additive brightness, per-channel contrast means, HSV saturation, fixed order) and draw
their own randomness, so they are not used; see docs/data_pipeline.md for the numbers.
"""

from __future__ import annotations

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


def _pixels(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, [-1, 3])  # [P, 3], free


def color_matrix(x: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
    """Per-pixel linear colour map x @ matrix: [..., 3] x [3, 3] -> [..., 3], one matmul.

    Cheaper on CPU than the same maths as broadcast element-wise ops (one pass, no [3]
    broadcast along the innermost axis, which Eigen does slowly).
    """
    return tf.reshape(tf.matmul(_pixels(x), matrix), tf.shape(x))


def _gray_matrix(dtype=tf.float32) -> tf.Tensor:
    """[3, 3]: every output channel = luma; x @ it = grayscale replicated to 3 channels."""
    return tf.tile(tf.constant(GRAY_WEIGHTS, dtype)[:, None], [1, 3])


def grayscale(x: tf.Tensor) -> tf.Tensor:
    """[..., 3] -> [..., 3], luma (ITU-R 601-2, PIL ``convert("L")``) in all three channels."""
    return color_matrix(x, _gray_matrix(x.dtype))


def _clip(x: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(x, 0.0, 1.0)


def _brightness(x, factor):
    return _clip(x * factor)  # blend with black


def _contrast(x, factor):
    # mean of the grayscale image = luma of the per-channel means (linear)
    mean = tf.tensordot(tf.reduce_mean(_pixels(x), 0), tf.constant(GRAY_WEIGHTS), 1)  # []
    return _clip(x * factor + (1.0 - factor) * mean)


def _saturation(x, factor):
    # factor * x + (1 - factor) * gray(x) as one 3 x 3 colour matrix
    matrix = factor * tf.eye(3) + (1.0 - factor) * _gray_matrix()
    return _clip(color_matrix(x, matrix))


def _hue(x, delta):
    return _clip(tf.image.adjust_hue(x, delta))  # TF's fused RGB->HSV->RGB kernel


def color_jitter(x: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
    """torchvision ColorJitter on one image float32 [S, S, 3] in [0, 1]."""
    ops = [
        lambda y: _brightness(y, params["brightness"]),
        lambda y: _contrast(y, params["contrast"]),
        lambda y: _saturation(y, params["saturation"]),
        lambda y: _hue(y, params["hue"]),
    ]
    for k in range(4):
        x = tf.switch_case(params["order"][k], [lambda f=f, y=x: f(y) for f in ops])
    return x


def gaussian_blur(x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Separable Gaussian blur of [S, S, 3] with reflect padding (torchvision's padding).

    The 13-tap kernel comes from keras-cv (``RandomGaussianBlur.get_kernel``); its layer
    pads with zeros (dark borders) and draws its own sigma, so the convolution is ours.
    """
    k = RandomGaussianBlur.get_kernel(sigma, BLUR_KERNEL)  # [13]
    r = BLUR_KERNEL // 2
    kh = tf.tile(tf.reshape(k, [1, BLUR_KERNEL, 1, 1]), [1, 1, 3, 1])  # [1, 13, 3, 1]
    kv = tf.reshape(kh, [BLUR_KERNEL, 1, 3, 1])  # [13, 1, 3, 1]
    y = tf.pad(x[None], [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")  # [1, S+12, S+12, 3]
    y = tf.nn.depthwise_conv2d(y, kh, [1, 1, 1, 1], "VALID")
    y = tf.nn.depthwise_conv2d(y, kv, [1, 1, 1, 1], "VALID")
    return y[0]


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


def apply_color(
    x: tf.Tensor, params: dict[str, tf.Tensor], probs: ColorProbs | None = None
) -> tf.Tensor:
    """The colour pipeline on one view float32 [S, S, 3] in [0, 1] -> same shape.

    ``probs`` (the probabilities ``params`` were drawn with) only lets steps with
    probability 0 or 1 skip their branch; the result is the same without it.
    """
    probs = probs or ColorProbs(0.5, 0.5, 0.5, 0.5)
    x = _maybe(params["jitter"], probs.jitter, lambda y: color_jitter(y, params), x)
    x = _maybe(params["grayscale"], probs.grayscale, grayscale, x)
    x = _maybe(params["blur"], probs.blur, lambda y: gaussian_blur(y, params["sigma"]), x)
    return _maybe(params["solarize"], probs.solarize, solarize, x)


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
