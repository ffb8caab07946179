"""Colour pipelines of method §1: exact ops and probabilities."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data import make_views
from siameseim_tf.data.color import (
    VIEW1_PROBS,
    VIEW2_PROBS,
    adjust_hue,
    color_jitter,
    gaussian_blur,
    sample_color_params,
    solarize,
)
from siameseim_tf.data.resize import matmul_dtype

N_DRAWS = 3000


def _params(probs, n=N_DRAWS):
    seeds = tf.stack([tf.fill([n], 17), tf.range(n)], axis=1)
    dtypes = {k: v.dtype for k, v in sample_color_params(seeds[0], probs).items()}

    @tf.function
    def draw(s):
        return tf.map_fn(lambda x: sample_color_params(x, probs), s, fn_output_signature=dtypes)

    return {k: v.numpy() for k, v in draw(seeds).items()}


def _close(freq, p, n):
    return abs(freq - p) <= 4.5 * np.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-12


@pytest.mark.parametrize("probs", [VIEW1_PROBS, VIEW2_PROBS], ids=["view1", "view2"])
def test_parameter_probabilities_and_ranges(probs):
    p = _params(probs)
    for key in ("jitter", "grayscale", "blur", "solarize"):
        freq = p[key].mean()
        assert _close(freq, getattr(probs, key), N_DRAWS), (key, freq)
    for key, lo, hi in [
        ("brightness", 0.6, 1.4),
        ("contrast", 0.6, 1.4),
        ("saturation", 0.8, 1.2),
        ("hue", -0.1, 0.1),
        ("sigma", 0.1, 2.0),
    ]:
        assert p[key].min() >= lo and p[key].max() <= hi
        assert abs(p[key].mean() - (lo + hi) / 2) < 0.05 * (hi - lo), key
    perms = {tuple(o) for o in p["order"]}
    assert perms == set(itertools.permutations(range(4)))
    counts = np.unique(p["order"][:, 0], return_counts=True)[1]
    assert counts.min() > N_DRAWS / 4 * 0.8


def test_observed_grayscale_and_flip_rates():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    fn = tf.function(lambda s: make_views(image, s, color=True, image_size=16))
    n, gray, flips = 500, np.zeros(2), np.zeros(2)
    for k in range(n):
        v1, v2, _, boxes = fn(tf.constant([1, k], tf.int64))
        for idx, v in enumerate((v1, v2)):
            x = v.numpy() * [0.229, 0.224, 0.225] + [0.485, 0.456, 0.406]
            gray[idx] += np.abs(x[..., 0] - x[..., 1]).max() < 1e-4
        flips += boxes.numpy()[:, 4]
    assert all(_close(g / n, 0.2, n) for g in gray), gray / n
    assert all(_close(f / n, 0.5, n) for f in flips), flips / n


def _only(op: int, **factors):
    base = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
    base.update(factors)
    order = [op] + [k for k in range(4) if k != op]
    return {k: tf.constant(v, tf.float32) for k, v in base.items()} | {
        "order": tf.constant(order, tf.int32)
    }


def _jitter_channels_last(x: np.ndarray, params) -> np.ndarray:
    """The library works on channels-first views; tests state the maths channels-last."""
    return color_jitter(tf.constant(x.transpose(2, 0, 1)), params).numpy().transpose(1, 2, 0)


def test_jitter_ops_follow_torchvision_semantics():
    rng = np.random.default_rng(3)
    x = rng.random((6, 5, 3)).astype(np.float32)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    out = _jitter_channels_last(x, _only(0, brightness=1.3))
    np.testing.assert_allclose(out, np.clip(x * 1.3, 0, 1), atol=1e-6)
    out = _jitter_channels_last(x, _only(1, contrast=0.7))
    np.testing.assert_allclose(out, np.clip(0.7 * x + 0.3 * gray.mean(), 0, 1), atol=1e-6)
    out = _jitter_channels_last(x, _only(2, saturation=1.2))
    np.testing.assert_allclose(out, np.clip(1.2 * x - 0.2 * gray[..., None], 0, 1), atol=1e-6)
    out = _jitter_channels_last(x, _only(3, hue=0.07))
    expect = np.array(
        [
            colorsys.hsv_to_rgb((hsv[0] + 0.07) % 1.0, hsv[1], hsv[2])
            for hsv in (colorsys.rgb_to_hsv(*px) for px in x.reshape(-1, 3))
        ]
    ).reshape(x.shape)
    np.testing.assert_allclose(out, expect, atol=1e-5)


def test_jitter_order_matters_and_is_used():
    x = tf.constant(np.random.default_rng(4).random((3, 4, 4)), tf.float32)
    a = _only(0, brightness=1.4, contrast=0.6)  # brightness then contrast
    b = _only(1, brightness=1.4, contrast=0.6)  # contrast then brightness
    assert not np.allclose(color_jitter(x, a).numpy(), color_jitter(x, b).numpy())


def test_solarize_is_exact():
    v = np.arange(256, dtype=np.float32)
    out = solarize(tf.constant(v / 255.0)).numpy() * 255.0
    np.testing.assert_allclose(out, np.where(v < 128, v, 255 - v), atol=1e-4)


@pytest.mark.parametrize("delta", [-0.1, -0.03, 0.0, 0.07, 0.1])
def test_hue_equals_tensorflow_kernel(delta):
    """Own plane-wise hue rotation == tf.image.adjust_hue (same hexcone HSV maths),
    including grey pixels, saturated primaries and both wrap-arounds."""
    rng = np.random.default_rng(6)
    x = rng.random((12, 12, 3)).astype(np.float32)
    x[0, :4] = [[0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    x[1, :3] = [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    expect = tf.image.adjust_hue(x, delta).numpy()
    out = adjust_hue(tf.constant(x.transpose(2, 0, 1)), tf.constant(delta)).numpy()
    np.testing.assert_allclose(out.transpose(1, 2, 0), expect, atol=2e-6)


def _blur_reference(x: np.ndarray, sigma: float) -> np.ndarray:
    """[3, S, S]: reflect-pad by 6 and convolve with the 13-tap kernel, rows then columns."""
    k = np.exp(-0.5 * (np.arange(-6, 7) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x, [(0, 0), (6, 6), (6, 6)], mode="reflect")
    rows = sum(k[t] * padded[:, t : t + x.shape[1], :] for t in range(13))
    return sum(k[t] * rows[:, :, t : t + x.shape[2]] for t in range(13))


@pytest.mark.parametrize("sigma", [0.1, 0.7, 2.0])
def test_blur_matrix_equals_reflect_padded_convolution(sigma):
    x = np.random.default_rng(7).random((3, 20, 20)).astype(np.float32)
    out = gaussian_blur(tf.constant(x), tf.constant(sigma)).numpy()
    np.testing.assert_allclose(out, _blur_reference(x, sigma), atol=1e-5)


NATIVE_BF16 = pytest.mark.skipif(
    matmul_dtype("auto") != tf.bfloat16,
    reason="bfloat16 products are only used where the CPU has AMX-BF16; elsewhere they "
    "are slower than float32 or emulated with less precise accumulation",
)


@NATIVE_BF16
@pytest.mark.parametrize("sigma", [0.1, 0.7, 2.0])
def test_native_bfloat16_blur_within_8_bit_precision(sigma):
    # bfloat16 operands: within the 8-bit precision of the reference pipeline (PIL, uint8)
    x = np.random.default_rng(7).random((3, 20, 20)).astype(np.float32)
    out16 = gaussian_blur(tf.constant(x), tf.constant(sigma), tf.bfloat16).numpy()
    assert np.abs(out16 - _blur_reference(x, sigma)).max() < 2.0 / 255


def test_blur():
    const = tf.fill([3, 20, 20], 0.7)
    np.testing.assert_allclose(gaussian_blur(const, tf.constant(2.0)).numpy(), 0.7, atol=1e-6)
    x = tf.constant(np.random.default_rng(5).random((3, 20, 20)), tf.float32)
    np.testing.assert_allclose(gaussian_blur(x, tf.constant(0.1)).numpy(), x.numpy(), atol=1e-5)
    blurred = gaussian_blur(x, tf.constant(2.0)).numpy()
    assert blurred.std() < 0.5 * x.numpy().std()
    np.testing.assert_allclose(blurred.mean(), x.numpy().mean(), atol=0.02)
