"""Keras callbacks of the demo and the quality benchmark: a wall-clock budget and a
per-step loss recorder."""

from __future__ import annotations

import statistics
import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops training once ``seconds`` of wall-clock time have passed since training began.

    Checked after every batch; ``steps`` counts the optimizer steps actually done,
    ``exhausted`` tells whether the budget (not the epoch count) ended training and
    :meth:`seconds_per_step` is the median step time (the first steps, which compile, are
    left out when there are enough).
    """

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.steps = 0
        self.exhausted = False
        self.elapsed = 0.0
        self._start = 0.0
        self._ends: list[float] = []

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self._ends.append(time.perf_counter())
        self.elapsed = self._ends[-1] - self._start
        if self.seconds is not None and self.elapsed >= self.seconds:
            self.exhausted = True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.elapsed = time.perf_counter() - self._start

    def seconds_per_step(self, skip: int = 3) -> float:
        """Median wall-clock seconds between consecutive steps (NaN before two steps)."""
        ends = self._ends[skip:] if len(self._ends) > skip + 2 else self._ends
        gaps = [b - a for a, b in zip(ends, ends[1:])]
        return statistics.median(gaps) if gaps else float("nan")


class LossRecorder(keras.callbacks.Callback):
    """Per-step training loss.

    Keras reports the running mean of the epoch after each batch; the loss of step k of an
    epoch is recovered as ``k * mean_k - (k - 1) * mean_(k-1)``.
    """

    def __init__(self):
        super().__init__()
        self.losses: list[float] = []
        self._previous_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        if not logs or "loss" not in logs:
            return
        mean = float(logs["loss"])
        self.losses.append((batch + 1) * mean - batch * self._previous_mean)
        self._previous_mean = mean
