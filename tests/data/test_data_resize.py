"""Crop + flip + resize as matrix products with PIL's weights (siameseim_tf/data/resize.py).

method §1: views are RandomResizedCrop'd with bicubic interpolation; torchvision does it on
PIL images, so PIL's antialiased bicubic is the reference filter.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFilter

from siameseim_tf.data.resize import bucket, crop_resize, matmul_dtype, resize_weights

# (top, left, height, width) in a 120 x 160 image: downscale, upscale, mixed, identity
BOXES = [(3, 5, 110, 150), (10, 20, 20, 30), (0, 0, 120, 40), (7, 9, 64, 64)]
SIZE = 64


def _smooth_image(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (120, 160, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3)))


def _view(image, box, flip=False, dtype=tf.float32, interpolation="bicubic", antialias=True):
    (out,) = crop_resize(
        tf.constant(image),
        tf.constant([box], tf.int32),
        tf.constant([flip]),
        SIZE,
        interpolation,
        antialias,
        dtype,
    )
    return out.numpy().transpose(1, 2, 0) * 255.0  # [S, S, 3] in pixel levels


def test_several_views_at_once_equal_one_at_a_time():
    image = _smooth_image(5)
    flips = [False, True, True, False]
    together = crop_resize(
        tf.constant(image), tf.constant(BOXES, tf.int32), tf.constant(flips), SIZE
    )
    for view, box, flip in zip(together, BOXES, flips):
        np.testing.assert_allclose(
            view.numpy().transpose(1, 2, 0) * 255.0, _view(image, box, flip), atol=1e-4
        )


@pytest.mark.parametrize("in_size", [5, 64, 100, 223, 224, 225, 500, 1999])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_weights_rows_sum_to_one_and_padding_is_zero(in_size, interpolation):
    padded = int(bucket(tf.constant(in_size)))
    w = resize_weights(tf.constant(in_size), 224, interpolation, True, tf.constant(padded))
    w = w.numpy()
    assert w.shape == (224, padded)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert not w[:, in_size:].any()


def test_bucket_sizes():
    sizes = np.arange(1, 3000)
    buckets = np.array([int(bucket(tf.constant(int(n)))) for n in sizes])
    assert (buckets >= sizes).all() and (buckets % 32 == 0).all()
    assert (buckets - sizes < np.maximum(32, sizes / 8)).all()  # < 12.5 % padding
    assert len(set(buckets[sizes <= 512])) == 16  # few shapes: oneDNN's cache stays warm


@pytest.mark.parametrize("box", BOXES)
def test_resize_equals_tensorflow_antialiased_bicubic(box):
    image = _smooth_image()
    top, left, h, w = box
    crop = image[top : top + h, left : left + w]
    expect = tf.image.resize(crop, [SIZE, SIZE], "bicubic", antialias=True).numpy()
    np.testing.assert_allclose(_view(image, box), np.clip(expect, 0, 255), atol=2e-3)


@pytest.mark.parametrize("box", BOXES)
def test_resize_matches_pil_within_its_rounding(box):
    """PIL rounds to uint8 after each pass (0.5 level each, the second pass amplified by the
    negative lobes of the kernel); our float result is within that rounding."""
    image = _smooth_image(1)
    top, left, h, w = box
    pil = Image.fromarray(image).resize(
        (SIZE, SIZE), Image.BICUBIC, box=(left, top, left + w, top + h)
    )
    diff = np.abs(_view(image, box) - np.asarray(pil, np.float32))
    assert diff.max() <= 1.6 and diff.mean() < 0.35, (diff.max(), diff.mean())


@pytest.mark.parametrize("interpolation,antialias", [("bicubic", False), ("bilinear", True)])
def test_other_filters_equal_tensorflow(interpolation, antialias):
    image = _smooth_image(2)
    top, left, h, w = BOXES[0]
    crop = image[top : top + h, left : left + w]
    expect = tf.image.resize(crop, [SIZE, SIZE], interpolation, antialias=antialias).numpy()
    out = _view(image, BOXES[0], interpolation=interpolation, antialias=antialias)
    # without antialiasing TF clamps edge taps where PIL renormalises: compare the interior
    np.testing.assert_allclose(out[4:-4, 4:-4], np.clip(expect, 0, 255)[4:-4, 4:-4], atol=2e-3)


def test_flip_mirrors_the_mirrored_region():
    """box is in the flipped frame: the view equals flip-then-crop of the whole image."""
    image = _smooth_image(3)
    top, left, h, w = BOXES[0]
    expect = _view(image[:, ::-1].copy(), BOXES[0])
    np.testing.assert_allclose(_view(image, BOXES[0], flip=True), expect, atol=1e-3)
    assert np.abs(_view(image, BOXES[0], flip=True) - _view(image, BOXES[0])).max() > 10


@pytest.mark.skipif(
    matmul_dtype("auto") != tf.bfloat16,
    reason="bfloat16 products are only used where the CPU has AMX-BF16; elsewhere they "
    "are slower than float32 or emulated with less precise accumulation",
)
@pytest.mark.parametrize("box", BOXES)
def test_bfloat16_products_stay_within_8_bit_precision(box):
    image = _smooth_image(4)
    diff = np.abs(_view(image, box, dtype=tf.bfloat16) - _view(image, box))
    assert diff.max() <= 2.0 and diff.mean() < 0.35, (diff.max(), diff.mean())


def test_matmul_dtype_names():
    assert matmul_dtype("float32") == tf.float32
    assert matmul_dtype("bfloat16") == tf.bfloat16
    assert matmul_dtype("auto") in (tf.float32, tf.bfloat16)
    with pytest.raises(ValueError, match="matmul_dtype"):
        matmul_dtype("float16")
