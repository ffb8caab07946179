"""benchmarks/elementwise_bound.py: the bound's stand-ins are identities with zero weight
gradients, and patch / restore swap them in and out of the modules that call the kernels."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from benchmarks import elementwise_bound
from siameseim_tf.layers import norms, transformer


def test_stand_ins_pass_values_and_gradients_through():
    x = tf.random.normal([2, 5, 8])
    gamma, beta = tf.Variable(tf.ones([8])), tf.Variable(tf.zeros([8]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = elementwise_bound.free_layer_norm(x, gamma, beta, 1e-6)
        loss = tf.reduce_sum(3.0 * y)
    dx, dgamma, dbeta = tape.gradient(loss, [x, gamma, beta])
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(dx.numpy(), np.full([2, 5, 8], 3.0, np.float32))
    assert not dgamma.numpy().any() and not dbeta.numpy().any()


def test_batch_norm_stand_in_reports_statistics_of_its_shape():
    x = tf.random.normal([2, 5, 8])
    y, mean, variance, count = elementwise_bound.free_batch_norm(
        x, tf.ones([8]), tf.zeros([8]), 1e-5
    )
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert mean.shape == variance.shape == (8,) and float(count) == 10.0


def test_patch_swaps_and_restore_puts_back():
    before = (transformer.layer_norm_fused, transformer.bias_gelu_fused, norms.batch_norm_fused)
    originals = elementwise_bound.patch()
    try:
        assert transformer.layer_norm_fused is elementwise_bound.free_layer_norm
        assert transformer.bias_add_residual_fused is elementwise_bound.free_bias_add_residual
        assert norms.batch_norm_fused is elementwise_bound.free_batch_norm
    finally:
        elementwise_bound.restore(originals)
    assert (
        transformer.layer_norm_fused,
        transformer.bias_gelu_fused,
        norms.batch_norm_fused,
    ) == before
