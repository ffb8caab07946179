"""Linear probe on cached frozen features (method §7).

Model: BatchNorm without affine (eps 1e-6) + linear head (weights normal std 0.01, zero
bias, as MAE). Base lr 0.1, lr = base_lr * batch / 256, weight decay 0, warmup then cosine,
cross-entropy. Features are fixed (centre crop, no augmentation), so training is cheap.

Optimiser: SGD momentum 0.9 by default; MAE's LARS (method §7) is ``optimizer="lars"``. LARS
moves the head by ~lr * 0.001 * ||W|| per step, which is tuned for ImageNet with batch
16384 (lr 6.4, ~7k steps); at batch 256 on a few thousand samples (lr 0.1, ~1k steps) it
under-trains (Fashion-MNIST 5k, random tiny ViT: 41 % LARS vs 76 % SGD, docs/evaluation.md).
"""

from __future__ import annotations

import numpy as np


def build_linear_probe(feature_dim: int, num_classes: int):
    """Keras model [B, E] -> logits [B, C]: BatchNorm(no affine, eps 1e-6) + Dense."""
    import keras

    inputs = keras.Input((feature_dim,))
    x = keras.layers.BatchNormalization(
        center=False, scale=False, epsilon=1e-6, momentum=0.9, name="bn"
    )(inputs)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        bias_initializer="zeros",
        name="head",
    )(x)
    return keras.Model(inputs, logits, name="linear_probe")


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    epochs: int = 90,
    warmup_epochs: float | None = None,
    batch_size: int = 256,
    base_lr: float = 0.1,
    optimizer: str = "sgd",
    seed: int = 0,
    verbose: int = 0,
) -> dict[str, float]:
    """Trains the probe and returns ``{"top1": test acc, "train_top1": train acc}``.

    Args:
        train_features: [N, E] (the encoder's ``pooled`` feature); train_labels: [N].
        test_features: [M, E]; test_labels: [M].
        epochs: 90 (method §7).
        warmup_epochs: default epochs / 9 (10 of 90, method §7).
        batch_size: 256 here (method §7: 16384 on ImageNet); lr scales linearly with it.
        base_lr: 0.1 (method §7); lr = base_lr * batch_size / 256.
        optimizer: ``"sgd"`` (momentum 0.9, no weight decay; default, see module doc) or
            ``"lars"`` (method §7, MAE's LARS).
        seed: initialisation and shuffling seed.
        verbose: Keras fit verbosity.
    """
    import keras

    from siameseim_tf.evaluation.optim import LARS
    from siameseim_tf.training.schedules import WarmupCosine

    if optimizer not in ("lars", "sgd"):
        raise ValueError(f"optimizer must be 'lars' or 'sgd', got {optimizer!r}")
    keras.utils.set_random_seed(seed)
    train_x = np.asarray(train_features, np.float32)
    test_x = np.asarray(test_features, np.float32)
    train_y, test_y = np.asarray(train_labels, np.int64), np.asarray(test_labels, np.int64)
    num_classes = int(max(train_y.max(), test_y.max()) + 1)

    steps_per_epoch = int(np.ceil(len(train_x) / batch_size))
    warmup_epochs = epochs / 9 if warmup_epochs is None else warmup_epochs
    schedule = WarmupCosine(
        peak_lr=base_lr * batch_size / 256,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
    )
    opt = (
        LARS(schedule, momentum=0.9)
        if optimizer == "lars"
        else keras.optimizers.SGD(schedule, momentum=0.9)
    )
    model = build_linear_probe(train_x.shape[1], num_classes)
    model.compile(
        optimizer=opt,
        metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(train_x, train_y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        logits = model.predict(x, batch_size=4096, verbose=0)  # [N, C]
        return float(np.mean(logits.argmax(axis=1) == y))

    return {"top1": accuracy(test_x, test_y), "train_top1": accuracy(train_x, train_y)}
