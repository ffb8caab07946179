"""A progress line a person can read during long runs: step, epoch, loss, monitors, ETA."""

from __future__ import annotations

import time

import keras

from siameseim_tf.training.checkpoints import train_step_count

_SHOWN = ("loss", "grad_norm", "lr", "momentum", "feature_std", "effective_rank", "knn_top1")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_logs(logs: dict) -> str:
    parts = []
    for key in _SHOWN:
        if key in logs:
            value = float(logs[key])
            parts.append(f"{key} {value:.3g}" if key != "loss" else f"loss {value:.4f}")
    return ", ".join(parts)


class ProgressLogger(keras.callbacks.Callback):
    """One line per epoch, plus one every ``every_seconds`` within long epochs.

    Args:
        plan: the run's :class:`~siameseim_tf.training.run_length.RunPlan` (its total steps
            may be decided during training by a budget).
    """

    def __init__(self, plan, every_seconds: float = 30.0, log=print, tag: str = "pretrain"):
        super().__init__()
        self.plan, self.every_seconds, self.log = plan, every_seconds, log
        self.tag = tag  # the command named in each line
        self._start = self._last = 0.0
        self._first_step_done = False
        self._start_step = 0
        self._compiled_at = (0.0, 0)  # (time, step) after the compiling first step

    def _step(self) -> int:
        return train_step_count(self.model)

    def on_train_begin(self, logs=None):
        self._start = self._last = time.perf_counter()
        self._start_step = self._step()

    def _line(self, prefix: str, logs: dict | None) -> str:
        step, total = self._step(), self.plan.total_steps
        now = time.perf_counter()
        elapsed = now - self._start
        since, first_step = self._compiled_at
        where = f"step {step}/{total}" if total else f"step {step}"
        eta = ""
        if total and step > first_step:  # rate after compilation
            eta = f", {format_duration((now - since) / (step - first_step) * (total - step))} left"
        metrics = format_logs(logs or {})
        return (
            f"{prefix}{where}{', ' + metrics if metrics else ''} ({format_duration(elapsed)}{eta})"
        )

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if not self._first_step_done:
            self._first_step_done = True
            self.log(f"[{self.tag}] first step done in {now - self._start:.1f} s (compiled)")
            self._last = now
            self._compiled_at = (now, self._step())
        elif now - self._last >= self.every_seconds:
            self._last = now
            self.log(self._line(f"[{self.tag}] ", logs))

    def on_epoch_end(self, epoch, logs=None):
        self._last = time.perf_counter()
        self.log(self._line(f"[{self.tag}] epoch {epoch + 1}: ", logs))
