"""The task model of fine-tuning and of the paper's linear probe: a ViT encoder + a head.

Method §7. Fine-tuning: mean of the patch tokens -> LayerNorm (``fc_norm``) -> Dense(C),
everything trained. Linear probe (``probe=True``): the encoder frozen, its mean-pooled
patch tokens -> BatchNorm without affine parameters (eps 1e-6) -> Dense(C). Saved and
loaded as one ``.keras`` file (the encoder is serialised inside the classifier's config).
"""

from __future__ import annotations

import keras

from siameseim_tf.models.vit import ViTEncoder

HEAD_INIT_STDDEV = 2e-5  # MAE's fine-tuning head init (trunc-normal)
PROBE_HEAD_INIT_STDDEV = 0.01  # MAE's linear-probe head init


@keras.saving.register_keras_serializable(package="siameseim_tf")
class ViTClassifier(keras.Model):
    """Images [B, S, S, 3] (ImageNet-normalised) -> logits [B, C].

    Args:
        encoder: a :class:`ViTEncoder`, normally with ``pool_norm=True`` (see
            :meth:`from_encoder`).
        num_classes: C.
        class_names: optional names of the C classes (kept in the config, used by export).
        head_init_stddev: trunc-normal stddev of the head kernel; the bias starts at 0.
        probe: linear-probe head: the encoder is frozen (also its statistics: it always
            runs in inference mode) and a BatchNorm without affine parameters, synchronised
            across replicas, normalises the pooled feature before the head.
    """

    def __init__(
        self,
        encoder: ViTEncoder,
        num_classes: int,
        class_names: list[str] | None = None,
        head_init_stddev: float = HEAD_INIT_STDDEV,
        probe: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.encoder = encoder
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.head_init_stddev = head_init_stddev
        self.probe = probe
        self.head_norm = None
        if probe:
            encoder.trainable = False
            self.head_norm = keras.layers.BatchNormalization(
                center=False, scale=False, epsilon=1e-6, synchronized=True, name="head_norm"
            )
            self.head_norm.build((None, encoder.embed_dim))
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
        return self.head(self.embed(images, training))  # [B, C]

    def embed(self, images, training=False):
        """The feature the head reads: [B, E] (pooled + fc_norm, or pooled + BatchNorm)."""
        if self.head_norm is None:
            return self.encoder(images, training=training)["pooled"]
        pooled = self.encoder(images, training=False)["pooled"]  # frozen
        return self.head_norm(pooled, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            num_classes=self.num_classes,
            class_names=self.class_names,
            head_init_stddev=self.head_init_stddev,
            probe=self.probe,
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
        probe: bool = False,
        **kwargs,
    ) -> ViTClassifier:
        """A classifier on a copy of a pretrained ``encoder`` (left untouched): for
        fine-tuning with ``drop_path_rate`` and a new ``fc_norm``, for the linear probe
        (``probe``) as it is, frozen, with the probe head; see :func:`copy_encoder`."""
        if probe:
            kwargs.setdefault("head_init_stddev", PROBE_HEAD_INIT_STDDEV)
            copy = copy_encoder(encoder, 0.0, pool_norm=False)
        else:
            copy = copy_encoder(encoder, drop_path_rate)
        return cls(copy, num_classes, class_names, probe=probe, **kwargs)


def relative_path(variable) -> str:
    """A variable's path without its top-level model name (``blocks_0/fc1/kernel``)."""
    return variable.path.split("/", 1)[-1]


def copy_encoder(encoder: ViTEncoder, drop_path_rate: float, pool_norm: bool = True) -> ViTEncoder:
    """A trainable copy of ``encoder`` with ``drop_path_rate`` and (``pool_norm``) a
    pooled-feature LayerNorm.

    Weights are copied by relative path; the new ``fc_norm`` starts at (1, 0) unless the
    source already has one. Raises ValueError if a source weight has no counterpart.
    """
    config = {k: v for k, v in encoder.get_config().items() if k not in ("name", "dtype")}
    pool_norm = pool_norm or bool(config.get("pool_norm"))  # keep a converted fc_norm
    config.update(drop_path_rate=drop_path_rate, pool_norm=pool_norm, trainable_patch_embed=True)
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
