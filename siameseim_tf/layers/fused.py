"""Fused kernels for graph-mode training: GELU, LayerNorm, and softmax's backward.

In graph mode (the bfloat16 path on CPUs, where XLA cannot use oneDNN's AMX bfloat16
matmuls, and float32 on CPUs with AVX-512) TensorFlow runs every element-wise op of an
expression and of its automatic gradient as a separate pass over memory. Here each forward
and each backward is one kernel with its derivative written out (docs/speed.md has the op
profile): on CPUs the C++ ops of :mod:`siameseim_tf.layers.native` (built on first use;
1.2-4.0x faster than the XLA kernels, docs/speed.md), else, or with ``backend="xla"``, one
XLA-compiled function each:

- GELU: d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi the normal CDF, phi its density;
- LayerNorm (statistics in float32): with x_hat = (x - mean) * rstd and g = dy * gamma,
  dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), dgamma = sum(dy * x_hat),
  dbeta = sum(dy);
- softmax keeps oneDNN's forward; its backward dz = y * (dy - sum(dy * y)) is one kernel;
- attention (C++ only, float32): softmax(q k^T / sqrt(hd)) v for every head straight from
  the qkv projection, with p the probabilities and g the output's gradient:
  dv = p^T g, ds = p * (g v^T - rowsum(p * g v^T)), dq = ds k / sqrt(hd),
  dk = ds^T q / sqrt(hd); one (batch, head) pair at a time, in cache, no transposes;
  under ``forward_only()`` (the momentum branch) the probabilities are not kept.

Same values as the plain ops (tests/layers/test_fused.py). Inference and export use the
plain ops (exportable to ONNX); under a whole-step XLA compile XLA fuses those itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _why_auto_uses_xla() -> str | None:
    """Why ``backend="auto"`` falls back to the XLA kernels here, or None (C++ ops)."""
    import tensorflow as tf

    from siameseim_tf.layers import native

    # CPU kernels only: with a GPU visible keep the XLA kernels, which compile for it (and
    # do not build the C++ library at all).
    if tf.config.list_logical_devices("GPU"):
        return "a GPU is visible"
    if tf.autograph.experimental.do_not_convert(native.load)() is None:
        return f"C++ unavailable: {native.status()}"
    return None


def _native_ops(backend: str):
    """The C++ op library for ``backend`` "auto" / "native", or None for the XLA kernels."""
    import tensorflow as tf

    from siameseim_tf.layers import native

    if backend not in ("auto", "native", "xla"):
        raise ValueError(f"backend must be 'auto', 'native' or 'xla', not {backend!r}")
    if backend == "xla" or (backend == "auto" and _why_auto_uses_xla() is not None):
        return None
    ops = tf.autograph.experimental.do_not_convert(native.load)()
    if ops is None:
        raise RuntimeError(f"backend='native' but the kernels are unavailable: {native.status()}")
    return ops


def describe_backend(policy: str = "float32", batch_norm: bool = False) -> str:
    """Which fused kernels ``backend="auto"`` runs here under the dtype ``policy``, for
    start-up messages. Only the libraries the run uses are loaded (built) to say so: the
    attention kernels are float32 only, the BatchNorm ones (float32 under every policy)
    only for models with ``batch_norm`` blocks."""
    from siameseim_tf.layers import native

    reason = _why_auto_uses_xla()
    if reason is not None:
        return f"XLA-compiled ({reason})"
    parts = ["C++"]
    if policy == "float32" and native.load_attention() is None:
        parts.append(f"attention with TF ops ({native.attention_status()})")
    if batch_norm and native.load_batch_norm() is None:
        parts.append(f"batch_norm with TF ops ({native.batch_norm_status()})")
    return ", ".join(parts)


def _xla(fn):
    import tensorflow as tf

    # No variables are captured, so one function serves every replica.
    return tf.function(fn, jit_compile=True, autograph=False)


@functools.cache
def _gelu_kernels():
    import tensorflow as tf

    def normal_cdf(x):
        return 0.5 * (1.0 + tf.math.erf(x * tf.cast(_SQRT_HALF, x.dtype)))

    def forward(x):
        return x * normal_cdf(x)

    def backward(x, dy):
        # float32 inside the kernel: bfloat16 inputs are widened once, not per op.
        xf = tf.cast(x, tf.float32)
        pdf = tf.exp(-0.5 * tf.square(xf)) * _INV_SQRT_2PI
        return tf.cast(tf.cast(dy, tf.float32) * (normal_cdf(xf) + xf * pdf), dy.dtype)

    return _xla(forward), _xla(backward)


def gelu_exact_fused(x, backend: str = "auto"):
    """``x * Phi(x)`` with a fused forward and a fused, hand-written backward."""
    import tensorflow as tf

    ops = _native_ops(backend)
    if ops is not None:
        forward, backward = ops.sim_gelu, ops.sim_gelu_grad
    else:
        forward, backward = _gelu_kernels()

    @tf.custom_gradient
    def gelu(inputs):
        return forward(inputs), lambda dy: backward(inputs, dy)

    return gelu(x)


@functools.cache
def _layer_norm_kernels(epsilon: float):
    import tensorflow as tf

    def normalise(x):
        xf = tf.cast(x, tf.float32)
        mean = tf.reduce_mean(xf, axis=-1, keepdims=True)
        rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(xf - mean), axis=-1, keepdims=True) + epsilon)
        return (xf - mean) * rstd, rstd

    def forward(x, gamma, beta):
        x_hat, _ = normalise(x)
        return tf.cast(x_hat * gamma + beta, x.dtype)

    def backward(x, gamma, dy):
        x_hat, rstd = normalise(x)  # recomputed: cheaper than keeping [B, T, D] float32
        dyf = tf.cast(dy, tf.float32)
        g = dyf * gamma
        mean_g = tf.reduce_mean(g, axis=-1, keepdims=True)
        mean_gx = tf.reduce_mean(g * x_hat, axis=-1, keepdims=True)
        dx = rstd * (g - mean_g - x_hat * mean_gx)
        axes = list(range(len(x.shape) - 1))
        return (
            tf.cast(dx, x.dtype),
            tf.reduce_sum(dyf * x_hat, axis=axes),
            tf.reduce_sum(dyf, axis=axes),
        )

    return _xla(forward), _xla(backward)


def layer_norm_fused(x, gamma, beta, epsilon: float, backend: str = "auto"):
    """LayerNorm over the last axis, statistics in float32, output in ``x.dtype``."""
    import tensorflow as tf

    ops = _native_ops(backend)
    if ops is not None:

        @tf.custom_gradient
        def native_layer_norm(inputs, scale, offset):
            # the forward's float32 row statistics are kept for the backward
            y, mean, rstd = ops.sim_layer_norm(inputs, scale, offset, epsilon=float(epsilon))
            return y, lambda dy: ops.sim_layer_norm_grad(inputs, scale, mean, rstd, dy)

        return native_layer_norm(x, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32))

    forward, backward = _layer_norm_kernels(float(epsilon))

    @tf.custom_gradient
    def layer_norm(inputs, scale, offset):
        return forward(inputs, scale, offset), lambda dy: backward(inputs, scale, dy)

    return layer_norm(x, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32))


@functools.cache
def _softmax_backward():
    import tensorflow as tf

    def backward(y, dy):
        yf, dyf = tf.cast(y, tf.float32), tf.cast(dy, tf.float32)
        return tf.cast(yf * (dyf - tf.reduce_sum(dyf * yf, axis=-1, keepdims=True)), y.dtype)

    return _xla(backward)


def softmax_fused(x, backend: str = "auto"):
    """Softmax over the last axis (oneDNN forward) with a one-kernel backward."""
    import tensorflow as tf

    ops = _native_ops(backend)
    backward = ops.sim_softmax_grad if ops is not None else _softmax_backward()

    @tf.custom_gradient
    def softmax(logits):
        y = tf.nn.softmax(logits, axis=-1)
        return y, lambda dy: backward(y, dy)

    return softmax(x)


def bias_add_fused(x, bias, backend: str = "auto"):
    """``x + bias`` over the last axis; with the C++ ops one kernel each for the sum and for
    the bias gradient (TensorFlow's bf16 BiasAdd measured ~3x slower per byte than its
    float32 one). Without them the plain add (which grappler turns into a BiasAdd)."""
    import tensorflow as tf

    ops = _native_ops(backend)
    bias = tf.cast(bias, x.dtype)
    if ops is None:
        return x + bias

    @tf.custom_gradient
    def bias_add(inputs, offset):
        return ops.sim_bias_add(inputs, offset), lambda dy: (dy, ops.sim_bias_add_grad(dy))

    return bias_add(x, bias)


def bias_add_residual_fused(x, bias, residual, backend: str = "auto"):
    """``residual + (x + bias)``, a block's residual add after its projection; with the C++
    ops one kernel (one pass over memory instead of a bias add and an add; the same
    values), its gradient dy for ``x`` and ``residual`` and the bias gradient's kernel."""
    import tensorflow as tf

    ops = _native_ops(backend)
    bias = tf.cast(bias, x.dtype)
    if ops is None:
        return residual + (x + bias)

    @tf.custom_gradient
    def bias_add_residual(inputs, offset, skip):
        def grad(dy):
            return dy, ops.sim_bias_add_grad(dy), dy

        return ops.sim_bias_add_residual(inputs, offset, skip), grad

    return bias_add_residual(x, bias, residual)


def bias_gelu_fused(x, bias, backend: str = "auto"):
    """``GELU(x + bias)`` over the last axis (the MLP's first layer after its matmul); with
    the C++ ops one kernel each way, the bias gradient summed in the backward's kernel.
    Without them the bias add and GELU kernels, one after the other."""
    import tensorflow as tf

    ops = _native_ops(backend)
    bias = tf.cast(bias, x.dtype)
    if ops is None:
        return gelu_exact_fused(bias_add_fused(x, bias, backend), backend)

    @tf.custom_gradient
    def bias_gelu(inputs, offset):
        def grad(dy):
            return ops.sim_bias_gelu_grad(inputs, offset, dy)  # dx, db

        return ops.sim_bias_gelu(inputs, offset), grad

    return bias_gelu(x, bias)


def _float32_library(name: str, dtype, backend: str):
    """The float32-only C++ library ``name`` ("attention", "batch_norm") for inputs of
    ``dtype``, or None where it does not apply (another dtype, the XLA backend, not
    loadable); with ``backend="native"`` a library that cannot load is an error."""
    import tensorflow as tf

    from siameseim_tf.layers import native

    if dtype != tf.float32 or _native_ops(backend) is None:
        return None
    ops = tf.autograph.experimental.do_not_convert(getattr(native, f"load_{name}"))()
    if ops is None and backend == "native":
        status = getattr(native, f"{name}_status")()
        raise RuntimeError(f"backend='native' but {name} is unavailable: {status}")
    return ops


_FORWARD_ONLY = contextvars.ContextVar("siameseim_forward_only", default=False)


@contextlib.contextmanager
def forward_only():
    """Inside, the fused attention keeps nothing for a backward (its probabilities): for
    forwards that nothing differentiates, such as the momentum branch. Differentiating
    such a forward is an error ("no gradient defined"), not a silent zero."""
    token = _FORWARD_ONLY.set(True)
    try:
        yield
    finally:
        _FORWARD_ONLY.reset(token)


def attention_applies(dtype, backend: str = "auto") -> bool:
    """Whether :func:`attention_fused` runs its C++ kernels for inputs of ``dtype``."""
    return _float32_library("attention", dtype, backend) is not None


def attention_fused(qkv, num_heads: int, backend: str = "auto", *, bias=None):
    """Multi-head self-attention from the qkv projection ``[B, T, 3D]`` (q, k, v, then heads)
    to ``[B, T, D]``; ``bias`` ([3D]), the projection's bias not yet added, is added inside
    the kernels (no separate pass over the projection, and its gradient summed there too).
    The C++ kernels for float32 where they load, else None (the caller runs its own ops;
    there is no XLA kernel: XLA fuses the plain expression itself)."""
    import tensorflow as tf

    ops = _float32_library("attention", qkv.dtype, backend)
    if ops is None:
        return None
    bias = tf.zeros([0]) if bias is None else tf.cast(bias, tf.float32)  # [0]: no bias
    if _FORWARD_ONLY.get():
        return ops.sim_attention_inference(qkv, bias, num_heads=num_heads)

    @tf.custom_gradient
    def attention(inputs, offset):
        # [B, T, D], [B, H, T, T]
        out, probs = ops.sim_attention(inputs, offset, num_heads=num_heads)
        return out, lambda dout: ops.sim_attention_grad(inputs, offset, probs, dout, num_heads)

    return attention(qkv, bias)


def batch_norm_fused(x, gamma, beta, epsilon: float, reduce_sum=None, backend: str = "auto"):
    """TokenBatchNorm's training forward (float32, statistics over every axis but the last)
    with the C++ kernels: ``(y, mean, variance, count)``, or None where they do not apply
    (the caller runs its own ops). ``reduce_sum`` adds per-channel sums over replicas (sync
    BatchNorm), in the forward and in the backward alike.

    Two passes for the exact statistics and one to normalise; the backward is one pass for
    sum(dy) and sum(dy * (x - mean)) and one for dx = gamma * rstd * (dy - mean(dy) -
    x_hat * mean(dy * x_hat)), the means over the global batch."""
    import tensorflow as tf

    ops = _float32_library("batch_norm", x.dtype, backend)
    if ops is None:
        return None
    total = reduce_sum or (lambda values: values)
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    sums, count = total([ops.sim_channel_moments(x, tf.zeros_like(gamma)), count])  # [2, C]
    mean = tf.stop_gradient(sums[0] / count)  # the custom gradient below covers its path
    variance = tf.stop_gradient(total(ops.sim_channel_moments(x, mean))[1] / count)
    rstd = tf.math.rsqrt(variance + epsilon)

    @tf.custom_gradient
    def normalise(inputs, scale, offset):
        a = scale * rstd  # [C]
        y = ops.sim_channel_affine(inputs, mean, a, offset)

        def grad(dy):
            local = ops.sim_channel_dot(inputs, dy, mean)  # [2, C]: sum(dy), sum(dy (x - m))
            means = total(local) / count
            q = -a * rstd * rstd * means[1]
            dx = ops.sim_channel_affine2(dy, inputs, mean, a, q, -a * means[0])
            return dx, local[1] * rstd, local[0]

        return y, grad

    # tensors, not variables: their reads are outside the custom gradient
    gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
    return normalise(x, gamma, beta), mean, variance, count
