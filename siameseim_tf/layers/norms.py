"""Token norms: LayerNorm, or BatchNorm over channels with statistics over batch x tokens.

method §3: the projector and predictor use BatchNorm whose statistics cover every token of
the *global* batch (synchronised across replicas) and are computed in float32.
"""

from __future__ import annotations

import keras
from keras import ops

from siameseim_tf.layers.distributed import cross_replica_sum
from siameseim_tf.layers.fused import batch_norm_fused


@keras.saving.register_keras_serializable(package="siameseim_tf")
class TokenBatchNorm(keras.layers.Layer):
    """BatchNorm over the last axis with statistics over all other axes, in float32.

    Matches PyTorch's ``BatchNorm1d`` applied to [B*T, C]: biased variance to normalise,
    unbiased variance in the moving average, so statistics converted from a PyTorch
    checkpoint mean the same thing.

    Args:
        momentum: weight of the old value in the moving averages (Keras convention;
            PyTorch's momentum 0.1 is 0.9 here).
        epsilon: added to the variance.
        synchronized: average the statistics over all replicas of a tf.distribute
            strategy (sync BatchNorm). Gradients flow through the all-reduce.

    Example:
    >>> norm = TokenBatchNorm()
    >>> y = norm(keras.random.normal((2, 5, 8)), training=True)  # [2, 5, 8]
    """

    def __init__(
        self, momentum: float = 0.9, epsilon: float = 1e-5, synchronized: bool = True, **kwargs
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(
            shape=(channels,), initializer="zeros", name="moving_mean", trainable=False
        )
        self.moving_variance = self.add_weight(
            shape=(channels,), initializer="ones", name="moving_variance", trainable=False
        )

    def _batch_statistics(self, x):
        """Mean and biased variance over all axes but the last; x is float32 [..., C]."""
        axes = tuple(range(len(x.shape) - 1))
        count = ops.cast(ops.prod(ops.shape(x)[:-1]), "float32")
        total, count = ops.sum(x, axis=axes), count
        if self.synchronized:
            total, count = cross_replica_sum([total, count])
        mean = total / count  # [C]
        squares = ops.sum(ops.square(x - mean), axis=axes)  # two passes: exact in float32
        if self.synchronized:
            squares = cross_replica_sum(squares)
        return mean, squares / count, count

    def call(self, inputs, training=False, fused=False):
        """``fused`` (graph-mode training, set by the block): the C++ kernels where they
        load (layers/fused.batch_norm_fused), the same statistics and updates."""
        x = ops.cast(inputs, "float32")
        if training and fused:
            out = batch_norm_fused(
                x,
                self.gamma,
                self.beta,
                self.epsilon,
                cross_replica_sum if self.synchronized else None,
            )
            if out is not None:
                y, mean, variance, count = out
                self._update_moving_statistics(mean, variance, count)
                return y
        if training:
            mean, variance, count = self._batch_statistics(x)
            self._update_moving_statistics(mean, variance, count)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        return y * self.gamma + self.beta

    def _update_moving_statistics(self, mean, variance, count):
        unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * ops.stop_gradient(mean))
        self.moving_variance.assign(
            m * self.moving_variance + (1.0 - m) * ops.stop_gradient(unbiased)
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, synchronized=self.synchronized)
        return config


def make_norm(kind: str, name: str | None = None) -> keras.layers.Layer:
    """The block norm: ``"layer"`` (LayerNorm, eps 1e-6) or ``"batch"`` (TokenBatchNorm)."""
    if kind == "layer":
        return keras.layers.LayerNormalization(epsilon=1e-6, dtype="float32", name=name)
    if kind == "batch":
        return TokenBatchNorm(name=name)
    raise ValueError(f"norm must be 'layer' or 'batch', got {kind!r}")
