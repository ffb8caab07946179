"""Pre-norm ViT block (method §3): x + Attn(Norm(x)), then x + MLP(Norm(x))."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from siameseim_tf.layers.fused import (
    attention_applies,
    attention_fused,
    bias_add_fused,
    bias_add_residual_fused,
    bias_gelu_fused,
    gelu_exact_fused,
    layer_norm_fused,
    softmax_fused,
)
from siameseim_tf.layers.norms import make_norm
from siameseim_tf.layers.tokens import token_range

_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))


def gelu_exact(x):
    """Exact (erf) GELU written with ``erf`` so that it exports to ONNX (not ``Erfc``)."""
    return 0.5 * x * (1.0 + ops.erf(x * ops.cast(_INV_SQRT2, x.dtype)))


def dense(layer: keras.layers.Dense, x, fused: bool, residual=None):
    """``layer(x)``, or ``residual + layer(x)``; with ``fused`` (graph-mode training) its
    bias add, and the residual add with it, is one fused kernel."""
    if not fused or layer.bias is None:
        return layer(x) if residual is None else residual + layer(x)
    y = ops.matmul(x, layer.kernel)
    if residual is None:
        return bias_add_fused(y, layer.bias)
    return bias_add_residual_fused(y, layer.bias, residual)


def keep_last(x, count: int | None):
    """The last ``count`` tokens of ``x`` [B, T, D] (all of them when ``count`` is None)."""
    return x if count is None else token_range(x, -count)


def xavier_dense(units: int, name: str, dtype=None) -> keras.layers.Dense:
    """Dense with Xavier-uniform weights and zero biases (method §3 initialisation)."""
    return keras.layers.Dense(
        units,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="siameseim_tf")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention with one fused qkv projection (q, k, v stacked, heads contiguous).

    Args:
        dim: token width.
        num_heads: heads; ``dim`` must divide evenly.
        qkv_bias: bias on the qkv projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.qkv_bias = dim, num_heads, qkv_bias
        self.head_dim = dim // num_heads
        self.qkv = keras.layers.Dense(
            3 * dim,
            use_bias=qkv_bias,
            kernel_initializer="glorot_uniform",
            name="qkv",
            dtype=self.dtype_policy,
        )
        self.proj = xavier_dense(dim, "proj", self.dtype_policy)
        self.fused_softmax = False  # not saved: set by configure_blocks for graph mode

    def build(self, input_shape):
        self.qkv.build(input_shape)
        self.proj.build(tuple(input_shape[:-1]) + (self.dim,))  # a list when loaded

    def call(self, x, training=False, residual=None):
        """``[B, T, D] -> [B, T, D]``; plus ``residual`` when given (one fused kernel with
        the projection's bias in graph-mode training)."""
        fused = training and self.fused_softmax
        if fused and attention_applies(x.dtype):  # the float32 C++ kernels add the qkv bias
            qkv = ops.matmul(x, self.qkv.kernel)  # [B, T, 3D]
            out = attention_fused(qkv, self.num_heads, bias=self.qkv.bias)
        else:
            out = self._attend(dense(self.qkv, x, fused), fused)  # [B, T, D]
        return dense(self.proj, out, fused, residual)  # [B, T, D]

    def _attend(self, qkv, fused: bool):
        tokens = ops.shape(qkv)[1]
        qkv = ops.reshape(qkv, (-1, tokens, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # [3, B, H, T, hd]
        # unstack, not qkv[0], qkv[1], qkv[2]: each slice's gradient is a zero-filled
        # [3, B, H, T, hd] tensor (StridedSliceGrad) summed with the others, measured at a
        # third of a ViT-Tiny block's backward in graph mode; unstack's gradient is a stack.
        q, k, v = ops.unstack(qkv, 3, axis=0)  # [B, H, T, hd] each
        scale = ops.cast(1.0 / math.sqrt(self.head_dim), q.dtype)
        softmax = softmax_fused if fused else ops.softmax
        attn = softmax(ops.matmul(q * scale, ops.transpose(k, (0, 1, 3, 2))))  # [B, H, T, T]
        out = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3))  # [B, T, H, hd]
        return ops.reshape(out, (-1, tokens, self.dim))  # [B, T, D]

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, qkv_bias=self.qkv_bias)
        return config


@keras.saving.register_keras_serializable(package="siameseim_tf")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm transformer block with exact GELU.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP / ``dim``.
        qkv_bias: bias on the qkv projection.
        norm: ``"layer"`` (LayerNorm eps 1e-6) or ``"batch"`` (synchronised BatchNorm
            over batch x tokens, float32).
        drop_path: stochastic-depth rate (0 in pretraining).
        layer_scale: initial value of per-channel residual scales, or None (off).

    Example:
    >>> block = TransformerBlock(dim=64, num_heads=4)
    >>> y = block(keras.random.normal((2, 10, 64)))  # [2, 10, 64]
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm: str = "layer",
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.mlp_ratio = dim, num_heads, mlp_ratio
        self.qkv_bias, self.norm, self.drop_path = qkv_bias, norm, drop_path
        self.layer_scale = layer_scale
        self.hidden_dim = int(dim * mlp_ratio)
        self.norm1 = make_norm(norm, name="norm1")
        self.attn = MultiHeadSelfAttention(
            dim, num_heads, qkv_bias, name="attn", dtype=self.dtype_policy
        )
        self.norm2 = make_norm(norm, name="norm2")
        self.fc1 = xavier_dense(self.hidden_dim, "fc1", self.dtype_policy)
        self.fc2 = xavier_dense(dim, "fc2", self.dtype_policy)
        self.seed_generator = keras.random.SeedGenerator(0) if drop_path > 0 else None
        # Not constructor arguments (not saved): execution choices set by configure_blocks.
        self.xla_per_replica = False
        self.fused_kernels = False

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        for layer in (self.norm1, self.attn, self.norm2, self.fc1):
            layer.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))
        if self.layer_scale is not None:
            init = keras.initializers.Constant(self.layer_scale)
            self.gamma1 = self.add_weight(shape=(self.dim,), initializer=init, name="gamma1")
            self.gamma2 = self.add_weight(shape=(self.dim,), initializer=init, name="gamma2")

    def _residual(self, branch, gamma, training):
        if gamma is not None:
            branch = branch * ops.cast(gamma, branch.dtype)
        if training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            shape = (ops.shape(branch)[0],) + (1,) * (len(branch.shape) - 1)
            noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=branch.dtype)
            branch = branch * ops.floor(keep + noise) / keep
        return branch

    def call(self, x, training=False, last_tokens: int | None = None):
        """``[B, T, D] -> [B, T, D]``, or ``[B, last_tokens, D]``: only the last tokens'
        outputs, when the caller uses no others. The MLP then runs on those tokens alone;
        it works per token, so their values are unchanged, while the norm before it still
        sees every token (BatchNorm's statistics)."""
        if self.xla_per_replica:
            return self._call_xla(x, training, last_tokens)
        return self._forward(x, training, last_tokens)

    def _forward(self, x, training, last_tokens=None):
        x = self._attention_branch(self._norm(self.norm1, x, training), training, residual=x)
        h = self._norm(self.norm2, x, training)  # [B, T, D]
        x, h = keep_last(x, last_tokens), keep_last(h, last_tokens)  # [B, T or n, D]
        return self._mlp_branch(h, training, residual=x)

    def _norm(self, norm, x, training):
        """The norm in float32, returned in the block's compute dtype."""
        if training and self.fused_kernels:
            if self.norm == "layer":
                return layer_norm_fused(x, norm.gamma, norm.beta, norm.epsilon)
            return ops.cast(norm(x, training=True, fused=True), x.dtype)  # C++ where it loads
        return ops.cast(norm(x, training=training), x.dtype)

    def _plain_residual(self, training) -> bool:
        """Whether the residual adds its branch as it is (no layer scale, no stochastic
        depth in this call): then the add is fused with the projection's bias."""
        return self.layer_scale is None and not (training and self.drop_path > 0)

    def _attention_branch(self, h, training, residual=None):
        """Attn(h), scaled and dropped as configured; plus ``residual`` when given."""
        if residual is not None and self._plain_residual(training):
            return self.attn(h, training=training, residual=residual)
        gamma = self.gamma1 if self.layer_scale is not None else None
        branch = self._residual(self.attn(h, training=training), gamma, training)
        return branch if residual is None else residual + branch

    def _mlp_branch(self, h, training, residual=None):
        """MLP(h), scaled and dropped as configured; plus ``residual`` when given."""
        gamma = self.gamma2 if self.layer_scale is not None else None
        # Fused kernels only in graph-mode training (set by configure_blocks): inside an
        # XLA cluster the custom gradient stops XLA's own fusion, and inference / export
        # keep plain, ONNX-exportable ops.
        fused = training and self.fused_kernels
        if fused and self.fc1.bias is not None:
            hidden = bias_gelu_fused(ops.matmul(h, self.fc1.kernel), self.fc1.bias)
        else:
            gelu = gelu_exact_fused if fused else gelu_exact
            hidden = gelu(dense(self.fc1, h, fused))  # [B, T, hidden]
        if residual is not None and self._plain_residual(training):
            return dense(self.fc2, hidden, fused, residual)
        branch = self._residual(dense(self.fc2, hidden, fused), gamma, training)
        return branch if residual is None else residual + branch

    def _call_xla(self, x, training, last_tokens=None):
        """The block with its per-replica work XLA-compiled, for tf.distribute runs.

        A new tf.function per trace: each replica traces the step with its own copies of
        the variables, and one shared function would capture replica 0's (the "resource
        located in device CPU:1" failure of a whole-step XLA under MirroredStrategy).
        Synchronised BatchNorm all-reduces across replicas, so its norms stay outside the
        compiled parts; LayerNorm blocks are compiled whole.
        """
        import tensorflow as tf

        def xla(fn):
            return tf.function(fn, jit_compile=True, autograph=False)

        if self.norm != "batch":
            return xla(lambda t: self._forward(t, training, last_tokens))(x)
        x = x + xla(lambda t: self._attention_branch(t, training))(
            self._norm(self.norm1, x, training)
        )
        h = self._norm(self.norm2, x, training)
        x, h = keep_last(x, last_tokens), keep_last(h, last_tokens)
        return x + xla(lambda t: self._mlp_branch(t, training))(h)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            norm=self.norm,
            drop_path=self.drop_path,
            layer_scale=self.layer_scale,
        )
        return config


def configure_blocks(
    model: keras.Layer, xla_per_replica: bool = False, fused_kernels: bool = False
) -> int:
    """Sets how every TransformerBlock of ``model`` executes; returns how many it set.

    Args:
        xla_per_replica: XLA-compile each block's per-replica work (the cross-replica
            reductions stay outside), for tf.distribute runs.
        fused_kernels: in training, GELU, LayerNorm and softmax's backward as fused
            kernels (:mod:`~siameseim_tf.layers.fused`), for graph mode.
    """
    blocks = [layer for layer in model._flatten_layers() if isinstance(layer, TransformerBlock)]
    for block in blocks:
        block.xla_per_replica = xla_per_replica
        block.fused_kernels = block.attn.fused_softmax = fused_kernels
    return len(blocks)
