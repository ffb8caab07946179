"""The C++ BatchNorm kernels give TokenBatchNorm's values, gradients and moving statistics;
they reject malformed inputs with one-line errors and step aside where they do not apply."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.layers import TokenBatchNorm, native
from siameseim_tf.layers.fused import batch_norm_fused
from tests.helpers import native_skip_reason

NATIVE_SKIP = native_skip_reason()
needs_compiler = pytest.mark.skipif(NATIVE_SKIP is not None, reason=str(NATIVE_SKIP))


def norm_and_grads(x, dy, fused: bool, graph: bool):
    norm = TokenBatchNorm(momentum=0.7)
    norm.build(x.shape)
    norm.gamma.assign(tf.random.stateless_normal(norm.gamma.shape, seed=(1, 2)))
    norm.beta.assign(tf.random.stateless_normal(norm.beta.shape, seed=(1, 3)))

    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = norm(x, training=True, fused=fused)
            loss = tf.reduce_sum(y * dy)
        return [y, *tape.gradient(loss, [x, norm.gamma, norm.beta])]

    out = (tf.function(run) if graph else run)()
    return [t.numpy() for t in out] + [norm.moving_mean.numpy(), norm.moving_variance.numpy()]


@needs_compiler
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("shape", [(4, 33, 24), (2, 275, 192), (130, 7), (1, 1, 5)])
def test_fused_batch_norm_equals_token_batch_norm(graph, shape):
    x = 3.0 * tf.random.stateless_normal(shape, seed=(4, 1)) + 1.5
    dy = tf.random.stateless_normal(shape, seed=(4, 2))
    fused = norm_and_grads(x, dy, True, graph)
    plain = norm_and_grads(x, dy, False, graph)
    names = ("y", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance")
    for name, a, b in zip(names, fused, plain):
        scale = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a, b, atol=3e-6 * scale * np.sqrt(x.shape[0]), err_msg=name)


@needs_compiler
def test_fused_batch_norm_by_hand():
    # one channel, rows 1 and 3: mean 2, biased variance 1, x_hat = -1, +1
    x = tf.constant([[1.0], [3.0]])
    y, mean, variance, count = batch_norm_fused(x, tf.constant([2.0]), tf.constant([0.5]), 0.0)
    np.testing.assert_allclose(y.numpy()[:, 0], [-1.5, 2.5])
    assert (mean.numpy(), variance.numpy(), count.numpy()) == ([2.0], [1.0], 2.0)
    # loss = sum(y * dy), dy = (1, 0): dbeta = 1, dgamma = sum(dy x_hat) = -1,
    # dx = gamma * rstd * (dy - mean(dy) - x_hat * mean(dy x_hat)) = 2 * ((0.5, -0.5) - (0.5, -0.5))
    with tf.GradientTape() as tape:
        gamma, beta = tf.Variable([2.0]), tf.Variable([0.5])
        tape.watch(x)
        y = batch_norm_fused(x, gamma, beta, 0.0)[0]
        loss = tf.reduce_sum(y * tf.constant([[1.0], [0.0]]))
    dx, dgamma, dbeta = tape.gradient(loss, [x, gamma, beta])
    np.testing.assert_allclose(dx.numpy()[:, 0], [0.0, 0.0], atol=1e-7)
    assert (dgamma.numpy(), dbeta.numpy()) == ([-1.0], [1.0])


@needs_compiler
def test_batch_norm_kernels_reject_malformed_inputs():
    ops = native.load_batch_norm()
    x = tf.zeros([4, 8])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"per-channel input 1 must be \[8\]"):
        ops.sim_channel_moments(x, tf.zeros([7]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in shape"):
        ops.sim_channel_dot(x, tf.zeros([4, 9]), tf.zeros([8]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in shape"):
        ops.sim_channel_affine2(x, tf.zeros([3, 8]), *[tf.zeros([8])] * 4)
    assert (
        ops.sim_channel_moments(tf.zeros([0, 8]), tf.zeros([8])).numpy().tolist() == [[0.0] * 8] * 2
    )


def test_fused_batch_norm_steps_aside_where_it_does_not_apply(monkeypatch):
    x = tf.ones([2, 3, 4])
    gamma, beta = tf.ones([4]), tf.zeros([4])
    assert batch_norm_fused(tf.cast(x, tf.bfloat16), gamma, beta, 1e-5) is None  # float32 only
    assert batch_norm_fused(x, gamma, beta, 1e-5, backend="xla") is None
    monkeypatch.setattr(native, "load_batch_norm", lambda: None)
    monkeypatch.setattr(native, "batch_norm_status", lambda: "disabled by SIAMESEIM_NATIVE_SKIP")
    if NATIVE_SKIP is None:
        assert batch_norm_fused(x, gamma, beta, 1e-5) is None
        with pytest.raises(RuntimeError, match="batch_norm is unavailable: disabled"):
            batch_norm_fused(x, gamma, beta, 1e-5, backend="native")
    norm = TokenBatchNorm()
    y = norm(x * tf.range(3.0)[:, None], training=True, fused=True)  # the plain ops then
    np.testing.assert_allclose(tf.reduce_mean(y, [0, 1]).numpy(), 0.0, atol=1e-6)
