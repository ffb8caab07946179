"""Patch embedding: a P x P stride-P convolution to E channels."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="siameseim_tf")
class PatchEmbedding(keras.layers.Layer):
    """Splits [B, S, S, C] images into (S/P)^2 patches and projects each to ``embed_dim``.

    The kernel is Xavier-uniform over its flattened [E, C*P*P] view, as in MAE / SiameseIM
    (fan_in = C*P*P, fan_out = E), which Keras' conv Glorot init (fan_out = P*P*E) is not.

    Args:
        patch_size: P.
        embed_dim: E.
        in_channels: C of the input images.

    Example:
    >>> embed = PatchEmbedding(patch_size=16, embed_dim=192)
    >>> tokens = embed(keras.random.normal((2, 224, 224, 3)))  # [2, 196, 192]
    """

    def __init__(self, patch_size: int, embed_dim: int, in_channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.patch_size, self.embed_dim, self.in_channels = patch_size, embed_dim, in_channels
        fan_in, fan_out = in_channels * patch_size**2, embed_dim
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        self.proj = keras.layers.Conv2D(
            embed_dim,
            patch_size,
            strides=patch_size,
            padding="valid",
            kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
            bias_initializer="zeros",
            name="proj",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.proj.build(input_shape)

    def call(self, images):
        x = self.proj(images)  # [B, G, G, E]
        return ops.reshape(x, (-1, x.shape[1] * x.shape[2], self.embed_dim))  # [B, N, E]

    def compute_output_shape(self, input_shape):
        grid = input_shape[1] // self.patch_size
        return (input_shape[0], grid * grid, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size, embed_dim=self.embed_dim, in_channels=self.in_channels
        )
        return config
