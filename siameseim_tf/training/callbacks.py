"""Keras callbacks of the pretraining loop."""

from __future__ import annotations

import keras

from siameseim_tf.training.checkpoints import train_step_count


class MomentumSchedule(keras.callbacks.Callback):
    """Fixes the length T of the momentum cosine (method §6) when training starts.

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


class PreemptionNotice:
    """SIGTERM (cloud preemption, ``kill``, Kubernetes eviction) sets a flag instead of
    killing the process; :class:`RunCheckpoint` saves at the next step boundary and stops.

    Use as a context manager around ``fit``; the previous handler is restored on exit.
    Signal handlers can only be installed from the main thread: elsewhere this is a no-op.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


class RunCheckpoint(keras.callbacks.Callback):
    """Saves :class:`~siameseim_tf.training.checkpoints.RunCheckpoints` at every epoch's
    end, every ``every_steps`` steps, and at the step boundary after a SIGTERM (then stops
    training with ``preempted`` set).

    Args:
        checkpoints: the run's checkpoint directory.
        data_start: step -> position of the next raw element of the data stream after it.
        every_steps: also save mid-epoch (0: per epoch only).
        notice: a :class:`PreemptionNotice` (or None).
    """

    def __init__(
        self,
        checkpoints,
        data_start,
        every_steps: int = 0,
        notice=None,
        log=print,
        tag: str = "pretrain",
    ):
        super().__init__()
        self.checkpoints, self.data_start = checkpoints, data_start
        self.every_steps, self.notice, self.log = every_steps, notice, log
        self.tag = tag
        self.preempted = False
        self._saved_step = -1

    def _step(self) -> int:
        return train_step_count(self.model)

    def _save(self, step: int) -> None:
        if step != self._saved_step:
            self.checkpoints.save(self.model, step, self.data_start(step))
            self._saved_step = step

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if self.notice is not None and self.notice.requested and not self.preempted:
            self._save(step)
            self.preempted = True
            self.model.stop_training = True
            self.log(f"[{self.tag}] SIGTERM: saved step {step}; run the same command to resume")
        elif self.every_steps and step % self.every_steps == 0:
            # The last batch of an epoch is saved by on_epoch_end, after the epoch's log
            # row: a checkpoint never covers an epoch whose row is not written.
            if batch + 1 != self.params.get("steps"):
                self._save(step)

    def on_epoch_end(self, epoch, logs=None):
        self._save(self._step())
