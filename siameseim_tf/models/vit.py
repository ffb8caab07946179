"""ViT encoder (backbone): what SiameseIM pretrains and what gets exported and evaluated."""

from __future__ import annotations

import keras
from keras import ops

from siameseim_tf.layers import PatchEmbedding, TransformerBlock, sincos_2d_embedding
from siameseim_tf.layers.tokens import take_tokens

# name -> (embed_dim, depth, num_heads, patch_size)  (method §3 sizes; usual ViT naming)
VIT_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3, patch_size=16),
    "small": dict(embed_dim=384, depth=12, num_heads=6, patch_size=16),
    "base": dict(embed_dim=768, depth=12, num_heads=12, patch_size=16),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, patch_size=16),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16, patch_size=14),
}


def preset_arguments(preset: str, **overrides) -> dict:
    """Constructor arguments of a size preset, with overrides (e.g. ``depth=4``)."""
    if preset not in VIT_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(VIT_PRESETS)}")
    return {**VIT_PRESETS[preset], **overrides}


@keras.saving.register_keras_serializable(package="siameseim_tf")
class ViTEncoder(keras.Model):
    """Vision Transformer encoder with a CLS token and fixed 2-D sin-cos positions.

    Called on images it returns a dict: ``cls`` [B, E] (CLS output), ``tokens`` [B, N', E]
    (patch-token outputs; N' = N, or the number of visible tokens) and ``pooled`` [B, E]
    (mean of the patch tokens, the feature used by linear probe, fine-tuning and export).

    Args:
        image_size: input side S.
        patch_size: P; S must be a multiple of P.
        embed_dim: E.
        depth: number of blocks L.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / E.
        qkv_bias: bias on the qkv projections.
        drop_path_rate: maximum stochastic-depth rate (linear over depth, as in timm).
        layer_scale: initial layer-scale value or None.
        final_norm: LayerNorm on all output tokens (off in SiameseIM pretraining).
        pool_norm: LayerNorm on the pooled feature (``fc_norm`` of fine-tuned checkpoints).
        trainable_patch_embed: train the patch embedding; SiameseIM freezes it (MoCo v3).

    Example:
    >>> encoder = ViTEncoder(**preset_arguments("tiny", image_size=32, patch_size=8, depth=2))
    >>> features = encoder(keras.random.normal((2, 32, 32, 3)))
    >>> features["pooled"].shape
    TensorShape([2, 192])
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        layer_scale: float | None = None,
        final_norm: bool = False,
        pool_norm: bool = False,
        trainable_patch_embed: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of {patch_size}")
        self.image_size, self.patch_size, self.embed_dim = image_size, patch_size, embed_dim
        self.depth, self.num_heads, self.mlp_ratio = depth, num_heads, mlp_ratio
        self.qkv_bias, self.drop_path_rate, self.layer_scale = qkv_bias, drop_path_rate, layer_scale
        self.final_norm, self.pool_norm = final_norm, pool_norm
        self.trainable_patch_embed = trainable_patch_embed
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2

        self.patch_embed = PatchEmbedding(
            patch_size, embed_dim, name="patch_embed", dtype=self.dtype_policy
        )
        self.patch_embed.trainable = trainable_patch_embed
        rates = [drop_path_rate * k / max(depth - 1, 1) for k in range(depth)]
        self.blocks = [
            TransformerBlock(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                norm="layer",
                drop_path=rates[k],
                layer_scale=layer_scale,
                name=f"blocks_{k}",
                dtype=self.dtype_policy,
            )
            for k in range(depth)
        ]
        self.norm = (
            keras.layers.LayerNormalization(epsilon=1e-6, dtype="float32", name="norm")
            if final_norm
            else None
        )
        self.fc_norm = (
            keras.layers.LayerNormalization(epsilon=1e-6, dtype="float32", name="fc_norm")
            if pool_norm
            else None
        )
        self.build((None, image_size, image_size, 3))

    def build(self, input_shape):
        if self.built:
            return
        self.patch_embed.build(tuple(input_shape))
        self.cls_token = self.add_weight(
            shape=(1, 1, self.embed_dim),
            name="cls_token",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        # Fixed sin-cos table with a zero CLS row; a weight only so checkpoints carry it.
        self.pos_embed = self.add_weight(
            shape=(1, self.num_patches + 1, self.embed_dim),
            name="pos_embed",
            trainable=False,
            initializer=keras.initializers.Constant(
                sincos_2d_embedding(self.grid_size, self.embed_dim, cls_token=True)[None]
            ),
        )
        token_shape = (None, self.num_patches + 1, self.embed_dim)
        for block in self.blocks:
            block.build(token_shape)
        for norm in (self.norm, self.fc_norm):
            if norm is not None:
                norm.build(token_shape)
        self.built = True

    def embed_patches(self, images, visible_indices=None):
        """Patch tokens + positions, optionally only the visible ones: [B, N or V, E]."""
        x = self.patch_embed(images)  # [B, N, E]
        x = x + ops.cast(self.pos_embed[:, 1:], x.dtype)
        if visible_indices is not None:
            x = take_tokens(x, visible_indices)  # [B, V, E]
        return x

    def encode_tokens(self, x, training=False):
        """Prepends CLS and runs the blocks: [B, T, E] -> [B, 1 + T, E]."""
        cls = ops.cast(self.cls_token + self.pos_embed[:, :1], x.dtype)  # [1, 1, E]
        cls = ops.repeat(cls, ops.shape(x)[0], axis=0)  # [B, 1, E]
        x = ops.concatenate([cls, x], axis=1)
        for block in self.blocks:
            x = block(x, training=training)
        if self.norm is not None:
            x = ops.cast(self.norm(x), x.dtype)
        return x

    def call(self, images, visible_indices=None, training=False):
        x = self.encode_tokens(self.embed_patches(images, visible_indices), training)
        tokens = x[:, 1:]  # [B, N, E]
        pooled = ops.mean(ops.cast(tokens, "float32"), axis=1)  # [B, E]
        if self.fc_norm is not None:
            pooled = self.fc_norm(pooled)
        return {"cls": x[:, 0], "tokens": tokens, "pooled": pooled}

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            drop_path_rate=self.drop_path_rate,
            layer_scale=self.layer_scale,
            final_norm=self.final_norm,
            pool_norm=self.pool_norm,
            trainable_patch_embed=self.trainable_patch_embed,
        )
        return config

    @classmethod
    def of_size(cls, preset: str, **overrides) -> ViTEncoder:
        """A randomly initialised encoder of a size preset (tiny, small, base, large, huge).

        Not keras-hub's ``from_preset`` (which loads weights): pretrained weights come from
        a run's ``encoder.keras`` or ``siameseim convert`` of the authors' checkpoints.
        """
        return cls(**preset_arguments(preset, **overrides))
