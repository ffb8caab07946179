"""MAE baseline (He et al. 2022): reconstruct the normalised pixels of masked patches.

Same encoder as SiameseIM (:class:`ViTEncoder`, here with the final LayerNorm and a trained
patch embedding), so ``--method mae`` and ``--method siameseim`` compare like for like.
Follows the MAE path of the SiameseIM authors' code (``forward_mae``): the encoder sees
only the visible patches, the decoder sees every position (mask tokens put back in grid
order) and the loss is the mean squared error on the masked patches only.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from siameseim_tf.layers import TransformerBlock, sincos_2d_embedding
from siameseim_tf.layers.tokens import take_tokens, token_range, visible_indices
from siameseim_tf.layers.transformer import xavier_dense
from siameseim_tf.models.metrics import LastValue
from siameseim_tf.models.train_step import DistributedTrainingMixin
from siameseim_tf.models.vit import ViTEncoder


def num_masked_patches(num_patches: int, mask_ratio: float) -> int:
    """M = round(mask_ratio * N), checked to leave at least one masked and one visible patch.

    Example:
    >>> num_masked_patches(196, 0.75)
    147
    """
    count = int(round(mask_ratio * num_patches))
    if not 0 < count < num_patches:
        raise ValueError(
            f"mask_ratio {mask_ratio} masks {count} of {num_patches} patches; need 0 < M < N"
        )
    return count


def patchify(images, patch_size: int):
    """[B, S, S, C] -> [B, N, P*P*C], patches in row-major grid order, pixels (row, col, C).

    The per-patch layout is the authors' ``einsum('nchpwq->nhwpqc')``.

    Example:
    >>> patchify(keras.ops.zeros((2, 32, 32, 3)), 8).shape
    TensorShape([2, 16, 192])
    """
    size, channels = images.shape[1], images.shape[-1]
    grid = size // patch_size
    x = ops.reshape(images, (-1, grid, patch_size, grid, patch_size, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, G, G, P, P, C]
    return ops.reshape(x, (-1, grid * grid, patch_size * patch_size * channels))  # [B, N, K]


def unpatchify(patches, patch_size: int, channels: int = 3):
    """Inverse of :func:`patchify`: [B, N, P*P*C] -> [B, S, S, C] (N a square).

    Example:
    >>> unpatchify(keras.ops.zeros((2, 16, 192)), 8).shape
    TensorShape([2, 32, 32, 3])
    """
    grid = math.isqrt(patches.shape[1])
    if grid * grid != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patches do not form a square grid")
    x = ops.reshape(patches, (-1, grid, grid, patch_size, patch_size, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, G, P, G, P, C]
    return ops.reshape(x, (-1, grid * patch_size, grid * patch_size, channels))


def normalize_patches(patches, eps: float = 1e-6):
    """Per-patch (x - mean) / sqrt(var + eps), var unbiased as torch's ``Tensor.var``.

    Args:
        patches: [..., K] pixels of each patch (K = P*P*C).
        eps: added to the variance.

    Example:
    >>> x = normalize_patches(keras.ops.convert_to_tensor([[1.0, 3.0]]))  # mean 2, var 2
    >>> [round(float(v), 4) for v in x[0]]
    [-0.7071, 0.7071]
    """
    patches = ops.cast(patches, "float32")
    mean = ops.mean(patches, axis=-1, keepdims=True)
    size = patches.shape[-1]
    var = ops.sum(ops.square(patches - mean), axis=-1, keepdims=True) / (size - 1)
    return (patches - mean) / ops.sqrt(var + eps)


def mae_loss(pred, target_patches, mask, norm_pix: bool = True):
    """Mean over masked patches of the per-patch mean squared error (float32 []).

    Args:
        pred: [B, N, K] predicted (normalised, if ``norm_pix``) pixels.
        target_patches: [B, N, K] raw pixels of the image, ``patchify(images)``.
        mask: [B, N], 1 = masked; visible positions do not count.
        norm_pix: normalise each target patch (:func:`normalize_patches`) first.

    Example:
    >>> pred = keras.ops.zeros((1, 2, 2))
    >>> target = keras.ops.convert_to_tensor([[[1.0, 1.0], [2.0, 4.0]]])
    >>> float(mae_loss(pred, target, [[0.0, 1.0]], norm_pix=False))  # (4 + 16) / 2
    10.0
    """
    target = normalize_patches(target_patches) if norm_pix else ops.cast(target_patches, "float32")
    per_patch = ops.mean(ops.square(ops.cast(pred, "float32") - target), axis=-1)  # [B, N]
    mask = ops.cast(mask, "float32")
    return ops.sum(per_patch * mask) / ops.sum(mask)


def restore_indices(mask, num_visible: int):
    """Where each grid cell sits in [visible (grid order), masked (grid order)]: [B, N].

    ``take_tokens(concat([visible_tokens, mask_tokens]), restore)`` puts the tokens
    back in grid order (MAE's ``ids_restore``), consistent with :func:`visible_indices`.
    """
    mask = ops.cast(mask, "int32")  # [B, N]
    visible_rank = ops.cumsum(1 - mask, axis=-1) - 1
    masked_rank = num_visible + ops.cumsum(mask, axis=-1) - 1
    return ops.where(mask > 0, masked_rank, visible_rank)


@keras.saving.register_keras_serializable(package="siameseim_tf")
class MAE(DistributedTrainingMixin, keras.Model):
    """Masked autoencoder on the project's ViT encoder (the ``--method mae`` baseline).

    Input: the batch dict of :func:`~siameseim_tf.training.mae_data.build_mae_dataset`,
    ``image`` float32 [B, S, S, 3] (ImageNet-normalised) and ``mask`` [B, N] with exactly
    ``num_masked`` = round(mask_ratio * N) ones (1 = masked). ``model(batch)`` returns
    ``{"pred": float32 [B, N, P*P*3]}``; ``model.compute_loss(x=batch, y_pred=outputs)`` is
    :func:`mae_loss`. ``model.encoder`` is the :class:`ViTEncoder` to evaluate and export.

    Args:
        image_size, patch_size, embed_dim, depth, num_heads, mlp_ratio: the encoder
            (``mlp_ratio`` also for decoder blocks, as in MAE).
        decoder_dim: D, width of the decoder.
        decoder_num_heads: heads of the decoder blocks.
        decoder_depth: number of decoder blocks.
        mask_ratio: fraction of masked patches; the batch must mask exactly
            round(mask_ratio * N) of them.
        norm_pix_loss: targets are per-patch normalised pixels.
        clip_grad_norm: global-norm clipping of the all-reduced gradient, or None.

    Example:
    >>> model = MAE(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
    ...             decoder_dim=32, decoder_num_heads=4, decoder_depth=1)
    >>> model.num_masked, model.num_patches
    (12, 16)
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        decoder_dim: int = 512,
        decoder_num_heads: int = 16,
        decoder_depth: int = 8,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        clip_grad_norm: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # One attribute per constructor argument (get_config returns them all).
        self.image_size = image_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.decoder_dim = decoder_dim
        self.decoder_num_heads = decoder_num_heads
        self.decoder_depth = decoder_depth
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.clip_grad_norm = clip_grad_norm
        self.encoder = ViTEncoder(
            image_size,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            final_norm=True,
            trainable_patch_embed=True,
            name="encoder",
            dtype=self.dtype_policy,
        )
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.num_masked = num_masked_patches(self.num_patches, mask_ratio)
        self.num_visible = self.num_patches - self.num_masked

        self.decoder_embed = xavier_dense(decoder_dim, "decoder_embed", self.dtype_policy)
        self.decoder_blocks = [
            TransformerBlock(
                decoder_dim,
                decoder_num_heads,
                mlp_ratio,
                norm="layer",
                name=f"decoder_blocks_{k}",
                dtype=self.dtype_policy,
            )
            for k in range(decoder_depth)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype="float32", name="decoder_norm"
        )
        self.decoder_pred = xavier_dense(
            patch_size * patch_size * 3, "decoder_pred", self.dtype_policy
        )

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
        self.lr_tracker = LastValue(name="lr")
        self.build(None)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            decoder_dim=self.decoder_dim,
            decoder_num_heads=self.decoder_num_heads,
            decoder_depth=self.decoder_depth,
            mask_ratio=self.mask_ratio,
            norm_pix_loss=self.norm_pix_loss,
            clip_grad_norm=self.clip_grad_norm,
        )
        return config

    def build(self, input_shape=None):
        if self.built:
            return
        dim, token_shape = self.decoder_dim, (None, self.num_patches + 1, self.decoder_dim)
        self.decoder_embed.build((None, self.num_patches + 1, self.embed_dim))
        self.mask_token = self.add_weight(
            shape=(1, 1, dim),
            name="mask_token",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        # Fixed sin-cos table with a zero CLS row; a weight only so checkpoints carry it.
        self.decoder_pos_embed = self.add_weight(
            shape=(1, self.num_patches + 1, dim),
            name="decoder_pos_embed",
            trainable=False,
            initializer=keras.initializers.Constant(
                sincos_2d_embedding(self.grid_size, dim, cls_token=True)[None]
            ),
        )
        for layer in (*self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            layer.build(token_shape)
        self.built = True

    # ----------------------------------------------------------------- forward
    def predict_patches(self, batch, training=False):
        """Visible patches of ``image`` -> predicted pixels of every patch [B, N, P*P*3]."""
        mask = batch["mask"]  # [B, N]
        visible = visible_indices(mask, self.num_visible)  # [B, V]
        x = self.encoder.embed_patches(batch["image"], visible)  # [B, V, E]
        x = self.encoder.encode_tokens(x, training)  # [B, 1 + V, E], final LayerNorm
        x = self.decoder_embed(x)  # [B, 1 + V, D]
        mask_tokens = ops.repeat(
            ops.cast(self.mask_token, x.dtype), ops.shape(x)[0], axis=0
        )  # [B, 1, D]
        mask_tokens = ops.repeat(mask_tokens, self.num_masked, axis=1)  # [B, M, D]
        tokens = ops.concatenate([token_range(x, 1), mask_tokens], axis=1)  # [B, N, D], shuffled
        restore = restore_indices(mask, self.num_visible)  # [B, N]
        tokens = take_tokens(tokens, restore)  # [B, N, D], grid order
        x = ops.concatenate([token_range(x, 0, 1), tokens], axis=1)  # [B, 1 + N, D]
        x = x + ops.cast(self.decoder_pos_embed, x.dtype)
        for block in self.decoder_blocks:
            x = block(x, training=training)
        x = ops.cast(self.decoder_norm(x), x.dtype)
        return ops.cast(token_range(self.decoder_pred(x), 1), "float32")  # [B, N, P*P*3]

    def target_patches(self, images):
        """The reconstruction target: (normalised if ``norm_pix_loss``) pixels [B, N, K]."""
        patches = ops.cast(patchify(images, self.patch_size), "float32")
        return normalize_patches(patches) if self.norm_pix_loss else patches

    def call(self, inputs, training=False):
        return {"pred": self.predict_patches(inputs, training)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = patchify(x["image"], self.patch_size)  # [B, N, K]
        return mae_loss(y_pred["pred"], target, x["mask"], self.norm_pix_loss)

    # ----------------------------------------------------------------- training
    @property
    def metrics(self):
        return [self.loss_tracker, self.grad_norm_tracker, self.lr_tracker]

    def train_step(self, data):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._gradient_step(batch, lambda b: {"pred": self.predict_patches(b, training=True)})
        return self._metric_logs()
