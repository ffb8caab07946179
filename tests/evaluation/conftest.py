"""Shared fixtures of the evaluation tests: small Fashion-MNIST subsets and a tiny encoder."""

from __future__ import annotations

import os

import numpy as np
import pytest

FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def fashion_small():
    """(train_x [600,28,28,1], train_y, test_x [200,...], test_y) uint8 / int64."""
    if not os.path.isdir(FASHION):
        pytest.skip("Fashion-MNIST not installed")  # data absent on this machine only
    from siameseim_tf.evaluation.datasets import load_labelled

    train_x, train_y = load_labelled(FASHION, "train")
    test_x, test_y = load_labelled(FASHION, "test")
    return train_x[:600], train_y[:600], test_x[:200], test_y[:200]


def _tiny_encoder(seed: int = 0, **overrides):
    import keras

    from siameseim_tf.models import ViTEncoder, preset_arguments

    keras.utils.set_random_seed(seed)
    args = preset_arguments("tiny", image_size=32, patch_size=8, depth=2)
    args.update(embed_dim=64, num_heads=2)
    args.update(overrides)
    return ViTEncoder(**args)


@pytest.fixture
def make_encoder():
    """Factory of tiny ViT encoders (32 px, patch 8, depth 2, width 64): seed, **overrides."""
    return _tiny_encoder


@pytest.fixture
def separable_features():
    """Three well-separated Gaussian clusters in 16-D: (train_x, train_y, test_x, test_y)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5.0

    def draw(n):
        labels = rng.integers(0, 3, size=n)
        return (centres[labels] + rng.normal(size=(n, 16)) * 0.3).astype(np.float32), labels

    train_x, train_y = draw(300)
    test_x, test_y = draw(90)
    return train_x, train_y, test_x, test_y
