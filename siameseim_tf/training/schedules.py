"""The learning-rate schedule of method §6 (a serialisable Keras schedule) and the
linear scaling rule. The momentum schedule lives with the model that reads it
(:func:`siameseim_tf.models.momentum.momentum_at`)."""

from __future__ import annotations

import math

import keras
from keras import ops


def scaled_learning_rate(base_lr: float, global_batch_size: int) -> float:
    """The linear scaling rule of method §6: lr = base_lr * global_batch / 256."""
    return base_lr * global_batch_size / 256.0


@keras.saving.register_keras_serializable(package="siameseim_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to ``peak_lr`` then half-cosine to ``min_lr``, per step.

    Same values as the authors' per-iteration ``adjust_learning_rate`` with fractional
    epochs (step / steps_per_epoch).

    Args:
        peak_lr: learning rate at the end of warmup.
        warmup_steps: steps of linear warmup.
        total_steps: steps of the whole run.
        min_lr: final learning rate.

    Example:
    >>> schedule = WarmupCosine(1e-3, warmup_steps=10, total_steps=100)
    >>> float(schedule(5))
    0.0005
    """

    def __init__(self, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        _check_length(warmup_steps, total_steps)
        self.peak_lr, self.min_lr = float(peak_lr), float(min_lr)
        # Lengths live in variables so that a run sized from a time budget can fix them
        # after its first measured steps without retracing the (XLA-compiled) train step.
        self._warmup = keras.Variable(float(warmup_steps), trainable=False, name="lr_warmup")
        self._total = keras.Variable(float(total_steps), trainable=False, name="lr_total")

    @property
    def warmup_steps(self) -> int:
        return int(round(float(keras.ops.convert_to_numpy(self._warmup))))

    @property
    def total_steps(self) -> int:
        return int(round(float(keras.ops.convert_to_numpy(self._total))))

    def set_length(self, total_steps: int, warmup_steps: int) -> None:
        """Changes the schedule's length (e.g. once a time budget is converted to steps)."""
        _check_length(warmup_steps, total_steps)
        self._warmup.assign(float(warmup_steps))
        self._total.assign(float(total_steps))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(self._warmup, "float32")
        total = ops.cast(self._total, "float32")
        warm = self.peak_lr * step / ops.maximum(warmup, 1.0)
        progress = ops.clip((step - warmup) / ops.maximum(total - warmup, 1.0), 0.0, 1.0)
        cosine = self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (
            1.0 + ops.cos(math.pi * progress)
        )
        return ops.where(step < warmup, warm, cosine)

    def get_config(self):
        return dict(
            peak_lr=self.peak_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            min_lr=self.min_lr,
        )


def _check_length(warmup_steps: int, total_steps: int) -> None:
    if total_steps <= 0 or warmup_steps < 0 or warmup_steps > total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), "
            "total_steps > 0"
        )
