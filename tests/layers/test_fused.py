"""The fused kernels equal the plain ops, values and gradients, and a block using them
trains to the same gradients; attention's q / k / v split is checked by the layer tests."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.layers import TransformerBlock, gelu_exact
from siameseim_tf.layers.fused import gelu_exact_fused, layer_norm_fused, softmax_fused
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
def test_block_with_fused_kernels_trains_to_the_same_gradients(norm):
    block = TransformerBlock(dim=16, num_heads=2, norm=norm)
    x = tf.random.stateless_normal((3, 7, 16), seed=(1, 2))
    block.build(x.shape)

    def grads(fused: bool):
        assert configure_blocks(block, fused_kernels=fused) == 1

        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(block(x, training=True) ** 2)
            return tape.gradient(loss, [x, *block.trainable_weights])

        return [g.numpy() for g in run()]

    for fused, plain in zip(grads(True), grads(False)):
        np.testing.assert_allclose(fused, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("graph", [False, True])
def test_fused_layer_norm_equals_keras_layer_norm(graph):
    norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype="float32")
    x = tf.random.stateless_normal((3, 5, 24), seed=(3, 4)) * 3.0 + 1.0
    norm.build(x.shape)
    norm.gamma.assign(tf.random.stateless_normal((24,), seed=(5, 6)))
    norm.beta.assign(tf.random.stateless_normal((24,), seed=(7, 8)))
    weight = tf.random.stateless_normal(x.shape, seed=(9, 9))

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x) * weight)
        return [fn(x), *tape.gradient(loss, [x, norm.gamma.value, norm.beta.value])]

    def fused(t):
        return layer_norm_fused(t, norm.gamma.value, norm.beta.value, norm.epsilon)

    wrap = tf.function if graph else (lambda f: f)
    for got, want in zip(wrap(lambda: run(fused))(), wrap(lambda: run(norm))()):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5, rtol=1e-5)


def test_fused_softmax_gradient_equals_autodiff():
    logits = tf.random.stateless_normal((2, 3, 7, 7), seed=(1, 1)) * 4.0
    weight = tf.random.stateless_normal(logits.shape, seed=(2, 2))

    def grad(fn):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = tf.reduce_sum(fn(logits) * weight)
        return fn(logits).numpy(), tape.gradient(loss, logits).numpy()

    for got, want in zip(grad(softmax_fused), grad(lambda t: tf.nn.softmax(t, axis=-1))):
        np.testing.assert_allclose(got, want, atol=1e-6)
