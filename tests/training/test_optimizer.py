"""AdamW's update as TensorFlow's fused kernel: the formula by hand, every mode it runs in."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.training import AdamW
from tests.helpers import run_module

LR, WD, B1, B2, EPS = 0.01, 0.05, 0.9, 0.95, 1e-8


def _by_hand(weights, grads_per_step):
    """AdamW of method §6 in NumPy (float64): decoupled decay on matrices, then Adam."""
    weights = [w.astype("float64") for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, grads in enumerate(grads_per_step, start=1):
        alpha = LR * np.sqrt(1 - B2**t) / (1 - B1**t)
        for i, g in enumerate(grads):
            if weights[i].ndim >= 2:
                weights[i] -= LR * WD * weights[i]
            m[i] += (g - m[i]) * (1 - B1)
            v[i] += (g * g - v[i]) * (1 - B2)
            weights[i] -= alpha * m[i] / (np.sqrt(v[i]) + EPS)
    return weights


def _problem(seed=0, steps=4):
    rng = np.random.default_rng(seed)
    shapes = [(5, 7), (7,), (3, 4, 2)]
    weights = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(steps)]
    return weights, grads


def _run(weights, grads_per_step, wrap=lambda f: f):
    variables = [keras.Variable(w) for w in weights]
    opt = AdamW(learning_rate=LR, weight_decay=WD, beta_1=B1, beta_2=B2, epsilon=EPS)
    opt.build(variables)
    apply = wrap(lambda grads: opt.apply(grads, variables))
    for grads in grads_per_step:
        apply([tf.constant(g) for g in grads])
    return [v.numpy() for v in variables]


@pytest.mark.parametrize(
    "mode, wrap",
    [
        ("eager", lambda f: f),
        ("graph", tf.function),
        ("xla", lambda f: tf.function(f, jit_compile=True)),
    ],
)
def test_update_equals_the_formula_by_hand(mode, wrap):
    weights, grads = _problem()
    got = _run(weights, grads, wrap)
    for g, e in zip(got, _by_hand(weights, grads)):
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-6, err_msg=mode)


def test_graph_runs_the_fused_kernel():
    variables = [keras.Variable(np.ones((4, 4), "float32"))]
    opt = AdamW(learning_rate=LR, weight_decay=WD)
    opt.build(variables)
    step = tf.function(lambda g: opt.apply([g], variables))
    ops = {op.type for op in step.get_concrete_function(tf.ones((4, 4))).graph.get_operations()}
    assert "ResourceApplyAdam" in ops


def test_amsgrad_keeps_keras_ops_and_the_same_state():
    variables = [keras.Variable(np.ones((3, 3), "float32"))]
    opt = AdamW(learning_rate=LR, weight_decay=WD, amsgrad=True)
    opt.build(variables)
    opt.apply([tf.fill((3, 3), 0.5)], variables)
    assert opt._velocity_hats[0].numpy().max() > 0  # Keras' amsgrad path ran


def test_two_replicas_match_the_formula():
    report = run_module("tests.training.optimizer_replicas")
    assert report["replicas"] == 2
    assert report["max_abs_diff"] < 1e-5, report
