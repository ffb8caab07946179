"""End-to-end fine-tuning (method §7): mean-pooled patch tokens + new LayerNorm + linear head,
layer-wise lr decay, drop path, AdamW, warmup + cosine, mixup / cutmix, label smoothing.

Implemented: layer-wise lr decay 0.65 (patch embedding / CLS / positions = layer 0, block k =
layer k + 1, head and norms = L + 1; lr scale = decay^(L + 1 - layer)), drop path 0.1 (a copy
of the encoder rebuilt with ``drop_path_rate`` and the weights copied), AdamW (betas 0.9 /
0.999, wd 0.05, none on 1-D weights and the CLS token), warmup + half-cosine per step,
mixup 0.8 / cutmix 1.0 (timm batch mode, switch prob 0.5), label smoothing 0.1, random
horizontal flip. Not implemented: random resized crop, RandAugment and random erasing
(training images use the evaluation resize + centre crop, then the flip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from siameseim_tf.evaluation.features import iterate_batches, preprocess_uint8
from siameseim_tf.evaluation.optim import ScaledAdamW
from siameseim_tf.training.schedules import WarmupCosine


class FineTuneClassifier(keras.Model):
    """ViT encoder (``pool_norm=True``: LayerNorm on the mean of the patch tokens) + head.

    Images [B, S, S, 3] -> logits [B, C]. The head is Dense with trunc-normal(2e-5) weights
    (MAE's fine-tuning init) and zero bias. Not a saving format of its own (no
    ``get_config``): save ``model.encoder`` (a ViTEncoder with ``fc_norm``) and the head.
    """

    def __init__(self, encoder: keras.Model, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.num_classes = encoder, num_classes
        self.head = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=2e-5),
            bias_initializer="zeros",
            name="head",
        )
        self.head.build((None, encoder.embed_dim))

    def call(self, images, training=False):
        return self.head(self.encoder(images, training=training)["pooled"])  # [B, C]


def relative_path(variable: Any) -> str:
    """A variable's path without its top-level model name (``blocks_0/fc1/kernel``)."""
    return variable.path.split("/", 1)[-1]


def rebuild_encoder(encoder: keras.Model, drop_path_rate: float) -> keras.Model:
    """A trainable copy of ``encoder`` with ``drop_path_rate`` and a pooled-feature LayerNorm.

    Weights are copied by relative path; the new ``fc_norm`` starts at (1, 0) unless the
    source already has one. Raises ValueError if a source weight has no counterpart.
    """
    config = {k: v for k, v in encoder.get_config().items() if k != "name"}
    config.update(drop_path_rate=drop_path_rate, pool_norm=True, trainable_patch_embed=True)
    copy = type(encoder).from_config(config)
    targets = {relative_path(v): v for v in copy.weights}
    for variable in encoder.weights:
        path = relative_path(variable)
        if "seed_generator" in path:
            continue  # drop-path RNG state, not a model weight
        if path not in targets or tuple(targets[path].shape) != tuple(variable.shape):
            raise ValueError(f"cannot copy encoder weight {path} into the fine-tuning copy")
        targets[path].assign(variable)
    return copy


def layer_id(path: str, depth: int) -> int:
    """Layer of an encoder weight (relative path): 0 for the patch embedding / CLS / position
    embedding, k + 1 for block k, depth + 1 for everything else (norms, head)."""
    if path.startswith(("patch_embed/", "cls_token", "pos_embed")):
        return 0
    if path.startswith("blocks_"):
        return int(path.split("/", 1)[0].split("_")[1]) + 1
    return depth + 1


def layer_decay_factors(model: FineTuneClassifier, decay: float) -> dict[int, float]:
    """lr scale per trainable variable, keyed by ``id(variable)``: decay^(L + 1 - layer)."""
    depth = model.encoder.depth
    encoder_ids = {id(v): relative_path(v) for v in model.encoder.weights}
    return {
        id(v): decay ** (depth + 1 - layer_id(encoder_ids[id(v)], depth))
        if id(v) in encoder_ids
        else 1.0
        for v in model.trainable_variables
    }


def make_optimizer(
    model: FineTuneClassifier, schedule, weight_decay: float = 0.05, layer_decay: float = 0.65
) -> ScaledAdamW:
    """AdamW with layer-wise lr decay; no weight decay on 1-D weights and the CLS token."""
    factors = layer_decay_factors(model, layer_decay)
    optimizer = ScaledAdamW(
        lambda v: factors[id(v)],
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
    )
    cls_token = model.encoder.cls_token
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) <= 1 or v is cls_token]
    )
    return optimizer


def mix_batch(images, targets, mixup_alpha: float, cutmix_alpha: float, switch_prob: float = 0.5):
    """timm-style batch mixup / cutmix with the reversed batch as partner.

    images [B, S, S, 3], soft targets [B, C] -> the mixed pair (same shapes).
    """

    def beta(alpha):  # Beta(alpha, alpha) from two gammas
        g = tf.random.gamma((2,), alpha)
        return g[0] / (g[0] + g[1])

    use_cutmix = cutmix_alpha > 0 and (
        mixup_alpha <= 0 or bool(np.random.random_sample() < switch_prob)
    )
    partner_x, partner_y = tf.reverse(images, [0]), tf.reverse(targets, [0])
    if not use_cutmix:
        lam = beta(mixup_alpha)
        mixed = lam * images + (1 - lam) * partner_x
    else:
        lam = beta(cutmix_alpha)
        size = tf.shape(images)[1]
        size_f = tf.cast(size, tf.float32)
        cut = tf.cast(size_f * tf.sqrt(1.0 - lam), tf.int32)
        cy, cx = (tf.random.uniform((), 0, size, tf.int32) for _ in range(2))
        y0, y1 = tf.clip_by_value(cy - cut // 2, 0, size), tf.clip_by_value(cy + cut // 2, 0, size)
        x0, x1 = tf.clip_by_value(cx - cut // 2, 0, size), tf.clip_by_value(cx + cut // 2, 0, size)
        rows, cols = tf.range(size)[:, None], tf.range(size)[None, :]
        box = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # [S, S]
        mixed = tf.where(box[None, :, :, None], partner_x, images)
        lam = 1.0 - tf.cast((y1 - y0) * (x1 - x0), tf.float32) / (size_f * size_f)
    return mixed, lam * targets + (1 - lam) * partner_y


def _train_batches(
    images, labels, num_classes, image_size, batch_size, smoothing, mixup_alpha, cutmix_alpha, rng
):
    """One epoch of (images [B, S, S, 3], soft targets [B, C]) batches, shuffled."""
    order = rng.permutation(len(images))
    off = smoothing / num_classes
    for batch in iterate_batches(len(order), batch_size, False, "train"):
        index = np.sort(order[batch])
        x = preprocess_uint8(images[index], image_size)
        x = tf.where(rng.random(len(index))[:, None, None, None] < 0.5, tf.reverse(x, [2]), x)
        y = tf.one_hot(labels[index], num_classes) * (1 - smoothing) + off
        if mixup_alpha > 0 or cutmix_alpha > 0:
            x, y = mix_batch(x, y, mixup_alpha, cutmix_alpha)
        yield x, y


@dataclass
class FineTuneResult:
    """Metrics (JSON-friendly) and the fine-tuned classifier."""

    metrics: dict[str, Any]
    model: FineTuneClassifier


def fine_tune(
    encoder: keras.Model,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    epochs: int = 100,
    batch_size: int = 64,
    base_lr: float = 2.5e-4,
    min_lr: float = 1e-6,
    warmup_epochs: float | None = None,
    weight_decay: float = 0.05,
    layer_decay: float = 0.65,
    drop_path_rate: float = 0.1,
    label_smoothing: float = 0.1,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    image_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> FineTuneResult:
    """Fine-tunes a copy of ``encoder`` (the original is untouched) and evaluates top-1.

    Args:
        encoder: a ViTEncoder.
        train_images / test_images: uint8 [N, H, W, C]; train_labels / test_labels: [N].
        epochs: 100 in method §7; a few on CPU.
        batch_size: method §7 1024; lr = base_lr * batch_size / 256.
        base_lr, min_lr: peak lr per 256 images; floor of the cosine (MAE: 1e-6).
        warmup_epochs: default 5 % of ``epochs`` (5 of 100 in the recipe).
        weight_decay, layer_decay, drop_path_rate, label_smoothing: method §7 0.05 / 0.65 / 0.1
            / 0.1.
        mixup_alpha, cutmix_alpha: 0.8 / 1.0 (method §7); 0 disables.
        image_size: S; default the encoder's.
        seed: RNG seed (head init, drop path, shuffling, augmentation).
        progress: per-epoch loss lines.

    Returns:
        :class:`FineTuneResult`; ``metrics`` has ``top1``, ``train_loss`` (per epoch),
        ``initial_eval_loss`` / ``final_eval_loss`` (plain cross-entropy on up to 1024
        training images, eval mode, no augmentation), ``lr`` and settings.
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    image_size = int(image_size or encoder.image_size)
    train_labels, test_labels = np.asarray(train_labels, np.int64), np.asarray(test_labels)
    num_classes = int(max(train_labels.max(), test_labels.max()) + 1)

    model = FineTuneClassifier(rebuild_encoder(encoder, drop_path_rate), num_classes)
    steps_per_epoch = int(np.ceil(len(train_images) / batch_size))
    warmup_epochs = epochs * 0.05 if warmup_epochs is None else warmup_epochs
    peak_lr = base_lr * batch_size / 256
    schedule = WarmupCosine(
        peak_lr,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        total_steps=epochs * steps_per_epoch,
        min_lr=min_lr,
    )
    optimizer = make_optimizer(model, schedule, weight_decay, layer_decay)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    probe = slice(0, min(1024, len(train_images)))
    initial_loss = evaluation_loss(model, train_images[probe], train_labels[probe], image_size)
    epoch_losses = []
    for epoch in range(epochs):
        losses = [
            float(train_step(x, y))
            for x, y in _train_batches(
                train_images,
                train_labels,
                num_classes,
                image_size,
                batch_size,
                label_smoothing,
                mixup_alpha,
                cutmix_alpha,
                rng,
            )
        ]
        epoch_losses.append(float(np.mean(losses)))
        if progress:
            print(f"fine-tune epoch {epoch + 1}/{epochs}: loss {epoch_losses[-1]:.4f}")

    predictions = predict(model, test_images, image_size)
    metrics = {
        "top1": float(np.mean(predictions == test_labels)),
        "train_loss": epoch_losses,
        "initial_eval_loss": initial_loss,
        "final_eval_loss": evaluation_loss(
            model, train_images[probe], train_labels[probe], image_size
        ),
        "lr": peak_lr,
        "epochs": epochs,
        "batch_size": batch_size,
        "layer_decay": layer_decay,
        "drop_path_rate": drop_path_rate,
        "mixup_alpha": mixup_alpha,
        "cutmix_alpha": cutmix_alpha,
        "label_smoothing": label_smoothing,
    }
    return FineTuneResult(metrics, model)


def _logits(
    model: FineTuneClassifier, images: np.ndarray, image_size: int, batch_size: int = 256
) -> np.ndarray:
    parts = [
        np.asarray(model(preprocess_uint8(images[batch], image_size), training=False))
        for batch in iterate_batches(len(images), batch_size, False, "predict")
    ]
    return np.concatenate(parts)  # [N, C]


def predict(model: FineTuneClassifier, images: np.ndarray, image_size: int) -> np.ndarray:
    """Predicted classes [N] of uint8 images [N, H, W, C]."""
    return _logits(model, images, image_size).argmax(axis=1)


def evaluation_loss(
    model: FineTuneClassifier, images: np.ndarray, labels: np.ndarray, image_size: int
) -> float:
    """Mean cross-entropy (eval mode, no smoothing / augmentation)."""
    logits = _logits(model, images, image_size)
    return float(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        .numpy()
        .mean()
    )
