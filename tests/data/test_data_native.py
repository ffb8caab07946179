"""The fused C++ view kernel (siameseim_tf/data/native) against the TF-op reference path.

Both paths take the same random draws (views._plan); the kernel must reproduce the
TF-op path's views (method §1: crop, flip, bicubic resize, colour pipelines, normalisation)
up to float32 rounding.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data import make_single_view, make_views, native
from tests.helpers import native_skip_reason

NATIVE_SKIP = native_skip_reason()
HAS_COMPILER = NATIVE_SKIP is None


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (shape[0] // 4 + 1, shape[1] // 4 + 1, 3)).astype(np.float32)
    big = tf.image.resize(smooth[None], shape, "bilinear")[0].numpy()
    return tf.constant(np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8))


def test_kernel_builds_where_a_compiler_exists():
    if HAS_COMPILER:
        assert native.status() == "loaded"
        assert native.load() is not None
    else:  # no compiler, or switched off by the user
        assert native.load() is None and native.status() == NATIVE_SKIP


@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
@pytest.mark.parametrize("shape", [(375, 500), (60, 45), (900, 700), (224, 224), (2, 3), (5, 400)])
@pytest.mark.parametrize("color", [True, False])
def test_fused_views_equal_tf_ops(shape, color):
    image = _image(shape, seed=shape[0])
    worst = 0.0
    for k in range(12):  # flips, every colour step and both views' pipelines occur
        seed = tf.constant([5, k], tf.int64)
        fused = make_views(image, seed, color=color, image_size=64, backend="fused")
        ref = make_views(
            image, seed, color=color, image_size=64, backend="tf", matmul_dtype="float32"
        )
        np.testing.assert_array_equal(fused[2].numpy(), ref[2].numpy())  # rel_pos
        np.testing.assert_array_equal(fused[3].numpy(), ref[3].numpy())  # boxes
        for a, b in zip(fused[:2], ref[:2]):
            worst = max(worst, float(tf.reduce_max(tf.abs(a - b))))
    # normalised units (one pixel level is ~0.017)
    assert worst < 5e-5, worst  # measured 4e-6


@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
@pytest.mark.parametrize("interpolation,antialias", [("bilinear", True), ("bicubic", False)])
def test_fused_other_filters_equal_tf_ops(interpolation, antialias):
    image = _image((200, 260), seed=3)
    kwargs = dict(image_size=48, interpolation=interpolation, antialias=antialias)
    for k in range(4):
        fused = make_single_view(image, k, backend="fused", **kwargs)
        ref = make_single_view(image, k, backend="tf", matmul_dtype="float32", **kwargs)
        np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=5e-5)


@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
def test_kernel_rejects_regions_outside_the_image():
    kernel = native.load()
    image = tf.zeros([10, 12, 3], tf.uint8)
    args = [tf.ones([1, 5]), tf.constant([[0, 1, 2, 3]]), tf.zeros([1, 4], tf.bool)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the image"):
        kernel.sim_fused_views(
            image, tf.constant([[0, 5, 10, 8]]), tf.constant([False]), *args, K=1, size=8
        )


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_fallback_when_disabled_and_fused_backend_then_fails():
    code = (
        "import tensorflow as tf\n"
        "from siameseim_tf.data import make_views, native\n"
        "print('status:', native.status())\n"
        "v = make_views(tf.zeros([20, 30, 3], tf.uint8), 0, image_size=16)\n"
        "print('views:', v[0].shape)\n"
        "try:\n"
        "    make_views(tf.zeros([20, 30, 3], tf.uint8), 0, image_size=16, backend='fused')\n"
        "except RuntimeError as e:\n"
        "    print('error:', e)\n"
    )
    env = dict(os.environ, SIAMESEIM_NATIVE="0")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "status: disabled by SIAMESEIM_NATIVE=0" in done.stdout
    assert "views: (16, 16, 3)" in done.stdout  # the TF-op path took over
    assert "error: backend='fused' but the kernel is unavailable" in done.stdout


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="backend"):
        make_views(tf.zeros([8, 8, 3], tf.uint8), 0, backend="cuda")
