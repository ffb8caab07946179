"""SiameseIM (method §3, §5, §6): online encoder + decoder predicting a momentum target."""

from __future__ import annotations

import keras
from keras import ops

from siameseim_tf.layers import TransformerBlock, relative_position_embedding, sincos_2d_embedding
from siameseim_tf.layers.fused import forward_only
from siameseim_tf.layers.tokens import token_range, visible_indices
from siameseim_tf.layers.transformer import xavier_dense
from siameseim_tf.losses import unigrad_loss
from siameseim_tf.models.metrics import LastValue
from siameseim_tf.models.momentum import momentum_at, update_ema
from siameseim_tf.models.train_step import DistributedTrainingMixin
from siameseim_tf.models.vit import ViTEncoder

# Variables that are fixed tables or running statistics, never momentum-updated.
_NOT_EMA = ("pos_embed", "moving_mean", "moving_variance")


@keras.saving.register_keras_serializable(package="siameseim_tf")
class SiameseIM(DistributedTrainingMixin, keras.Model):
    """Siamese Image Modeling: predict view 2's features at any position from masked view 1.

    Inputs are the batch dict of the data pipeline: ``view1``, ``view2`` float32
    [B, S, S, 3]; ``rel_pos`` float32 [B, 6]; ``mask`` [B, N] (1 = masked, exactly
    ``num_masked_patches`` ones per row). ``model(batch)`` returns ``{"pred": [B, N, D],
    "target": [B, N, D]}``; ``model.compute_loss(x=batch, y_pred=outputs)`` is UniGrad.
    ``model.encoder`` is the online ViT encoder.

    Args:
        image_size, patch_size, embed_dim, depth, num_heads, mlp_ratio: the encoder.
        decoder_dim: D.
        decoder_num_heads: heads of projector and predictor blocks.
        projector_depth: blocks after ``decoder_embed`` (shared structure with the target).
        predictor_depth: blocks of the predictor.
        num_masked_patches: M; default round(0.6 N).
        neg_weight: UniGrad weight of the negative term.
        base_momentum: m0 of the momentum cosine schedule.
        norm: ``"batch"`` (sync BatchNorm over tokens) or ``"layer"`` for decoder blocks.
        train_patch_embed: train the online patch embedding (frozen by default).
        clip_grad_norm: global-norm clipping of the all-reduced gradient, or None.
        momentum_total_steps: steps of the momentum schedule; 0 lets
            :class:`~siameseim_tf.training.MomentumSchedule` set it from ``fit``.

    Example:
    >>> model = SiameseIM(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
    ...                   decoder_dim=64, decoder_num_heads=4, num_masked_patches=10)
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
        projector_depth: int = 2,
        predictor_depth: int = 4,
        num_masked_patches: int | None = None,
        neg_weight: float = 0.02,
        base_momentum: float = 0.995,
        norm: str = "batch",
        train_patch_embed: bool = False,
        clip_grad_norm: float | None = None,
        momentum_total_steps: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        grid = image_size // patch_size
        num_patches = grid * grid
        if num_masked_patches is None:
            num_masked_patches = int(round(0.6 * num_patches))
        if not 0 <= num_masked_patches < num_patches:
            raise ValueError(
                f"num_masked_patches must be in [0, {num_patches}), got {num_masked_patches}"
            )
        # One attribute per constructor argument (get_config returns them all).
        self.image_size = image_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.decoder_dim = decoder_dim
        self.decoder_num_heads = decoder_num_heads
        self.projector_depth = projector_depth
        self.predictor_depth = predictor_depth
        self.num_masked_patches = num_masked_patches
        self.neg_weight = neg_weight
        self.base_momentum = base_momentum
        self.norm = norm
        self.train_patch_embed = train_patch_embed
        self.clip_grad_norm = clip_grad_norm
        self._initial_momentum_total_steps = momentum_total_steps
        self.grid_size, self.num_patches = grid, num_patches
        self.num_visible = num_patches - num_masked_patches

        def encoder(name):
            return ViTEncoder(
                image_size,
                patch_size,
                embed_dim,
                depth,
                num_heads,
                mlp_ratio,
                trainable_patch_embed=train_patch_embed,
                name=name,
                dtype=self.dtype_policy,
            )

        def blocks(count, prefix):
            return [
                TransformerBlock(
                    decoder_dim,
                    decoder_num_heads,
                    mlp_ratio,
                    norm=norm,
                    name=f"{prefix}_{k}",
                    dtype=self.dtype_policy,
                )
                for k in range(count)
            ]

        # Online branch.
        self.encoder = encoder("encoder")
        self.decoder_embed = xavier_dense(decoder_dim, "decoder_embed", self.dtype_policy)
        self.projector_blocks = blocks(projector_depth, "projector_decoder_blocks")
        self.decoder_pos_mlp = xavier_dense(decoder_dim, "decoder_pos_mlp", self.dtype_policy)
        self.predictor_blocks = blocks(predictor_depth, "predictor_decoder_blocks")
        self.decoder_pred = xavier_dense(decoder_dim, "decoder_pred", self.dtype_policy)
        # Momentum target branch: same structure, never receives gradients.
        self.target_encoder = encoder("mm_encoder")
        self.target_decoder_embed = xavier_dense(decoder_dim, "mm_decoder_embed", self.dtype_policy)
        self.target_projector_blocks = blocks(projector_depth, "mm_projector_decoder_blocks")

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
        self.lr_tracker = LastValue(name="lr")
        self.momentum_tracker = LastValue(name="momentum")
        self.build(None)
        for layer in self._branch_layers(target=True):
            layer.trainable = False  # TokenBatchNorm still uses batch statistics in training
        self._copy_online_to_target()

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
            projector_depth=self.projector_depth,
            predictor_depth=self.predictor_depth,
            num_masked_patches=self.num_masked_patches,
            neg_weight=self.neg_weight,
            base_momentum=self.base_momentum,
            norm=self.norm,
            train_patch_embed=self.train_patch_embed,
            clip_grad_norm=self.clip_grad_norm,
            momentum_total_steps=self._initial_momentum_total_steps,
        )
        return config

    # ----------------------------------------------------------------- construction
    def build(self, input_shape=None):
        if self.built:
            return
        embed_dim, dim = self.embed_dim, self.decoder_dim
        token_shape = (None, self.num_patches + 1, dim)
        for suffix, embed, projector in (
            ("", self.decoder_embed, self.projector_blocks),
            ("mm_", self.target_decoder_embed, self.target_projector_blocks),
        ):
            embed.build((None, self.num_patches + 1, embed_dim))
            for block in projector:
                block.build(token_shape)
            mask_token = self.add_weight(
                shape=(1, 1, dim),
                name=f"{suffix}mask_token",
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                trainable=not suffix,
            )
            setattr(self, "target_mask_token" if suffix else "mask_token", mask_token)
        self.decoder_pos_embed = self.add_weight(
            shape=(1, self.num_patches + 1, dim),
            name="decoder_pos_embed",
            trainable=False,
            initializer=keras.initializers.Constant(
                sincos_2d_embedding(self.grid_size, dim, cls_token=True)[None]
            ),
        )
        self.decoder_pos_mlp.build((None, self.num_patches, 2 * dim))
        predictor_shape = (None, 1 + self.num_visible + self.num_patches, dim)
        for block in self.predictor_blocks:
            block.build(predictor_shape)
        self.decoder_pred.build(predictor_shape)
        # T of the momentum cosine is a weight, not a constant: a --budget-minutes run
        # learns its length from the step time measured after the step is compiled;
        # assigning a variable changes T without a retrace, and checkpoints carry it.
        self.momentum_total_steps = self.add_weight(
            shape=(),
            name="momentum_total_steps",
            trainable=False,
            initializer=keras.initializers.Constant(float(self._initial_momentum_total_steps)),
        )
        self.built = True

    def _branch_layers(self, target: bool):
        if target:
            return [self.target_encoder, self.target_decoder_embed, *self.target_projector_blocks]
        return [self.encoder, self.decoder_embed, *self.projector_blocks]

    def momentum_pairs(self) -> list[tuple[keras.Variable, keras.Variable]]:
        """(target, online) variable pairs the momentum update touches (method §6)."""
        pairs = [(self.target_mask_token, self.mask_token)]
        for target_layer, online_layer in zip(
            self._branch_layers(True), self._branch_layers(False)
        ):
            for t, o in zip(target_layer.weights, online_layer.weights):
                if t.name != o.name or t.shape != o.shape:
                    raise RuntimeError(f"branch weights out of step: {t.path} vs {o.path}")
                if t.name not in _NOT_EMA:
                    pairs.append((t, o))
        return pairs

    def _copy_online_to_target(self):
        for target_layer, online_layer in zip(
            self._branch_layers(True), self._branch_layers(False)
        ):
            for t, o in zip(target_layer.weights, online_layer.weights):
                t.assign(o)
        self.target_mask_token.assign(self.mask_token)

    # ----------------------------------------------------------------- forward
    def predict_tokens(self, batch, training=False):
        """Online branch: masked view 1 + relative position -> predictions [B, N, D]."""
        visible = visible_indices(batch["mask"], self.num_visible)  # [B, V]
        x = self.encoder.embed_patches(batch["view1"], visible)  # [B, V, E]
        x = self.encoder.encode_tokens(x, training)  # [B, 1 + V, E]
        x = self.decoder_embed(x)  # [B, 1 + V, D]
        for block in self.projector_blocks:
            x = block(x, training=training)
        pos = ops.cast(self.decoder_pos_embed, x.dtype)  # [1, 1 + N, D]
        cls = token_range(x, 0, 1) + pos[:, :1]  # [B, 1, D]
        seen = token_range(x, 1) + ops.take(pos[0, 1:], visible, axis=0)  # [B, V, D]
        rel = relative_position_embedding(batch["rel_pos"], self.grid_size, self.decoder_dim)
        queries = ops.cast(self.mask_token, x.dtype) + self.decoder_pos_mlp(
            ops.cast(rel, x.dtype)
        )  # [B, N, D]
        x = ops.concatenate([cls, seen, queries], axis=1)  # [B, 1 + V + N, D]
        # Only the query tokens' predictions are used, so the last block's MLP skips the
        # others (1 + V of 1 + V + N tokens).
        last = len(self.predictor_blocks) - 1
        for i, block in enumerate(self.predictor_blocks):
            keep = self.num_patches if i == last else None
            x = block(x, training=training, last_tokens=keep)
        return self.decoder_pred(token_range(x, -self.num_patches))  # [B, N, D]

    def target_tokens(self, view2, training=False):
        """Momentum branch: all of view 2 -> targets [B, N, D], no gradient."""
        x = self.target_encoder.encode_tokens(self.target_encoder.embed_patches(view2), training)
        x = self.target_decoder_embed(x)  # [B, 1 + N, D]
        for block in self.target_projector_blocks:
            x = block(x, training=training)
        return ops.stop_gradient(x[:, 1:])  # [B, N, D]

    def call(self, inputs, training=False):
        return {
            "pred": self.predict_tokens(inputs, training),
            "target": self.target_tokens(inputs["view2"], training),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return unigrad_loss(y_pred["pred"], y_pred["target"], self.neg_weight)

    # ----------------------------------------------------------------- training
    @property
    def metrics(self):
        return [self.loss_tracker, self.grad_norm_tracker, self.lr_tracker, self.momentum_tracker]

    def current_momentum(self):
        """m(t) at the optimizer's current step; m0 until the schedule length is known."""
        total = ops.maximum(self.momentum_total_steps, 1.0)
        progress = ops.minimum(ops.cast(self.optimizer.iterations, "float32") / total, 1.0)
        scheduled = momentum_at(progress, self.base_momentum)
        return ops.where(self.momentum_total_steps > 0, scheduled, self.base_momentum)

    def update_target(self, momentum):
        """target <- m * target + (1 - m) * online, on every replica alike."""
        update_ema(self.momentum_pairs(), momentum)

    def train_step(self, data):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        momentum = self.current_momentum()
        self.update_target(momentum)  # before the target forward (method §6)
        with forward_only():  # no tape: no gradient, so nothing kept for a backward
            target = self.target_tokens(batch["view2"], training=True)
        self._gradient_step(
            batch, lambda b: {"pred": self.predict_tokens(b, training=True), "target": target}
        )
        self.momentum_tracker.update_state(momentum)
        return self._metric_logs()
