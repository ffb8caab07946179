"""The fused GELU equals the plain one, values and gradients, and a block using it trains
to the same gradients; attention's q / k / v split is checked by the layer tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.layers import TransformerBlock, gelu_exact
from siameseim_tf.layers.fused import gelu_exact_fused
from siameseim_tf.layers.transformer import configure_blocks


def value_and_grad(fn, x, graph: bool):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(1.0, 1.0 + y.shape[-1]))
        return y, tape.gradient(loss, x)

    y, g = (tf.function(run) if graph else run)(x)
    return y.numpy().astype(np.float64), g.numpy().astype(np.float64)


@pytest.mark.parametrize("graph", [False, True])
def test_fused_gelu_values_and_gradient_equal_plain(graph):
    x = tf.constant(np.linspace(-6, 6, 4 * 97, dtype=np.float32).reshape(4, 97))
    y_plain, g_plain = value_and_grad(gelu_exact, x, graph)
    y_fused, g_fused = value_and_grad(gelu_exact_fused, x, graph)
    np.testing.assert_allclose(y_fused, y_plain, atol=1e-6)
    np.testing.assert_allclose(g_fused, g_plain, atol=2e-5, rtol=1e-5)


def test_fused_gelu_gradient_matches_the_hand_derivative():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.7], np.float32)
    _, grad = value_and_grad(gelu_exact_fused, tf.constant(x[None]), graph=False)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(grad[0], (cdf + x * pdf) * np.arange(1, 6), rtol=1e-5, atol=1e-6)


def test_fused_gelu_keeps_bfloat16():
    x = tf.cast(tf.linspace(-3.0, 3.0, 64), tf.bfloat16)[None]
    y, g = value_and_grad(gelu_exact_fused, x, graph=True)
    y_ref, g_ref = value_and_grad(gelu_exact, tf.cast(x, tf.float32), graph=True)
    assert gelu_exact_fused(x).dtype == tf.bfloat16
    np.testing.assert_allclose(y, y_ref, atol=0.02, rtol=0.01)  # 8 significant bits
    np.testing.assert_allclose(g, g_ref, atol=0.05, rtol=0.01)


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_block_with_fused_gelu_trains_to_the_same_gradients(norm):
    block = TransformerBlock(dim=16, num_heads=2, norm=norm)
    x = tf.random.stateless_normal((3, 7, 16), seed=(1, 2))
    block.build(x.shape)

    def grads(fused: bool):
        assert configure_blocks(block, fused_gelu=fused) == 1

        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(block(x, training=True) ** 2)
            return tape.gradient(loss, [x, *block.trainable_weights])

        return [g.numpy() for g in run()]

    for fused, plain in zip(grads(True), grads(False)):
        np.testing.assert_allclose(fused, plain, atol=1e-5, rtol=1e-5)
