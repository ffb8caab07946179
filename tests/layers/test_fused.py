"""The fused kernels (C++ ops and their XLA fallback) equal the plain ops, values and
gradients, and a block using them trains to the same gradients; attention's q / k / v split
is checked by the layer tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.layers import TransformerBlock, gelu_exact, native
from siameseim_tf.layers.fused import (
    bias_add_fused,
    bias_add_residual_fused,
    bias_gelu_fused,
    gelu_exact_fused,
    layer_norm_fused,
    softmax_fused,
)
from siameseim_tf.layers.transformer import configure_blocks
from tests.helpers import NEEDS_TF_BF16_KERNELS, native_skip_reason

NATIVE_SKIP = native_skip_reason()
HAS_COMPILER = NATIVE_SKIP is None
BACKENDS = [
    "xla",
    pytest.param("native", marks=pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))),
]


def value_and_grad(fn, x, graph: bool):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(1.0, 1.0 + y.shape[-1]))
        return y, tape.gradient(loss, x)

    y, g = (tf.function(run) if graph else run)(x)
    return y.numpy().astype(np.float64), g.numpy().astype(np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("graph", [False, True])
def test_fused_gelu_values_and_gradient_equal_plain(graph, backend):
    # beyond +-4 erf is clamped, far out the normal density underflows: both must hold
    x = tf.constant(np.linspace(-12, 12, 4 * 997, dtype=np.float32).reshape(4, 997))
    y_plain, g_plain = value_and_grad(gelu_exact, x, graph)
    y_fused, g_fused = value_and_grad(lambda t: gelu_exact_fused(t, backend), x, graph)
    # float32 erf approximations (TF's, XLA's, ours) differ by ~1e-7 x |x| out there
    np.testing.assert_allclose(y_fused, y_plain, atol=2e-6)
    # the loss weights elements by up to 997: 1e-7 of that where the gradient is ~0
    np.testing.assert_allclose(g_fused, g_plain, atol=1e-7 * x.shape[-1], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_gelu_gradient_matches_the_hand_derivative(backend):
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.7], np.float32)
    fn = lambda t: gelu_exact_fused(t, backend)  # noqa: E731
    _, grad = value_and_grad(fn, tf.constant(x[None]), graph=False)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(grad[0], (cdf + x * pdf) * np.arange(1, 6), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_gelu_keeps_bfloat16(backend):
    x = tf.cast(tf.linspace(-3.0, 3.0, 64), tf.bfloat16)[None]
    y, g = value_and_grad(lambda t: gelu_exact_fused(t, backend), x, graph=True)
    y_ref, g_ref = value_and_grad(gelu_exact, tf.cast(x, tf.float32), graph=True)
    assert gelu_exact_fused(x, backend).dtype == tf.bfloat16
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


@pytest.mark.parametrize("mode", ["plain", "fused", "xla_per_replica"])
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_block_keeping_the_last_tokens_equals_slicing_its_output(norm, mode):
    """``last_tokens``: same values and gradients as slicing the full output, BatchNorm's
    moving statistics included (its batch statistics still see every token)."""
    x = tf.random.stateless_normal((3, 9, 16), seed=(3, 4))

    def train_once(block, last):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = block(x, training=True, last_tokens=last)[:, -4:]  # [3, 4, 16]
            loss = tf.reduce_sum(y * tf.range(1.0, 17.0))
        return [y, *tape.gradient(loss, [x, *block.trainable_weights])]

    weights, outputs = None, {}
    for last in (None, 4):
        block = TransformerBlock(dim=16, num_heads=2, norm=norm)
        block.build(x.shape)
        weights = weights or block.get_weights()
        block.set_weights(weights)  # the same random weights in both
        configure_blocks(block, mode == "xla_per_replica", fused_kernels=mode == "fused")
        results = tf.function(train_once)(block, last)
        outputs[last] = [t.numpy() for t in results] + [w.numpy() for w in block.weights]
    assert outputs[4][0].shape == (3, 4, 16)
    for kept, full in zip(outputs[4], outputs[None]):
        # float32 rounding of sums reordered by the smaller GEMMs: gradients reach ~100
        np.testing.assert_allclose(kept, full, atol=1e-6 * (1 + np.abs(full).max()), rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 24), (2, 67, 7), (130, 192)])
def test_fused_layer_norm_equals_keras_layer_norm(graph, shape, backend):
    # widths off the 16-lane blocks, row counts off the 64-row partial sums
    norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype="float32")
    x = tf.random.stateless_normal(shape, seed=(3, 4)) * 3.0 + 1.0
    norm.build(x.shape)
    norm.gamma.assign(tf.random.stateless_normal(shape[-1:], seed=(5, 6)))
    norm.beta.assign(tf.random.stateless_normal(shape[-1:], seed=(7, 8)))
    weight = tf.random.stateless_normal(x.shape, seed=(9, 9))

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x) * weight)
        return [fn(x), *tape.gradient(loss, [x, norm.gamma.value, norm.beta.value])]

    def fused(t):
        return layer_norm_fused(t, norm.gamma.value, norm.beta.value, norm.epsilon, backend)

    wrap = tf.function if graph else (lambda f: f)
    for got, want in zip(wrap(lambda: run(fused))(), wrap(lambda: run(norm))()):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=5e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 2, 33, 197)])
def test_fused_softmax_gradient_equals_autodiff(shape, backend):
    logits = tf.random.stateless_normal(shape, seed=(1, 1)) * 4.0
    weight = tf.random.stateless_normal(logits.shape, seed=(2, 2))

    def grad(fn):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = tf.reduce_sum(fn(logits) * weight)
        return fn(logits).numpy(), tape.gradient(loss, logits).numpy()

    fused = lambda t: softmax_fused(t, backend)  # noqa: E731
    for got, want in zip(grad(fused), grad(lambda t: tf.nn.softmax(t, axis=-1))):
        np.testing.assert_allclose(got, want, atol=1e-6)


def _bf16_inputs():
    x = tf.random.stateless_normal((4, 9, 40), seed=(6, 1)) * 2.0 + 0.5
    return tf.cast(x, tf.bfloat16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_bfloat16_layer_norm_stays_within_bfloat16_rounding(backend):
    gamma = tf.random.stateless_normal((40,), seed=(6, 2))
    beta = tf.random.stateless_normal((40,), seed=(6, 3))
    x16 = _bf16_inputs()
    # reference: float32 ops on the same (bf16-rounded) inputs
    ln = lambda t: layer_norm_fused(t, gamma, beta, 1e-6, backend)  # noqa: E731
    ln_ref = lambda t: layer_norm_fused(t, gamma, beta, 1e-6, "xla")  # noqa: E731
    y, g = value_and_grad(ln, x16, graph=True)
    y_ref, g_ref = value_and_grad(ln_ref, tf.cast(x16, tf.float32), graph=True)
    assert ln(x16).dtype == tf.bfloat16
    np.testing.assert_allclose(y, y_ref, atol=0.02, rtol=0.01)  # 8 significant bits
    np.testing.assert_allclose(g, g_ref, atol=0.3, rtol=0.02)  # dx sums 40 rounded terms


@NEEDS_TF_BF16_KERNELS
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_bfloat16_softmax_stays_within_bfloat16_rounding(backend):
    x16 = _bf16_inputs()
    sm = lambda t: softmax_fused(t, backend)  # noqa: E731
    p, dp = value_and_grad(sm, x16, graph=True)
    p_ref, dp_ref = value_and_grad(lambda t: tf.nn.softmax(t, -1), tf.cast(x16, tf.float32), True)
    np.testing.assert_allclose(p, p_ref, atol=0.01, rtol=0.01)
    np.testing.assert_allclose(dp, dp_ref, atol=0.3, rtol=0.02)


@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
def test_native_kernels_build_and_reject_mismatched_shapes():
    assert native.status() == "loaded"
    ops = native.load()
    x = tf.zeros([4, 8])
    with pytest.raises(tf.errors.InvalidArgumentError, match="gamma and beta need 8"):
        ops.sim_layer_norm(x, tf.ones([7]), tf.zeros([8]), epsilon=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shapes differ"):
        ops.sim_gelu_grad(x, tf.zeros([4, 9]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="mean and rstd need 4"):
        ops.sim_layer_norm_grad(x, tf.ones([8]), tf.zeros([3]), tf.ones([4]), x)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \[8\], got \[7\]"):
        ops.sim_bias_gelu(x, tf.zeros([7]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shapes differ"):
        ops.sim_bias_gelu_grad(x, tf.zeros([8]), tf.zeros([4, 9]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shapes differ"):
        ops.sim_bias_add_residual(x, tf.zeros([8]), tf.zeros([4, 9]))


def test_fused_kernels_fall_back_to_xla_without_the_native_library(monkeypatch):
    monkeypatch.setattr(native, "load", lambda: None)
    monkeypatch.setattr(native, "status", lambda: "no C++ compiler (g++) on PATH")
    x = tf.constant([[-1.0, 0.0, 2.0]])
    np.testing.assert_allclose(gelu_exact_fused(x).numpy(), gelu_exact(x).numpy(), atol=1e-6)
    with pytest.raises(RuntimeError, match="kernels are unavailable: no C"):
        gelu_exact_fused(x, backend="native")
    with pytest.raises(ValueError, match="backend must be"):
        softmax_fused(x, backend="cuda")


_KERNEL_OUTPUTS = """
import json, sys
import numpy as np
import tensorflow as tf
from siameseim_tf.layers import native
ops = native.load()
x = tf.constant(np.linspace(-7, 7, 6 * 40, dtype=np.float32).reshape(6, 40))
y, mean, rstd = ops.sim_layer_norm(x, tf.ones([40]), tf.zeros([40]), epsilon=1e-6)
dx, dg, db = ops.sim_layer_norm_grad(x, tf.ones([40]), mean, rstd, tf.sin(x))
out = [y, dx, dg, db, ops.sim_gelu(x), ops.sim_gelu_grad(x, tf.cos(x))]
out += [ops.sim_bias_gelu(x, x[0]), *ops.sim_bias_gelu_grad(x, x[0], tf.cos(x))]
attention = native.load_attention()
qkv = tf.reshape(tf.sin(tf.range(2 * 7 * 60, dtype=tf.float32)), (2, 7, 60))  # 2 heads of 10
bias = tf.cos(tf.range(60, dtype=tf.float32))
attended, probs = attention.sim_attention(qkv, bias, num_heads=2)
out += [attended, probs, *attention.sim_attention_grad(qkv, bias, probs, tf.cos(attended), 2)]
bn = native.load_batch_norm()
m = bn.sim_channel_moments(x, tf.reduce_mean(x, 0))
out += [m, bn.sim_channel_dot(x, tf.sin(x), m[0])]
out += [bn.sim_channel_affine2(x, tf.cos(x), m[0], m[1], m[0], m[1])]
print(native.status(), native.attention_status(), native.batch_norm_status(),
      json.dumps([t.numpy().tolist() for t in out]))
"""


@pytest.mark.slow  # builds the three libraries three times in a fresh cache: ~1.5 min of g++
@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
def test_kernels_built_for_older_cpus_equal_this_cpus_build(tmp_path):
    # The maths is compiled for the CPU it runs on; an AVX2 machine's build (x86-64-v3) and
    # an AVX-only one's (sandybridge: no AVX2, no FMA, so no attention tiles) must give this
    # machine's results to float32 rounding (FMA contraction may differ).
    def run(env):
        base = {k: v for k, v in os.environ.items() if k != "SIAMESEIM_MARCH"}  # ours decide
        env = {**base, "SIAMESEIM_CACHE": str(tmp_path / "cache"), **env}
        done = subprocess.run(
            [sys.executable, "-c", _KERNEL_OUTPUTS], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        *statuses, payload = done.stdout.strip().splitlines()[-1].split(" ", 3)
        assert statuses == ["loaded"] * 3
        return json.loads(payload)

    here = run({})
    for march in ("x86-64-v3", "sandybridge"):
        for older, ours in zip(run({"SIAMESEIM_MARCH": march}), here):
            np.testing.assert_allclose(older, ours, atol=2e-6, rtol=1e-6, err_msg=march)
    for name in ("fused_block", "attention", "batch_norm"):
        assert len(list((tmp_path / "cache").glob(f"{name}_*.so"))) == 3


@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
def test_one_library_can_be_switched_off():
    # The usual cache: the other libraries load as built (a fresh one would rebuild them).
    env = {**os.environ, "SIAMESEIM_NATIVE_SKIP": "attention"}
    script = (
        "from siameseim_tf.layers import native; print(native.status(), native.attention_status())"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.stdout.split(None, 1) == ["loaded", "disabled by SIAMESEIM_NATIVE_SKIP=attention\n"]


def test_start_up_line_says_which_fused_kernels_run(monkeypatch):
    from siameseim_tf.training.run import describe_xla

    assert describe_xla("step") == "step"
    if HAS_COMPILER:
        assert describe_xla("off") == "off (graph mode, fused kernels: C++)"
        monkeypatch.setattr(native, "load_attention", lambda: None)
        monkeypatch.setattr(native, "attention_status", lambda: "disabled by X")
        assert describe_xla("off") == (
            "off (graph mode, fused kernels: C++, attention with TF ops (disabled by X))"
        )
        # bf16 never runs the float32 attention kernels: nothing to say about them
        assert describe_xla("off", "mixed_bfloat16") == "off (graph mode, fused kernels: C++)"
        monkeypatch.setattr(native, "load_batch_norm", lambda: None)
        monkeypatch.setattr(native, "batch_norm_status", lambda: "disabled by Y")
        assert describe_xla("off", "mixed_bfloat16", batch_norm=True) == (
            "off (graph mode, fused kernels: C++, batch_norm with TF ops (disabled by Y))"
        )
        # a model without BatchNorm blocks neither loads nor mentions that library
        assert describe_xla("off", "mixed_bfloat16") == "off (graph mode, fused kernels: C++)"
    monkeypatch.setattr(native, "load", lambda: None)
    monkeypatch.setattr(native, "status", lambda: "disabled by SIAMESEIM_NATIVE=0")
    assert describe_xla("off") == (
        "off (graph mode, fused kernels: XLA-compiled (C++ unavailable: disabled by "
        "SIAMESEIM_NATIVE=0))"
    )


# fused kernel -> the plain expression it replaces (GELU(x + b): the MLP's first layer)
BIAS_KERNELS = {
    "bias_add": (bias_add_fused, lambda t, b: t + b),
    "bias_gelu": (bias_gelu_fused, lambda t, b: gelu_exact(t + b)),
}


@pytest.mark.parametrize("kernel", sorted(BIAS_KERNELS))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_fused_bias_kernels_and_their_gradients_equal_plain(kernel, backend, dtype):
    x = tf.cast(tf.random.stateless_normal((3, 67, 24), seed=(8, 1)), dtype)
    bias = tf.random.stateless_normal((24,), seed=(8, 2))
    weight = tf.cast(tf.random.stateless_normal(x.shape, seed=(8, 3)), dtype)

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, bias])
            y = fn(x, bias)
            loss = tf.reduce_sum(tf.cast(y * weight, tf.float32))
        return [y, *tape.gradient(loss, [x, bias])]

    fused, plain = BIAS_KERNELS[kernel]
    got = run(lambda t, b: fused(t, b, backend))
    want = run(lambda t, b: plain(t, tf.cast(b, t.dtype)))
    assert got[0].dtype == dtype
    # bf16: the fused kernel adds the bias in float32 and sums its gradient unrounded
    tol = 2e-6 if dtype == tf.float32 else 0.02
    for a, b in zip(got, want):
        a, b = tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy()
        np.testing.assert_allclose(a, b, atol=tol * max(1.0, np.abs(b).max()), rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_fused_residual_bias_add_equals_the_bias_add_then_the_add(backend, dtype):
    # One kernel for residual + (x + bias) rounds x + bias to the dtype first, as the two
    # ops do: the same values and gradients, bit for bit, in float32 and bfloat16.
    x, residual, weight = (
        tf.cast(tf.random.stateless_normal((3, 67, 24), seed=(9, i)), dtype) for i in range(3)
    )
    bias = tf.random.stateless_normal((24,), seed=(9, 3))

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, bias, residual])
            y = fn()
            loss = tf.reduce_sum(tf.cast(y * weight, tf.float32))
        return [y, *tape.gradient(loss, [x, bias, residual])]

    got = run(lambda: bias_add_residual_fused(x, bias, residual, backend))
    want = run(lambda: residual + bias_add_fused(x, bias, backend))
    assert got[0].dtype == dtype
    for a, b in zip(got, want):
        np.testing.assert_array_equal(tf.cast(a, tf.float32), tf.cast(b, tf.float32))


@NEEDS_TF_BF16_KERNELS
def test_block_with_fused_kernels_keeps_bfloat16_matmuls():
    block = TransformerBlock(dim=16, num_heads=2, dtype="mixed_bfloat16")
    x = tf.random.stateless_normal((2, 5, 16), seed=(4, 4))
    block.build(x.shape)
    outputs = {}
    for fused in (False, True):
        configure_blocks(block, fused_kernels=fused)
        outputs[fused] = tf.function(lambda: block(x, training=True))()
    assert outputs[True].dtype == outputs[False].dtype == tf.bfloat16
    np.testing.assert_allclose(
        tf.cast(outputs[True], tf.float32), tf.cast(outputs[False], tf.float32), atol=0.1
    )
