"""Evaluation preprocessing, feature extraction and the on-disk feature cache."""

from __future__ import annotations

import numpy as np
import pytest

from siameseim_tf.evaluation.features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    extract_features,
    feature_cache_key,
    pixel_features,
    preprocess_uint8,
    resize_size,
)


class CountingEncoder:
    """Wraps an encoder and counts forward calls."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, 0
        self.weights, self.image_size = encoder.weights, encoder.image_size

    def __call__(self, images, training=False):
        self.calls += 1
        return self.encoder(images, training=training)


def test_resize_rule_is_the_shared_serving_one():
    from siameseim_tf.serving import preprocessing

    assert resize_size is preprocessing.resize_size
    assert resize_size(224) == 256


def test_preprocess_is_centre_crop_when_no_resize_is_needed():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 256, 256, 3), dtype=np.uint8)
    out = np.asarray(preprocess_uint8(images, 224))
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    expected = (images[:, 16:240, 16:240].astype(np.float32) / 255 - mean) / std
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_preprocess_grayscale_upscale_and_non_square():
    gray = np.full((3, 28, 28, 1), 255, np.uint8)
    out = np.asarray(preprocess_uint8(gray, 32))
    assert out.shape == (3, 32, 32, 3)
    white = (1 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    np.testing.assert_allclose(out, np.broadcast_to(white, out.shape), rtol=1e-5)
    # Non-square: shorter side (40) -> 37, the long side (80) -> 74, centre crop 32.
    wide = np.zeros((1, 40, 80, 3), np.uint8)
    wide[:, :, 40:] = 200  # right half bright: crop columns [21, 53) of 74 straddle it
    out = np.asarray(preprocess_uint8(wide, 32))
    assert out.shape == (1, 32, 32, 3)
    assert out[0, :, 0, 0].max() < 0 and out[0, :, -1, 0].min() > 0


def test_features_match_the_encoder_and_the_cache_skips_it(tmp_path, make_encoder):
    encoder = CountingEncoder(make_encoder())
    images = np.random.default_rng(0).integers(0, 256, (10, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(10)

    first = extract_features(
        encoder, images, 32, batch_size=4, cache_dir=tmp_path, progress=False, labels=labels
    )
    assert encoder.calls == 3  # ceil(10 / 4) batches
    direct = encoder.encoder(preprocess_uint8(images, 32))
    np.testing.assert_allclose(first["pooled"], np.asarray(direct["pooled"]), atol=1e-5)
    np.testing.assert_allclose(first["cls"], np.asarray(direct["cls"]), atol=1e-5)
    np.testing.assert_array_equal(first["labels"], labels)

    second = extract_features(encoder, images, 32, batch_size=4, cache_dir=tmp_path, progress=False)
    assert encoder.calls == 3  # cache hit: the encoder did not run again
    np.testing.assert_array_equal(second["pooled"], first["pooled"])
    assert "labels" not in second
    assert len(list(tmp_path.iterdir())) == 1


def test_cache_key_depends_on_weights_images_and_size(make_encoder):
    encoder = make_encoder(seed=0)
    images = np.zeros((4, 28, 28, 1), np.uint8)
    key = feature_cache_key(encoder, images, 32)
    assert key == feature_cache_key(make_encoder(seed=0), images, 32)  # same weights
    assert key != feature_cache_key(make_encoder(seed=1), images, 32)
    assert key != feature_cache_key(encoder, images + 1, 32)
    assert key != feature_cache_key(encoder, images, 40)


def test_changed_weights_miss_the_cache(tmp_path, make_encoder):
    encoder = CountingEncoder(make_encoder())
    images = np.zeros((2, 28, 28, 1), np.uint8)
    extract_features(encoder, images, 32, cache_dir=tmp_path, progress=False)
    encoder.encoder.cls_token.assign(encoder.encoder.cls_token + 1.0)
    extract_features(encoder, images, 32, cache_dir=tmp_path, progress=False)
    assert encoder.calls == 2


@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_features_are_flattened_preprocessed_images(channels):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, channels), dtype=np.uint8)
    features = pixel_features(images, 32, batch_size=2)
    assert features["pooled"].shape == (5, 32 * 32 * 3)
    np.testing.assert_allclose(
        features["cls"], np.asarray(preprocess_uint8(images, 32)).reshape(5, -1), atol=1e-6
    )
