"""take_tokens and token_range against numpy's indexing, values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.layers.tokens import take_tokens, token_range


def test_take_tokens_equals_take_along_axis_with_its_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 5)).astype("float32")  # [B, N, D]
    indices = np.stack([rng.permutation(7)[:4] for _ in range(3)]).astype("int32")  # [B, K]
    indices[1, 1] = indices[1, 0]  # a token taken twice: its gradient adds up
    upstream = rng.normal(size=(3, 4, 5)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, 7, 5]), tf.TensorSpec([None, 4], tf.int32)])
    def taken_and_gradient(x, indices):  # dynamic batch, as in a traced train step
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = take_tokens(x, indices)
        return out, tape.gradient(out, x, output_gradients=upstream)

    out, grad = taken_and_gradient(tf.constant(x), tf.constant(indices))
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, np.take_along_axis(x, indices[..., None], axis=1))
    expected = np.zeros_like(x)
    for b in range(3):
        np.add.at(expected[b], indices[b], upstream[b])
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bounds", [(1, None), (0, 1), (-4, None), (2, -1), (0, None)])
def test_token_range_equals_slicing_with_its_gradient(bounds):
    x = np.random.default_rng(1).normal(size=(3, 7, 2, 5)).astype("float32")  # [B, T, ...]
    expected = x[:, slice(*bounds)]
    upstream = np.random.default_rng(2).normal(size=expected.shape).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, 7, 2, 5])])
    def taken_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = token_range(x, *bounds)
        return out, tape.gradient(out, x, output_gradients=upstream)

    out, grad = taken_and_gradient(tf.constant(x))
    assert out.shape[1:] == expected.shape[1:]
    np.testing.assert_array_equal(out, expected)
    padded = np.zeros_like(x)
    padded[:, slice(*bounds)] = upstream
    np.testing.assert_array_equal(grad, padded)


def test_token_range_with_unknown_token_count_slices_as_python_does():
    x = tf.reshape(tf.range(24.0), (2, 4, 3))
    spec = tf.TensorSpec([None, None, 3])
    sliced = tf.function(lambda t: token_range(t, -2), input_signature=[spec])(x)
    np.testing.assert_array_equal(sliced, x.numpy()[:, -2:])
