"""Collapse and progress monitors: Keras callbacks that look at the encoder's features.

The statistics are pure functions (tested for their properties); the callback computes
them on a fixed probe batch every epoch (and every ``every_steps`` steps) and adds them
to the epoch logs, so that ``CSVLogger`` and ``TensorBoard`` record them beside the loss.

- ``feature_std``: mean over dimensions of the per-dimension standard deviation of the
  L2-normalised pooled features, times sqrt(E). About 1 for features spread over the
  sphere, 0 when every image maps to the same point (complete collapse; SimSiam's
  monitor, scaled so that it does not depend on E).
- ``effective_rank``: exp of the entropy of the normalised singular values of the centred
  pooled features (Roy & Vetterli 2007): how many directions the features really use.
  A falling rank with a flat loss is dimensional (partial) collapse.
- ``knn_top1`` (optional): cosine k-NN accuracy of a small labelled holdout, half bank and
  half queries.
"""

from __future__ import annotations

import keras
import numpy as np


def feature_std(features: np.ndarray) -> float:
    """sqrt(E) x mean per-dimension std of L2-normalised features [N, E]."""
    x = np.asarray(features, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return float(np.sqrt(x.shape[1]) * x.std(axis=0).mean())


def effective_rank(features: np.ndarray) -> float:
    """exp(entropy of singular values / their sum) of the centred features [N, E]."""
    x = np.asarray(features, np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    singular = np.linalg.svd(x, compute_uv=False)
    total = singular.sum()
    if total <= 1e-12:
        return 0.0
    p = singular / total
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def collapse_warning(std: float, rank: float, initial_rank: float | None) -> str | None:
    """A one-line warning when the probe features have collapsed, else None."""
    if std < 0.05 or rank < 1.5:
        return (
            f"features have collapsed (feature_std {std:.3f}, effective rank {rank:.2f}): "
            "every image maps to nearly the same embedding"
        )
    if initial_rank and rank < 0.5 * initial_rank:
        return (
            f"effective rank fell from {initial_rank:.1f} to {rank:.1f}: the features are "
            "collapsing onto few directions (partial collapse)"
        )
    return None


class FeatureMonitor(keras.callbacks.Callback):
    """Feature statistics of the online encoder on a fixed probe batch.

    Args:
        probe: float32 [P, S, S, 3] preprocessed images (fixed for the whole run).
        labelled: optional (images [L, S, S, 3] preprocessed, labels [L]) for online k-NN.
        every_steps: also measure every so many steps (0: at epoch ends only).
        min_steps_between: at an epoch end, reuse the last figures if they are more recent
            than this (short epochs of small data sets).
        log: where warnings and step-wise lines go.
    """

    def __init__(
        self,
        probe,
        labelled=None,
        every_steps: int = 0,
        log=print,
        batch_size: int = 256,
        min_steps_between: int = 25,
    ):
        super().__init__()
        self.min_steps_between = min_steps_between
        self.probe, self.labelled = probe, labelled
        self.every_steps, self.log, self.batch_size = every_steps, log, batch_size
        self.initial_rank: float | None = None
        self.history: list[dict] = []
        self._warned = False

    def _pooled(self, images) -> np.ndarray:
        encoder = self.model.encoder
        parts = [
            keras.ops.convert_to_numpy(
                encoder(images[i : i + self.batch_size], training=False)["pooled"]
            )
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def measure(self) -> dict:
        pooled = self._pooled(self.probe)
        stats = {"feature_std": feature_std(pooled), "effective_rank": effective_rank(pooled)}
        if self.labelled is not None:
            from siameseim_tf.evaluation.knn import knn_accuracy

            images, labels = self.labelled
            features = self._pooled(images)
            half = len(features) // 2
            stats["knn_top1"] = float(
                knn_accuracy(features[:half], labels[:half], features[half:], labels[half:])
            )
        return stats

    def on_train_begin(self, logs=None):
        stats = self.measure()
        self.initial_rank = stats["effective_rank"]
        self.history.append({"step": 0, **stats})
        knn = f", online k-NN {100 * stats['knn_top1']:.1f} %" if "knn_top1" in stats else ""
        self.log(
            f"[monitor] at initialisation: feature_std {stats['feature_std']:.3f}, "
            f"effective rank {stats['effective_rank']:.2f}{knn}"
        )

    def _record(self, logs) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        # Short epochs (small data) reuse the last figures rather than measure every few
        # steps; every epoch's log row still has the columns.
        recent = self.history and step - self.history[-1]["step"] < self.min_steps_between
        if recent and self.history[-1]["step"] > 0:
            stats = {k: v for k, v in self.history[-1].items() if k != "step"}
        else:
            stats = self.measure()
            self.history.append({"step": step, **stats})
        if logs is not None:
            logs.update(stats)
        warning = collapse_warning(stats["feature_std"], stats["effective_rank"], self.initial_rank)
        if warning and not self._warned:
            self._warned = True
            self.log(f"WARNING [monitor] step {step}: {warning}")

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.every_steps and step % self.every_steps == 0:
            self._record(None)

    def on_epoch_end(self, epoch, logs=None):
        self._record(logs)
