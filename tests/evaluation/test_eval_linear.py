"""Linear probe and its schedule / LARS optimiser."""

from __future__ import annotations

import numpy as np
import pytest

from siameseim_tf.evaluation.linear import linear_probe


# LARS' step is ~lr * 0.001 * ||W||: with 150 steps it needs an ImageNet-scale lr to move
# the head (at base lr 0.1 it stays near its init; see docs/evaluation.md).
@pytest.mark.parametrize("optimizer, base_lr", [("sgd", 0.1), ("lars", 10.0)])
def test_linear_probe_far_above_chance_on_separable_features(
    separable_features, optimizer, base_lr
):
    train_x, train_y, test_x, test_y = separable_features
    result = linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        epochs=30,
        batch_size=64,
        optimizer=optimizer,
        base_lr=base_lr,
    )
    assert result["top1"] > 0.9  # chance is 1/3
    assert result["train_top1"] > 0.9


def test_linear_probe_fails_on_random_labels(separable_features):
    # Guard against a test that always passes: shuffled test labels give ~chance.
    train_x, train_y, test_x, test_y = separable_features
    shuffled = np.random.default_rng(0).permutation(test_y)
    result = linear_probe(train_x, train_y, test_x, shuffled, epochs=10, batch_size=64)
    assert result["top1"] < 0.7


def test_warmup_cosine_schedule():
    from siameseim_tf.training.schedules import WarmupCosine

    schedule = WarmupCosine(peak_lr=1.0, total_steps=110, warmup_steps=10, min_lr=0.1)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.55, 0.1], atol=1e-6)


def test_lars_update_matches_formula():
    import keras

    from siameseim_tf.evaluation.optim import LARS

    w = keras.Variable(np.array([[3.0, 4.0]], np.float32))  # ||w|| = 5
    b = keras.Variable(np.array([1.0], np.float32))
    opt = LARS(learning_rate=0.5, momentum=0.9, trust_coefficient=0.01)
    g_w, g_b = np.array([[0.0, 2.0]], np.float32), np.array([0.5], np.float32)
    opt.apply([g_w, g_b], [w, b])
    # d = g * 0.01 * ||w|| / ||g|| = [0, 0.05]; w -= 0.5 * d.
    np.testing.assert_allclose(w.numpy(), [[3.0, 4.0 - 0.025]], rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), [1.0 - 0.25], rtol=1e-6)  # 1-D: plain momentum SGD
    opt.apply([g_w, g_b], [w, b])  # mu = 0.9 * mu + d
    np.testing.assert_allclose(b.numpy(), [0.75 - 0.5 * (0.9 * 0.5 + 0.5)], rtol=1e-6)
