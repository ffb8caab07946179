"""Keras callbacks of the pretraining loop."""

from __future__ import annotations

import keras


class MomentumSchedule(keras.callbacks.Callback):
    """Fixes the length T of the momentum cosine (SPEC §6) when training starts.

    The momentum itself is computed inside the train step from the optimizer's step
    counter and the model's ``momentum_total_steps`` weight, both saved in checkpoints:
    a run restored after preemption resumes on the same schedule without this callback
    having any state of its own.

    Args:
        total_steps: steps of the whole run; by default ``epochs * steps`` of ``fit``.
        overwrite: replace a length already stored in the model (e.g. when fine-tuning a
            checkpoint on a new schedule). By default a stored length is kept.
    """

    def __init__(self, total_steps: int | None = None, overwrite: bool = False):
        super().__init__()
        self.total_steps, self.overwrite = total_steps, overwrite

    def on_train_begin(self, logs=None):
        stored = float(keras.ops.convert_to_numpy(self.model.momentum_total_steps))
        if stored > 0 and not self.overwrite:
            return
        total = self.total_steps
        if total is None:
            epochs, steps = self.params.get("epochs"), self.params.get("steps")
            if not epochs or not steps:
                raise ValueError(
                    "MomentumSchedule needs total_steps, or fit() with known steps per epoch"
                )
            total = epochs * steps
        self.model.momentum_total_steps.assign(float(total))


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose mid-epoch restores keep the step schedules exact.

    Keras restores weights saved mid-epoch but restarts that epoch from its first batch,
    so the optimizer would run more steps than the schedules (learning rate, momentum)
    were built for. After a restore this callback rewinds the step counter to the start of
    the epoch being redone: the weights keep all progress and the run ends after exactly
    ``epochs x steps`` scheduled steps.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        steps = self.params.get("steps")
        epoch = getattr(self.model, "_initial_epoch", None)
        if steps and epoch is not None:
            self.model.optimizer.iterations.assign(epoch * steps)
