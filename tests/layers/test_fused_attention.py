"""The C++ attention kernels equal the attention layer's own ops, values and gradients;
they reject malformed inputs with one-line errors and step aside where they do not apply."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.hardware import cpu_flags
from siameseim_tf.layers import native
from siameseim_tf.layers.fused import attention_fused, forward_only
from siameseim_tf.layers.transformer import MultiHeadSelfAttention
from tests.helpers import native_skip_reason

NATIVE_SKIP = native_skip_reason()
HAS_COMPILER = NATIVE_SKIP is None
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))


def layer_ops_attention(qkv, num_heads: int):
    """The layer's TF-op path (transposes, batched matmuls, softmax) on the same qkv."""
    dim = qkv.shape[-1] // 3
    layer = MultiHeadSelfAttention(dim, num_heads)
    return layer._attend(qkv, fused=False)


def value_and_grad(fn, qkv, bias, graph: bool):
    """fn(qkv, bias), and the gradients of a weighted sum of it w.r.t. qkv and bias."""
    weight = tf.random.stateless_normal((*qkv.shape[:-1], qkv.shape[-1] // 3), seed=(5, 5))

    def run(x, b):
        with tf.GradientTape() as tape:
            tape.watch([x, b])
            y = fn(x, b)
            loss = tf.reduce_sum(y * weight)
        return (y, *tape.gradient(loss, [x, b]))

    return [t.numpy() for t in (tf.function(run) if graph else run)(qkv, bias)]


@needs_compiler
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # the 1-token case
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize(
    "batch, tokens, heads, head_dim",
    [(2, 5, 2, 8), (3, 80, 3, 64), (1, 1, 1, 4), (2, 33, 4, 12), (1, 197, 2, 48)],
)
def test_native_attention_equals_the_layers_ops(graph, batch, tokens, heads, head_dim):
    # The bias goes into the kernels (added per pair, summed for its gradient there).
    qkv = 2.0 * tf.random.stateless_normal((batch, tokens, 3 * heads * head_dim), seed=(1, 3))
    bias = tf.random.stateless_normal(qkv.shape[-1:], seed=(4, 3))
    got = value_and_grad(lambda x, b: attention_fused(x, heads, "native", bias=b), qkv, bias, graph)
    want = value_and_grad(lambda x, b: layer_ops_attention(x + b, heads), qkv, bias, graph)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=2e-5 * max(1.0, np.abs(b).max()), rtol=0)


@needs_compiler
@pytest.mark.parametrize("batch, tokens, heads, head_dim", [(2, 197, 3, 64), (3, 10, 2, 12)])
def test_bias_inside_the_kernels_equals_adding_it_first(batch, tokens, heads, head_dim):
    # Bit for bit: each pair's q + b, k + b, v + b are rounded as a bias add rounds them.
    ops = native.load_attention()
    qkv = 3.0 * tf.random.stateless_normal((batch, tokens, 3 * heads * head_dim), seed=(7, 1))
    bias = tf.random.stateless_normal(qkv.shape[-1:], seed=(7, 2))
    none = tf.zeros([0])
    out, probs = ops.sim_attention(qkv, bias, num_heads=heads)
    want_out, want_probs = ops.sim_attention(qkv + bias, none, num_heads=heads)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(probs, want_probs)
    inference = ops.sim_attention_inference(qkv, bias, heads)
    np.testing.assert_array_equal(inference, ops.sim_attention_inference(qkv + bias, none, heads))
    dout = tf.cos(3.0 * out)
    dqkv, dbias = ops.sim_attention_grad(qkv, bias, probs, dout, heads)
    want_dqkv, no_dbias = ops.sim_attention_grad(qkv + bias, none, probs, dout, heads)
    np.testing.assert_array_equal(dqkv, want_dqkv)
    assert no_dbias.shape == (0,)
    want_dbias = np.sum(want_dqkv.numpy().astype(np.float64), axis=(0, 1))
    np.testing.assert_allclose(dbias, want_dbias, atol=1e-5 * np.abs(want_dbias).max(), rtol=0)


@needs_compiler
def test_native_attention_matches_the_formula_by_hand():
    # one head, two tokens, head_dim 1: s = q k / 1, p = softmax(s), out = p v
    q, k, v = np.array([1.0, -2.0]), np.array([0.5, 3.0]), np.array([4.0, -1.0])
    qkv = tf.constant(np.stack([q, k, v], axis=-1)[None], tf.float32)  # [1, 2, 3]
    out, probs = native.load_attention().sim_attention(qkv, tf.zeros([0]), num_heads=1)
    s = np.outer(q, k)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(probs.numpy()[0, 0], p, rtol=1e-6)
    np.testing.assert_allclose(out.numpy()[0, :, 0], p @ v, rtol=1e-6)
    # d(sum(out))/dv_j = sum_i p_ij; d/dq_i = sum_j p_ij (v_j - out_i) k_j
    grad = native.load_attention().sim_attention_grad
    dqkv, dbias = grad(qkv, tf.constant([0.0, 0.0, 0.0]), probs, tf.ones([1, 2, 1]), 1)
    o = p @ v
    dq = (p * (v[None, :] - o[:, None]) * k[None, :]).sum(1)
    np.testing.assert_allclose(dqkv.numpy()[0, :, 2], p.sum(0), rtol=1e-6)
    np.testing.assert_allclose(dqkv.numpy()[0, :, 0], dq, rtol=1e-5, atol=1e-7)
    assert math.isclose(probs.numpy().sum(), 2.0, rel_tol=1e-6)
    # the bias gradient sums dqkv over the tokens: dk sums to 0 (a bias on k adds a constant
    # to each row of logits, which softmax ignores), dv to the number of rows
    np.testing.assert_allclose(dbias, dqkv.numpy().sum((0, 1)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbias.numpy()[[1, 2]], [0.0, 2.0], atol=1e-6)


@needs_compiler
def test_native_attention_rejects_malformed_inputs():
    ops = native.load_attention()
    none = tf.zeros([0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"qkv must be \[batch, tokens"):
        ops.sim_attention(tf.zeros([4, 12]), none, num_heads=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="is not 3 \\* num_heads"):
        ops.sim_attention(tf.zeros([1, 4, 12]), none, num_heads=3)
    qkv = tf.zeros([1, 4, 12])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \[12\] \(or \[0\]"):
        ops.sim_attention(qkv, tf.zeros([4]), num_heads=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \[12\]"):
        ops.sim_attention_inference(qkv, tf.zeros([1, 12]), num_heads=2)
    out, probs = ops.sim_attention(qkv, none, num_heads=2)
    assert out.shape == (1, 4, 4) and probs.shape == (1, 2, 4, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="probs / dout must be"):
        ops.sim_attention_grad(qkv, none, probs[:, :1], out, num_heads=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \[12\]"):
        ops.sim_attention_grad(qkv, tf.zeros([3]), probs, out, num_heads=2)
    dqkv, dbias = ops.sim_attention_grad(
        tf.zeros([1, 0, 12]),
        tf.ones([12]),
        tf.zeros([1, 2, 0, 0]),
        tf.zeros([1, 0, 4]),
        num_heads=2,
    )  # no tokens: the bias gradient is 0
    assert dqkv.shape == (1, 0, 12) and np.all(dbias.numpy() == 0)


def test_fused_attention_steps_aside_where_it_does_not_apply(monkeypatch):
    qkv = tf.zeros([1, 3, 12])
    assert attention_fused(tf.cast(qkv, tf.bfloat16), 2) is None  # float32 only
    assert attention_fused(qkv, 2, backend="xla") is None  # XLA fuses the plain ops
    monkeypatch.setattr(native, "load_attention", lambda: None)
    monkeypatch.setattr(native, "attention_status", lambda: "disabled by SIAMESEIM_NATIVE_SKIP")
    if HAS_COMPILER:
        assert attention_fused(qkv, 2) is None
        with pytest.raises(RuntimeError, match="attention is unavailable: disabled"):
            attention_fused(qkv, 2, backend="native")


@needs_compiler
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("batch, tokens, heads, head_dim", [(2, 197, 3, 64), (3, 7, 2, 5)])
def test_forward_only_attention_gives_the_same_values(graph, batch, tokens, heads, head_dim):
    qkv = 2.0 * tf.random.stateless_normal((batch, tokens, 3 * heads * head_dim), seed=(2, 7))
    bias = tf.random.stateless_normal(qkv.shape[-1:], seed=(2, 8))

    def run(x):
        with forward_only():
            return attention_fused(x, heads, "native", bias=bias)

    got = (tf.function(run) if graph else run)(qkv).numpy()
    want = layer_ops_attention(qkv + bias, heads).numpy()
    np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, np.abs(want).max()), rtol=0)
    assert attention_fused(qkv, heads, "native") is not None  # the context ended


@needs_compiler
def test_differentiating_a_forward_only_attention_is_an_error():
    qkv = tf.random.stateless_normal((1, 4, 3 * 8), seed=(1, 1))
    with tf.GradientTape() as tape:
        tape.watch(qkv)
        with forward_only():
            out = attention_fused(qkv, 2, "native")
    with pytest.raises(LookupError, match="SimAttentionInference"):
        tape.gradient(out, qkv)


_ATTENTION_OUTPUTS = """
import json, sys
import numpy as np
import tensorflow as tf
from siameseim_tf.layers import native
ops = native.load_attention()
out = []
for qkv, bias, heads in np.load(sys.argv[1], allow_pickle=True)["cases"]:
    qkv, bias = tf.constant(qkv), tf.constant(bias)
    attended, probs = ops.sim_attention(qkv, bias, num_heads=int(heads))
    dout = tf.cos(3.0 * attended)
    grad, bias_grad = ops.sim_attention_grad(qkv, bias, probs, dout, num_heads=int(heads))
    inference = ops.sim_attention_inference(qkv, bias, num_heads=int(heads))
    out.append([t.numpy().tolist() for t in (attended, grad, bias_grad, inference)])
print(native.attention_status(), json.dumps(out))
"""


_AVX2 = pytest.mark.skipif(not {"avx2", "fma"} <= cpu_flags(), reason="the CPU has no AVX2 + FMA")
_AVX_SLOW = [pytest.mark.slow, pytest.mark.skipif("avx" not in cpu_flags(), reason="no AVX")]


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # the 1-token case
@pytest.mark.skipif(not HAS_COMPILER, reason=str(NATIVE_SKIP))
@pytest.mark.parametrize(
    "env",
    [
        # an AVX2 CPU's build (x86-64-v3): attention_simd.h's AVX2 tiles
        pytest.param({"SIAMESEIM_MARCH": "x86-64-v3"}, id="avx2-build", marks=_AVX2),
        # a CPU with AVX but no AVX2 / FMA (Sandy Bridge, the oldest kind TensorFlow's
        # wheels run on): no tiles compiled, Eigen's products (built apart: ~15 s of g++)
        pytest.param({"SIAMESEIM_MARCH": "sandybridge"}, id="avx-build", marks=_AVX_SLOW),
        # this CPU's build, each kind of product forced (the default picks one of them)
        pytest.param({"SIAMESEIM_ATTENTION_TILES": "1"}, id="tiles"),
        pytest.param({"SIAMESEIM_ATTENTION_TILES": "0"}, id="eigen"),
    ],
)
def test_attention_builds_and_products_equal_the_layers_ops(tmp_path, env):
    # Register tiles for head widths that are multiples of the vector width, Eigen's GEMM
    # for the others: row and column tails (tokens not a multiple of 6, 8, 16 or 32), one
    # token, several heads.
    shapes = [(2, 1, 1, 16), (2, 7, 2, 16), (1, 13, 4, 40), (3, 79, 3, 64), (1, 275, 1, 64)]
    shapes += [(2, 20, 2, 32), (1, 9, 2, 12), (2, 37, 1, 8)]
    cases = [  # every other case with a bias
        (
            2.0 * tf.random.stateless_normal((b, t, 3 * h * d), seed=(i, 9)).numpy(),
            tf.random.stateless_normal([3 * h * d if i % 2 else 0], seed=(i, 8)).numpy(),
            h,
        )
        for i, (b, t, h, d) in enumerate(shapes)
    ]
    np.savez(tmp_path / "cases.npz", cases=np.array(cases, dtype=object))
    if "SIAMESEIM_MARCH" in env:  # a build of its own
        env = {**env, "SIAMESEIM_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _ATTENTION_OUTPUTS, str(tmp_path / "cases.npz")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status, payload = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "loaded"
    for (qkv, bias, heads), outputs in zip(cases, json.loads(payload)):
        attended, grad, bias_grad, inference = outputs
        qkv = tf.constant(qkv)
        dout = lambda y: tf.cos(3.0 * y)  # noqa: E731 - the script's upstream gradient
        with tf.GradientTape() as tape:
            tape.watch(qkv)
            want = layer_ops_attention(qkv + bias if bias.size else qkv, heads)
            loss = tf.reduce_sum(want * tf.stop_gradient(dout(want)))
        want_grad = tape.gradient(loss, qkv).numpy()
        want_bias_grad = want_grad.sum((0, 1)) if bias.size else np.zeros([0])
        want = want.numpy()
        np.testing.assert_allclose(
            bias_grad,
            want_bias_grad,
            atol=1e-4 * max(1.0, np.abs(want_bias_grad).max(initial=0)),
            rtol=0,
        )
        tolerance = 2e-5 * max(1.0, np.abs(want).max())
        np.testing.assert_allclose(attended, want, atol=tolerance, rtol=0)
        np.testing.assert_allclose(inference, want, atol=tolerance, rtol=0)
        np.testing.assert_allclose(
            grad, want_grad, atol=2e-5 * max(1.0, np.abs(want_grad).max()), rtol=0
        )
