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


def grayscale(x: tf.Tensor) -> tf.Tensor:
    """[..., 3] -> [..., 1] luma."""
    return tf.tensordot(x, tf.constant(GRAY_WEIGHTS, x.dtype)[:, None], axes=1)  # one matmul


def _blend(x: tf.Tensor, other: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(factor * x + (1.0 - factor) * other, 0.0, 1.0)


def color_jitter(x: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
    """torchvision ColorJitter on one image float32 [S, S, 3] in [0, 1]."""
    ops = [
        lambda y: tf.clip_by_value(y * params["brightness"], 0.0, 1.0),
        lambda y: _blend(y, tf.reduce_mean(grayscale(y)), params["contrast"]),
        lambda y: _blend(y, grayscale(y), params["saturation"]),
        lambda y: tf.clip_by_value(tf.image.adjust_hue(y, params["hue"]), 0.0, 1.0),
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
    """Exactly ``tf.where(v < 128, v, 255 - v)`` on v = 255 x, returned in [0, 1]."""
    v = x * 255.0
    return tf.where(v < 128.0, v, 255.0 - v) / 255.0


def apply_color(x: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
    """The colour pipeline on one view float32 [S, S, 3] in [0, 1] -> same shape."""
    x = tf.cond(params["jitter"], lambda: color_jitter(x, params), lambda: x)
    x = tf.cond(
        params["grayscale"], lambda: tf.tile(grayscale(x), [1, 1, 3]), lambda: tf.identity(x)
    )
    x = tf.cond(params["blur"], lambda: gaussian_blur(x, params["sigma"]), lambda: x)
    return tf.cond(params["solarize"], lambda: solarize(x), lambda: x)


def normalize(x: tf.Tensor) -> tf.Tensor:
    """ImageNet normalisation of [..., 3] in [0, 1]."""
    return (x - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def denormalize(x: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`normalize`."""
    return x * tf.constant(IMAGENET_STD) + tf.constant(IMAGENET_MEAN)
