"""Fine-tuning augmentations: RandAugment ops against timm 1.0.15 / Pillow, random erasing.

timm's ``auto_augment.py`` is loaded by file path (its package ``__init__`` imports torch).
Measured on this machine (Pillow 13.0, TF 2.21), every op below is bit-identical to timm
(mean and max |difference| 0) on all test images; the tolerances leave room only for
platform float differences: pixel ops exact; enhance and geometric ops at most 1 level on at
most 1 % of the values (PIL truncates float results, so a last-bit difference in the float
arithmetic, e.g. a libm cosine, can move a value by one level, never more).
"""

from __future__ import annotations

import importlib.util
import os
import random

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from siameseim_tf.data import image_ops
from siameseim_tf.data.erasing import erasing_box, random_erasing
from siameseim_tf.data.idx import read_idx
from siameseim_tf.data.randaugment import (
    RAND_INCREASING_OPS,
    apply_op,
    enhance_factor,
    posterize_bits,
    rand_augment,
    rotate_degrees,
    sample_layer,
    shear_factor,
    solarize_addition,
    solarize_threshold,
    translate_fraction,
)

FILL = (124, 116, 104)
TIMM_FALLBACK = "/tmp/timm_src/timm/data/auto_augment.py"
FMNIST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
HEIGHT, WIDTH = 32, 40  # non-square on purpose


def _timm_auto_augment_path() -> str | None:
    spec = importlib.util.find_spec("timm")  # finds the package without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "data", "auto_augment.py")
        if os.path.isfile(path):
            return path
    return TIMM_FALLBACK if os.path.isfile(TIMM_FALLBACK) else None


@pytest.fixture(scope="module")
def timm_aa():
    path = _timm_auto_augment_path()
    if path is None:
        pytest.skip("timm's auto_augment.py not found: pip install --no-deps timm==1.0.15")
    spec = importlib.util.spec_from_file_location("timm_auto_augment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _synthetic_image() -> np.ndarray:
    """uint8 [32, 40, 3]: gradients, a sine, a rectangle, a disk and mild noise."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    image = np.stack(
        [
            40 + 180 * xx / (WIDTH - 1),
            30 + 190 * yy / (HEIGHT - 1),
            120 + 80 * np.sin(xx / 5 + yy / 7),
        ],
        axis=-1,
    )
    image[5:14, 6:18] = (230, 40, 60)
    image[(yy - 20) ** 2 + (xx - 28) ** 2 < 36] = (20, 200, 90)
    image += np.random.RandomState(0).normal(0, 6, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _test_images() -> dict[str, np.ndarray]:
    synthetic = _synthetic_image()
    one_flat_channel = synthetic.copy()
    one_flat_channel[..., 2] = 77  # autocontrast / equalize leave a one-level channel alone
    images = {"synthetic": synthetic, "one_flat_channel": one_flat_channel}
    if os.path.isfile(FMNIST_IMAGES):  # a real photo-like image, tinted to differ per channel
        gray = read_idx(FMNIST_IMAGES)[0].astype(np.float64)  # [28, 28]
        tinted = np.stack([gray, 0.7 * gray + 40, 0.5 * (255 - gray) + 0.3 * gray], axis=-1)
        images["fashion_mnist"] = np.round(tinted).astype(np.uint8)
    return images


IMAGES = _test_images()


def _assert_close(reference, mine, max_diff: int, max_mismatch: float) -> None:
    diff = np.abs(np.asarray(reference).astype(np.int32) - np.asarray(mine).astype(np.int32))
    assert diff.max() <= max_diff, f"max |diff| {diff.max()}, mean {diff.mean():.4f}"
    assert (diff > 0).mean() <= max_mismatch, f"{(diff > 0).mean():.2%} of the values differ"


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image)


# ---- each op against timm's op function, explicit parameters -------------------------------

PIXEL_CASES = [
    ("invert", lambda aa, im: aa.invert(im), image_ops.invert),
    ("auto_contrast", lambda aa, im: aa.auto_contrast(im), image_ops.auto_contrast),
    ("equalize", lambda aa, im: aa.equalize(im), image_ops.equalize),
]
PIXEL_CASES += [
    (
        f"posterize_{b}",
        lambda aa, im, b=b: aa.posterize(im, b),
        lambda x, b=b: image_ops.posterize(x, b),
    )
    for b in (1, 2, 3, 4, 8)
]
PIXEL_CASES += [
    (
        f"solarize_{t}",
        lambda aa, im, t=t: aa.solarize(im, t),
        lambda x, t=t: image_ops.solarize(x, t),
    )
    for t in (0, 26, 128, 230, 256)
]
PIXEL_CASES += [
    (
        f"solarize_add_{a}",
        lambda aa, im, a=a: aa.solarize_add(im, a),
        lambda x, a=a: image_ops.solarize_add(x, a),
    )
    for a in (0, 49, 99, 110)
]
ENHANCE_CASES = [
    (f"{name}_{factor}", name, factor)
    for name in ("color", "contrast", "brightness", "sharpness")
    for factor in (0.1, 0.55, 1.0, 1.45, 1.9)
]
GEOMETRIC_CASES = (
    [("rotate", d) for d in (-30.0, -13.5, 7.3, 27.0, 90.0, 180.0)]
    + [("shear_x", s) for s in (-0.3, 0.135, 0.3)]
    + [("shear_y", s) for s in (-0.3, 0.135, 0.3)]
    + [("translate_x_rel", p) for p in (-0.45, -0.2025, 0.1, 0.405)]
    + [("translate_y_rel", p) for p in (-0.45, -0.2025, 0.1, 0.405)]
)


def _tf_geometric(name: str, image: np.ndarray, value: float) -> tf.Tensor:
    height, width = image.shape[:2]
    if name == "translate_x_rel":
        return image_ops.translate_x(image, value * width, FILL)
    if name == "translate_y_rel":
        return image_ops.translate_y(image, value * height, FILL)
    return getattr(image_ops, name)(image, value, FILL)


@pytest.mark.parametrize("image_name", sorted(IMAGES))
@pytest.mark.parametrize("case", PIXEL_CASES, ids=[c[0] for c in PIXEL_CASES])
def test_pixel_ops_match_timm_exactly(timm_aa, case, image_name):
    _, timm_fn, tf_fn = case
    image = IMAGES[image_name]
    _assert_close(timm_fn(timm_aa, _pil(image)), tf_fn(tf.constant(image)), 0, 0.0)


def test_posterize_zero_bits_is_black():
    # timm asks for 0 bits at magnitude 10; Pillow 13 raises ValueError, older Pillow gave 0.
    out = image_ops.posterize(tf.constant(IMAGES["synthetic"]), 0.0)
    assert int(tf.reduce_max(out)) == 0


@pytest.mark.parametrize("image_name", sorted(IMAGES))
@pytest.mark.parametrize("case", ENHANCE_CASES, ids=[c[0] for c in ENHANCE_CASES])
def test_enhance_ops_match_timm(timm_aa, case, image_name):
    _, name, factor = case
    image = IMAGES[image_name]
    reference = getattr(timm_aa, name)(_pil(image), factor)
    _assert_close(reference, getattr(image_ops, name)(tf.constant(image), factor), 1, 0.01)


@pytest.mark.parametrize("image_name", sorted(IMAGES))
@pytest.mark.parametrize("case", GEOMETRIC_CASES, ids=[f"{n}_{v}" for n, v in GEOMETRIC_CASES])
def test_geometric_ops_match_timm_bilinear(timm_aa, case, image_name):
    # Whole image, borders included: the fill and edge clamping follow PIL's rules.
    name, value = case
    image = IMAGES[image_name]
    reference = getattr(timm_aa, name)(_pil(image), value, fillcolor=FILL, resample=Image.BILINEAR)
    _assert_close(reference, _tf_geometric(name, tf.constant(image), value), 1, 0.01)


def test_geometric_ops_match_timm_inside_tf_function(timm_aa):
    # Grappler rewrites graph arithmetic (x / c -> x * (1 / c)); the ops must survive it.
    image = IMAGES["synthetic"]
    degrees = tf.constant([-29.7, -11.1, 3.3, 17.77, 29.4], tf.float64)
    rotated = tf.function(
        lambda d: tf.map_fn(
            lambda v: image_ops.rotate(image, v, FILL), d, fn_output_signature=tf.uint8
        )
    )(degrees)
    for angle, mine in zip(degrees.numpy(), rotated.numpy()):
        reference = timm_aa.rotate(
            _pil(image), float(angle), fillcolor=FILL, resample=Image.BILINEAR
        )
        _assert_close(reference, mine, 1, 0.01)


# ---- magnitude -> parameter, and each named op through timm's AugmentOp -----------------------

MAGNITUDES = (0.0, 4.5, 9.0, 10.0)


def _both_signs(level_fn, magnitude, hparams) -> set[float]:
    random.seed(0)  # 40 draws of timm's fair sign flip show both signs
    return {round(level_fn(magnitude, hparams)[0], 12) for _ in range(40)}


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_level_to_arg_matches_timm(timm_aa, magnitude):
    hparams = dict(translate_const=int(WIDTH * 0.45), img_mean=FILL)  # create_transform's
    signed = {
        "_rotate_level_to_arg": rotate_degrees,
        "_enhance_increasing_level_to_arg": enhance_factor,
        "_shear_level_to_arg": shear_factor,
        "_translate_rel_level_to_arg": translate_fraction,  # translate_const is not read
    }
    for timm_name, mine in signed.items():
        expected = _both_signs(getattr(timm_aa, timm_name), magnitude, hparams)
        got = {round(float(mine(magnitude, negate)), 12) for negate in (False, True)}
        assert got == expected, timm_name
    unsigned = {
        "_posterize_increasing_level_to_arg": posterize_bits,
        "_solarize_increasing_level_to_arg": solarize_threshold,
        "_solarize_add_level_to_arg": solarize_addition,
    }
    for timm_name, mine in unsigned.items():
        assert float(mine(magnitude)) == getattr(timm_aa, timm_name)(magnitude, hparams)[0]


@pytest.mark.parametrize("magnitude", (3.0, 9.0))
@pytest.mark.parametrize("name", RAND_INCREASING_OPS)
def test_named_ops_match_timm_augment_op(timm_aa, monkeypatch, name, magnitude):
    """apply_op == timm's AugmentOp(name, prob=1, magnitude) with the recipe's hparams."""
    image = IMAGES["synthetic"]
    hparams = dict(translate_const=int(WIDTH * 0.45), img_mean=FILL, interpolation=Image.BILINEAR)
    for negate in (False, True):
        monkeypatch.setattr(
            timm_aa, "_randomly_negate", (lambda v: -v) if negate else (lambda v: v)
        )
        reference = timm_aa.AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=hparams)(
            _pil(image)
        )
        _assert_close(reference, apply_op(name, tf.constant(image), magnitude, negate), 1, 0.01)


def test_apply_op_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        apply_op("Cutout", tf.zeros([4, 4, 3], tf.uint8), 5.0)


# ---- rand_augment properties ---------------------------------------------------------------


def _seeds(n: int, base: int = 17) -> tf.Tensor:
    return tf.stack([tf.fill([n], tf.constant(base, tf.int64)), tf.range(n, dtype=tf.int64)], 1)


def test_rand_augment_is_a_pure_function_of_image_and_seed_in_tf_data():
    image = tf.constant(IMAGES["synthetic"])
    dataset = tf.data.Dataset.from_tensor_slices(_seeds(32)).map(lambda s: rand_augment(image, s))
    assert dataset.element_spec.shape == (HEIGHT, WIDTH, 3)
    assert dataset.element_spec.dtype == tf.uint8
    first = np.stack(list(dataset.as_numpy_iterator()))  # [32, H, W, 3]
    second = np.stack(list(dataset.as_numpy_iterator()))
    np.testing.assert_array_equal(first, second)
    eager = np.stack([rand_augment(image, s).numpy() for s in _seeds(4)])
    compiled = tf.function(rand_augment)
    np.testing.assert_array_equal(first[:4], eager)
    np.testing.assert_array_equal(first[:4], np.stack([compiled(image, s) for s in _seeds(4)]))
    # Different seeds: ~1/4 of them apply no op (two coins of 0.5), the rest mostly differ.
    changed = [(out != IMAGES["synthetic"]).any() for out in first]
    distinct = len({out.tobytes() for out in first})
    assert np.mean(changed) >= 0.6 and distinct >= 20, (np.mean(changed), distinct)


def test_rand_augment_keeps_uint8_and_non_square_shape():
    image = tf.constant(np.ascontiguousarray(IMAGES["synthetic"][:, :23]))  # [32, 23, 3]
    for seed in _seeds(6, base=3):
        out = rand_augment(image, seed, prob=1.0)
        assert out.dtype == tf.uint8 and out.shape == (HEIGHT, 23, 3)
    with pytest.raises(TypeError, match="uint8"):
        rand_augment(tf.zeros([8, 8, 3]), _seeds(1)[0])


def test_rand_augment_magnitude_zero_is_identity_for_magnitude_ops():
    # At magnitude 0 every op with a magnitude is the identity, except PosterizeIncreasing
    # (keeps 4 bits at magnitude 0); AutoContrast / Equalize / Invert have no magnitude.
    ops = [n for n in RAND_INCREASING_OPS if n not in ("AutoContrast", "Equalize", "Invert")]
    ops.remove("PosterizeIncreasing")
    image = tf.constant(IMAGES["synthetic"])
    augment = tf.function(
        lambda s: rand_augment(image, s, magnitude=0.0, magnitude_std=0.0, prob=1.0, ops=ops)
    )
    for seed in _seeds(12, base=5):
        np.testing.assert_array_equal(augment(seed).numpy(), IMAGES["synthetic"])


def test_rand_augment_layer_draws_follow_timm_distribution():
    n = 3000
    draw = tf.function(lambda s: tf.vectorized_map(lambda x: sample_layer(x, 15, 9.0, 0.5, 0.5), s))
    op_index, applied, magnitude, negate = (t.numpy() for t in draw(_seeds(n)))
    counts = np.bincount(op_index, minlength=15)
    assert counts.min() >= n / 15 - 4.5 * np.sqrt(n / 15)  # uniform over the 15 ops
    assert counts.max() <= n / 15 + 4.5 * np.sqrt(n / 15)
    assert abs(applied.mean() - 0.5) < 0.04 and abs(negate.mean() - 0.5) < 0.04
    assert magnitude.min() >= 0.0 and magnitude.max() <= 10.0  # N(9, 0.5) clipped to [0, 10]
    assert abs(magnitude.mean() - 8.99) < 0.05 and abs(magnitude.std() - 0.49) < 0.05


# ---- random erasing ------------------------------------------------------------------------


def test_random_erasing_probability_zero_is_identity_and_seeds_are_deterministic():
    image = tf.random.stateless_normal([HEIGHT, WIDTH, 3], [1, 2])
    for seed in _seeds(8):
        np.testing.assert_array_equal(random_erasing(image, seed, probability=0.0), image)
        first = random_erasing(image, seed, probability=1.0)
        np.testing.assert_array_equal(first, random_erasing(image, seed, probability=1.0))


def test_random_erasing_fraction_and_box_sizes_over_2000_seeds():
    n, area = 2000, HEIGHT * WIDTH
    image = tf.fill([HEIGHT, WIDTH, 3], 7.0)  # N(0, 1) noise never hits 7.0 exactly
    erase = tf.function(lambda s: tf.vectorized_map(lambda x: random_erasing(image, x), s))
    changed = (erase(_seeds(n)).numpy() != 7.0).any(axis=-1)  # [n, H, W]
    erased = changed.any(axis=(1, 2))
    assert abs(erased.mean() - 0.25) <= 0.04, erased.mean()
    for mask in changed[erased]:
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert mask.sum() == h * w  # one full rectangle, every channel noise
        # Area fraction in [0.02, 1/3] and aspect in [0.3, 1 / 0.3] up to timm's rounding of h, w.
        assert (h - 0.5) * (w - 0.5) <= area / 3 and (h + 0.5) * (w + 0.5) >= 0.02 * area
        assert (h + 0.5) / (w - 0.5) >= 0.3 and (h - 0.5) / (w + 0.5) <= 1 / 0.3
    boxes = tf.vectorized_map(lambda s: erasing_box(s, HEIGHT, WIDTH, probability=1.0), _seeds(n))
    erased_box, top, left, box_h, box_w = (b.numpy() for b in boxes)
    assert erased_box.mean() > 0.99  # 10 attempts almost always find a box that fits
    assert (top + box_h <= HEIGHT).all() and (left + box_w <= WIDTH).all()
    assert (box_h < HEIGHT).all() and (box_w < WIDTH).all() and (top >= 0).all()
