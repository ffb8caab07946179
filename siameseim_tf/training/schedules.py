"""Schedules of SPEC §6 as pure functions (and a serialisable Keras LR schedule)."""

from __future__ import annotations

import math

import keras
from keras import ops


def momentum_at(progress, base_momentum: float = 0.995):
    """m(t) = 1 - (1 - m0) * (1 + cos(pi * t / T)) / 2; ``progress`` = t / T in [0, 1].

    Works on Python floats, numpy arrays and tensors.
    """
    if isinstance(progress, (int, float)):
        return 1.0 - (1.0 - base_momentum) * (1.0 + math.cos(math.pi * progress)) / 2.0
    return 1.0 - (1.0 - base_momentum) * (1.0 + ops.cos(math.pi * progress)) / 2.0


def scaled_learning_rate(base_lr: float, global_batch_size: int) -> float:
    """The linear scaling rule of SPEC §6: lr = base_lr * global_batch / 256."""
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
        if total_steps <= 0 or warmup_steps < 0 or warmup_steps > total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), "
                "total_steps > 0"
            )
        self.peak_lr, self.warmup_steps = float(peak_lr), int(warmup_steps)
        self.total_steps, self.min_lr = int(total_steps), float(min_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak_lr * step / max(self.warmup_steps, 1)
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        cosine = self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (
            1.0 + ops.cos(math.pi * progress)
        )
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return dict(
            peak_lr=self.peak_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            min_lr=self.min_lr,
        )
