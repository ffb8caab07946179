"""The fine-tuning task model: a ViT encoder with a pooled-feature LayerNorm and a linear head.

Method §7: mean of the patch tokens -> LayerNorm (``fc_norm``) -> Dense(C). Saved and
loaded as one ``.keras`` file (the encoder is serialised inside the classifier's config).
"""

from __future__ import annotations

import keras

from siameseim_tf.models.vit import ViTEncoder

HEAD_INIT_STDDEV = 2e-5  # MAE's fine-tuning head init (trunc-normal)


@keras.saving.register_keras_serializable(package="siameseim_tf")
class ViTClassifier(keras.Model):
    """Images [B, S, S, 3] (ImageNet-normalised) -> logits [B, C].

    Args:
        encoder: a :class:`ViTEncoder`, normally with ``pool_norm=True`` (see
            :meth:`from_encoder`).
        num_classes: C.
        class_names: optional names of the C classes (kept in the config, used by export).
        head_init_stddev: trunc-normal stddev of the head kernel; the bias starts at 0.
    """

    def __init__(
        self,
        encoder: ViTEncoder,
        num_classes: int,
        class_names: list[str] | None = None,
        head_init_stddev: float = HEAD_INIT_STDDEV,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.encoder = encoder
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.head_init_stddev = head_init_stddev
        self.head = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=head_init_stddev),
            bias_initializer="zeros",
            dtype="float32",  # logits in float32 under mixed precision
            name="head",
        )
        self.head.build((None, encoder.embed_dim))
        self.image_size = encoder.image_size
        self.build((None, encoder.image_size, encoder.image_size, 3))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=False):
        return self.head(self.encoder(images, training=training)["pooled"])  # [B, C]

    def embed(self, images, training=False):
        """The pooled (fc_norm) feature the head reads: [B, E]."""
        return self.encoder(images, training=training)["pooled"]

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            num_classes=self.num_classes,
            class_names=self.class_names,
            head_init_stddev=self.head_init_stddev,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    @classmethod
    def from_encoder(
        cls,
        encoder: ViTEncoder,
        num_classes: int,
        drop_path_rate: float = 0.1,
        class_names: list[str] | None = None,
        **kwargs,
    ) -> ViTClassifier:
        """A classifier on a trainable copy of a pretrained ``encoder`` (left untouched)
        with ``drop_path_rate`` and a new ``fc_norm``; see :func:`copy_encoder`."""
        return cls(copy_encoder(encoder, drop_path_rate), num_classes, class_names, **kwargs)


def relative_path(variable) -> str:
    """A variable's path without its top-level model name (``blocks_0/fc1/kernel``)."""
    return variable.path.split("/", 1)[-1]


def copy_encoder(encoder: ViTEncoder, drop_path_rate: float) -> ViTEncoder:
    """A trainable copy of ``encoder`` with ``drop_path_rate`` and a pooled-feature LayerNorm.

    Weights are copied by relative path; the new ``fc_norm`` starts at (1, 0) unless the
    source already has one. Raises ValueError if a source weight has no counterpart.
    """
    config = {k: v for k, v in encoder.get_config().items() if k not in ("name", "dtype")}
    config.update(drop_path_rate=drop_path_rate, pool_norm=True, trainable_patch_embed=True)
    copy = ViTEncoder.from_config(config)
    targets = {relative_path(v): v for v in copy.weights}
    for variable in encoder.weights:
        path = relative_path(variable)
        if "seed_generator" in path:
            continue  # drop-path RNG state, not a model weight
        if path not in targets or tuple(targets[path].shape) != tuple(variable.shape):
            raise ValueError(f"cannot copy encoder weight {path} into the fine-tuning copy")
        targets[path].assign(variable)
    return copy
