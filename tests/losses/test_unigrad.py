"""UniGrad (method §5) against hand-computed values and the authors' reference."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from siameseim_tf.losses import normalize_target, unigrad_loss, unigrad_terms

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "reference_values.json").read_text())


def test_matches_authors_single_replica_value():
    ref = REFERENCE["unigrad_loss"]
    loss = unigrad_loss(
        np.array(ref["pred"], "float32"),
        np.array(ref["target_before_layernorm"], "float32"),
        ref["neg_weight"],
    )
    np.testing.assert_allclose(float(loss), ref["single_replica_loss"], atol=1e-5)


def test_two_by_two_by_hand():
    # Rows p = e1, e2; targets [1, -1], [-1, 1] -> LayerNorm gives c * same, c = 1/sqrt(1+eps).
    pred = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # [B=1, N=2, D=2]
    target = np.array([[[1.0, -1.0], [-1.0, 1.0]]], "float32")
    c = 1.0 / np.sqrt(1.0 + 1e-5)
    pos = (1 - c) ** 2 + c**2  # both rows alike
    neg = c**2  # C = c^2 [[1, -1], [-1, 1]]; p C p^T = C_00 = C_11
    pos_t, neg_t = unigrad_terms(pred, target)
    np.testing.assert_allclose([float(pos_t), float(neg_t)], [pos, neg], rtol=1e-6)
    np.testing.assert_allclose(
        float(unigrad_loss(pred, target, 0.02)), (pos + 0.02 * neg) / 2, rtol=1e-6
    )


def test_properties():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(3, 5, 8)).astype("float32")
    target = rng.normal(size=(3, 5, 8)).astype("float32")
    _, neg = unigrad_terms(pred, target)
    assert float(neg) >= 0.0  # C is positive semi-definite
    # LayerNorm makes the loss blind to the target's scale and offset.
    np.testing.assert_allclose(
        float(unigrad_loss(pred, target)), float(unigrad_loss(pred, 3.0 * target + 2.0)), rtol=1e-5
    )
    normalized = np.asarray(normalize_target(target))
    np.testing.assert_allclose(normalized.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized.var(-1), 1.0, atol=1e-3)


def test_no_gradient_reaches_the_target():
    pred = tf.Variable(np.ones((1, 2, 4), "float32"))
    target = tf.Variable(np.arange(8, dtype="float32").reshape(1, 2, 4))
    with tf.GradientTape() as tape:
        loss = unigrad_loss(pred, target)
    grad_pred, grad_target = tape.gradient(loss, [pred, target])
    assert grad_target is None
    assert np.abs(grad_pred.numpy()).sum() > 0
