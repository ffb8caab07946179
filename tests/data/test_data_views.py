"""Views, crops, flips and the relative position of method §1."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data import make_views
from siameseim_tf.data.color import IMAGENET_MEAN, IMAGENET_STD

SIZE = 32
GRID = 4  # patch 8
SHAPES = [(37, 53), (64, 64), (120, 45), (28, 28), (15, 200), (300, 12)]


def _views_no_color(image, seed, backend="auto"):
    # float32 products: the geometry checks below resolve a tenth of a pixel level
    return _views_fn(backend)(image, seed)


@functools.cache
def _views_fn(backend):
    return tf.function(
        lambda image, seed: make_views(
            image,
            seed,
            color=False,
            image_size=SIZE,
            crop_min=0.08,
            matmul_dtype="float32",
            backend=backend,
        ),
        reduce_retracing=True,
    )


def _random_image(rng, shape):
    return tf.constant(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def _map_via_rel_pos(rel_pos, grid):
    """method §4: view-2 cell centres in view-1 grid units, [G, G] each."""
    di, dj, dh, dw, flip, fdj = (float(v) for v in rel_pos)
    r, c = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    h = dh * (r + 0.5) + di * grid - 0.5
    if flip > 0.5:
        w = -dw * (c + 0.5) + fdj * grid - 0.5
    else:
        w = dw * (c + 0.5) + dj * grid - 0.5
    return h, w


def _map_via_boxes(boxes, grid):
    """Same mapping through the ORIGINAL image using the absolute boxes only."""
    (t1, l1, h1, w1, f1), (t2, l2, h2, w2, f2) = np.asarray(boxes, np.float64)
    r, c = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    v, u = (r + 0.5) / grid, (c + 0.5) / grid  # fractions of view 2
    y = t2 + v * h2
    x = l2 + ((1.0 - u) if f2 else u) * w2  # original pixel coordinates
    v1 = (y - t1) / h1
    u1 = (l1 + w1 - x) / w1 if f1 else (x - l1) / w1
    return v1 * grid - 0.5, u1 * grid - 0.5


def test_rel_pos_matches_absolute_boxes_property():
    rng = np.random.default_rng(0)
    flips_seen = set()
    for shape in SHAPES:
        image = _random_image(rng, shape)
        for k in range(30):
            _, _, rel_pos, boxes = _views_no_color(image, tf.constant([7, k], tf.int64))
            rel_pos, boxes = rel_pos.numpy(), boxes.numpy()
            flips_seen.add((int(boxes[0, 4]), int(boxes[1, 4])))
            assert rel_pos[4] == float(boxes[0, 4] != boxes[1, 4])
            # boxes inside the original image
            assert (boxes[:, :2] >= 0).all()
            assert (boxes[:, 0] + boxes[:, 2] <= shape[0]).all()
            assert (boxes[:, 1] + boxes[:, 3] <= shape[1]).all()
            h_rel, w_rel = _map_via_rel_pos(rel_pos, GRID)
            h_abs, w_abs = _map_via_boxes(boxes, GRID)
            np.testing.assert_allclose(h_rel, h_abs, atol=1e-5, rtol=1e-6)
            np.testing.assert_allclose(w_rel, w_abs, atol=1e-5, rtol=1e-6)
    assert flips_seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("backend", ["tf", "auto"])  # TF ops; the fused kernel when built
def test_boxes_describe_the_pixels(backend):
    """A coordinate-ramp image: each view's pixels must show exactly its box."""
    height, width = 150, 220
    ramp = np.zeros((height, width, 3), np.uint8)
    ramp[..., 0] = np.arange(width)[None, :]  # R = x
    ramp[..., 1] = np.arange(height)[:, None]  # G = y
    image = tf.constant(ramp)
    q = np.arange(SIZE // 4, 3 * SIZE // 4)  # interior output pixels
    flips = set()
    for k in range(12):
        view1, view2, _, boxes = _views_no_color(image, tf.constant([3, k], tf.int64), backend)
        for view, (top, left, h, w, f) in zip((view1, view2), boxes.numpy()):
            flips.add(f)
            pix = (view.numpy() * IMAGENET_STD + IMAGENET_MEAN) * 255.0
            frac = (q + 0.5) / SIZE
            expect_x = left + ((1.0 - frac) if f else frac) * w - 0.5
            expect_y = top + frac * h - 0.5
            np.testing.assert_allclose(pix[SIZE // 2, q, 0], expect_x, atol=0.6)
            np.testing.assert_allclose(pix[q, SIZE // 2, 1], expect_y, atol=0.6)
    assert flips == {0.0, 1.0}


def test_crop_statistics_and_fallback():
    rng = np.random.default_rng(1)
    image = _random_image(rng, (90, 120))
    areas, ratios = [], []
    for k in range(60):
        _, _, _, boxes = _views_no_color(image, tf.constant([11, k], tf.int64))
        for _, _, h, w, _ in boxes.numpy():
            areas.append(h * w / (90 * 120))
            ratios.append(w / h)
    areas, ratios = np.array(areas), np.array(ratios)
    assert areas.min() >= 0.08 - 0.02 and areas.max() <= 1.0
    assert ratios.min() >= 0.75 * 0.95 and ratios.max() <= 4 / 3 * 1.05
    assert areas.std() > 0.1  # really random
    # An extreme 4 x 200 strip never fits: the centre-crop fallback keeps the full height
    # and a 4/3 width, centred.
    strip = _random_image(rng, (4, 200))
    fallbacks = 0
    for k in range(20):
        _, _, _, boxes = _views_no_color(strip, tf.constant([5, k], tf.int64))
        for top, left, h, w, flipped in boxes.numpy():
            if (h, w) == (4, 5):
                fallbacks += 1
                # j = (200 - 5) // 2 = 97 in the (possibly flipped) image
                assert (top, left) == (0, 98 if flipped else 97)
    assert fallbacks > 0


@pytest.mark.parametrize("color", [False, True])
def test_views_are_reproducible_and_seed_dependent(color):
    image = _random_image(np.random.default_rng(2), (50, 70))
    a = make_views(image, 123, color=color, image_size=SIZE)
    b = make_views(image, 123, color=color, image_size=SIZE)
    c = make_views(image, 124, color=color, image_size=SIZE)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert not np.array_equal(a[0].numpy(), c[0].numpy())
    assert a[0].shape == (SIZE, SIZE, 3) and a[0].dtype == tf.float32
    assert a[2].shape == (6,) and a[3].shape == (2, 5)


def test_normalisation_of_a_constant_image():
    image = tf.fill([40, 60, 3], tf.constant(200, tf.uint8))
    view1, view2, _, _ = make_views(image, 0, color=False, image_size=SIZE, matmul_dtype="float32")
    expect = (200 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(view1.numpy(), np.broadcast_to(expect, (SIZE, SIZE, 3)), atol=1e-5)
    np.testing.assert_allclose(view2.numpy(), np.broadcast_to(expect, (SIZE, SIZE, 3)), atol=1e-5)


@pytest.mark.parametrize("antialias", [True, False])
def test_fast_bilinear_mode_keeps_the_boxes(antialias):
    """The fast resize (bilinear, optionally without antialiasing) changes the filter only:
    boxes, rel_pos and the pixels' positions are those of the bicubic default."""
    height, width = 150, 220
    ramp = np.zeros((height, width, 3), np.uint8)
    ramp[..., 0] = np.arange(width)[None, :]
    image = tf.constant(ramp)
    q = np.arange(SIZE // 4, 3 * SIZE // 4)
    for k in range(6):
        seed = tf.constant([4, k], tf.int64)
        fast = make_views(
            image,
            seed,
            color=False,
            image_size=SIZE,
            antialias=antialias,
            interpolation="bilinear",
            matmul_dtype="float32",
        )
        exact = make_views(image, seed, color=False, image_size=SIZE)
        np.testing.assert_array_equal(fast[2].numpy(), exact[2].numpy())  # rel_pos
        np.testing.assert_array_equal(fast[3].numpy(), exact[3].numpy())  # boxes
        for view, (_, left, _, w, f) in zip(fast[:2], fast[3].numpy()):
            x = (view.numpy() * IMAGENET_STD + IMAGENET_MEAN)[SIZE // 2, q, 0] * 255.0
            frac = (q + 0.5) / SIZE
            np.testing.assert_allclose(x, left + ((1.0 - frac) if f else frac) * w - 0.5, atol=0.6)


def test_unknown_interpolation_raises():
    with pytest.raises(ValueError, match="interpolation"):
        make_views(tf.zeros([8, 8, 3], tf.uint8), 0, interpolation="lanczos3")
