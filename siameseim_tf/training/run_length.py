"""How long a run is: a step count, an epoch count or a wall-clock budget, all in steps.

Schedules (learning rate, momentum) are functions of the optimizer's step counter and the
run's total steps T. A run defined in epochs has T = epochs x steps per epoch; a run
defined by ``total_steps`` has it directly; a run defined by a time budget measures its
own step time over its first steps (after compilation) and fixes T then, so that the
cosine schedules end when the budget does. The decided T is written to
``run_length.json`` in the run directory and reused when the run resumes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from siameseim_tf.training.checkpoints import train_step_count

RUN_LENGTH_FILE = "run_length.json"


class RunPlanError(ValueError):
    """A run length that cannot be planned (a user mistake: one line)."""


@dataclass
class RunPlan:
    """Steps per epoch (logging / backup granularity) and the run's length.

    ``total_steps`` is None while a time budget has not been converted to steps yet;
    ``max_epochs`` is what ``fit`` is given (the last epoch may be cut short).
    """

    steps_per_epoch: int
    total_steps: int | None
    budget_seconds: float | None
    warmup_fraction: float

    @property
    def max_epochs(self) -> int:
        if self.total_steps is not None:
            return max(1, math.ceil(self.total_steps / self.steps_per_epoch))
        return 10**6  # budget-bound: RunLength stops training


def plan_run(
    num_images: int | None,
    global_batch_size: int,
    *,
    epochs: float | None = None,
    total_steps: int | None = None,
    budget_minutes: float | None = None,
    steps_per_epoch: int | None = None,
    warmup_epochs: float | None = None,
    warmup_fraction: float | None = None,
    min_steps_per_epoch: int = 1,
    name: str = "data",
) -> RunPlan:
    """Turns the user's way of saying how long to train into a :class:`RunPlan`.

    Precedence: ``total_steps``, else ``epochs``; ``budget_minutes`` alone sizes the run
    from measured step time, and with one of the others caps it. The warmup is a fraction
    of the run: ``warmup_fraction`` or ``warmup_epochs / epochs`` (recipes written in
    epochs keep their warmup share when run by steps or budget).

    Raises:
        RunPlanError: one-line message for impossible combinations.
    """
    if num_images and num_images < global_batch_size:
        raise RunPlanError(
            f"{name}: {num_images} images is less than one global batch of "
            f"{global_batch_size}; use a smaller train.global_batch_size"
        )
    if steps_per_epoch is None:
        if not num_images:
            raise RunPlanError(f"{name}: number of images unknown; pass steps_per_epoch")
        steps_per_epoch = max(num_images // global_batch_size, min_steps_per_epoch)
    if total_steps is None and epochs is not None:
        total_steps = max(1, int(round(epochs * steps_per_epoch)))
    if total_steps is not None and total_steps <= 0:
        raise RunPlanError(f"total steps must be positive, got {total_steps}")
    if total_steps is None and not budget_minutes:
        raise RunPlanError("say how long to train: epochs, total_steps or budget_minutes")
    if budget_minutes is not None and budget_minutes <= 0:
        raise RunPlanError(f"budget_minutes must be positive, got {budget_minutes}")
    if warmup_fraction is None:
        warmup_fraction = (warmup_epochs or 0.0) / epochs if epochs else 0.05
    if not 0.0 <= warmup_fraction <= 1.0:
        raise RunPlanError(f"warmup fraction must be in [0, 1], got {warmup_fraction}")
    budget = 60.0 * budget_minutes if budget_minutes else None
    return RunPlan(steps_per_epoch, total_steps, budget, warmup_fraction)


def read_decided_steps(directory: Path) -> int | None:
    """The total steps an earlier process of this run decided, if any."""
    path = Path(directory) / RUN_LENGTH_FILE
    if not path.is_file():
        return None
    return int(json.loads(path.read_text())["total_steps"])


class RunLength(keras.callbacks.Callback):
    """Fixes the schedules' length T and stops training after exactly T steps.

    With a time budget and no T yet, the mean step time over a window after the first
    (compiling) steps gives T = steps that fit in the remaining budget; T is re-measured at
    20 % and 50 % of the run over everything since the compile, then fixed and recorded.
    If the run then falls behind (a stall: a busy machine, a slow save), T is shortened so
    that the schedules still end within the budget, and recorded again. The budget also
    stops training as a safety net. Under several workers the step time is averaged across
    them so that every worker decides the same T (and T is not shortened: workers would
    have to agree on when).

    Args:
        plan: the run's :class:`RunPlan`.
        schedule: the optimizer's :class:`~siameseim_tf.training.WarmupCosine` (or None).
        started: ``time.perf_counter()`` when the run began (model build and compilation
            count against the budget).
        record_dir: where ``run_length.json`` is written once T is decided (None: nowhere).
        reserve_seconds: budget kept for the final save.
        strategy: to agree on T across workers.
        time_stop: also stop when the budget's time is up (off under several workers).
    """

    def __init__(
        self,
        plan: RunPlan,
        schedule=None,
        started: float | None = None,
        record_dir: Path | None = None,
        calibration_steps: int = 8,
        reserve_seconds: float = 5.0,
        strategy=None,
        time_stop: bool = True,
        log=print,
        tag: str = "pretrain",
    ):
        super().__init__()
        self.plan, self.schedule, self.record_dir = plan, schedule, record_dir
        self.clock = time.perf_counter  # ``started`` is on this clock (tests replace it)
        self.started = self.clock() if started is None else started
        self.calibration_steps, self.reserve_seconds = calibration_steps, reserve_seconds
        self.strategy, self.log, self.time_stop, self.tag = strategy, log, time_stop, tag
        self._ends: list[tuple[int, float]] = []
        self._checks: list[int] = []
        # A budget run whose length is already known (resumed) never re-measures.
        self._fixed = plan.total_steps is not None
        self._seconds_per_step: float | None = None  # measured in this process
        self.stopped_by_budget = False

    @property
    def total_steps(self) -> int | None:
        return self.plan.total_steps

    def _apply(self, total: int) -> None:
        self.plan.total_steps = int(total)
        warmup = min(int(round(self.plan.warmup_fraction * total)), total)
        if self.schedule is not None and hasattr(self.schedule, "set_length"):
            self.schedule.set_length(total, warmup)
        if hasattr(self.model, "momentum_total_steps"):
            self.model.momentum_total_steps.assign(float(total))

    def on_train_begin(self, logs=None):
        if self.plan.total_steps is not None:
            self._apply(self.plan.total_steps)
        elif self.schedule is not None:
            # Provisional length until the budget is converted: a long warmup keeps the
            # few calibration steps at a small learning rate.
            self.schedule.set_length(10**6, 10**5)

    def _step(self) -> int:
        return train_step_count(self.model)

    def _steps_that_fit(self, step: int, seconds_per_step: float) -> int:
        elapsed = self.clock() - self.started
        remaining = self.plan.budget_seconds - elapsed - self.reserve_seconds
        # 3 % margin: later steps were measured to run a little slower (monitors, saves).
        return max(step + 1, step + int(0.97 * remaining / seconds_per_step))

    def _decide(self, step: int, seconds_per_step: float, final: bool) -> None:
        if self.strategy is not None and self.strategy.num_replicas_in_sync > 1:
            seconds_per_step = _mean_across_workers(self.strategy, seconds_per_step)
        self._seconds_per_step = seconds_per_step
        total = self._steps_that_fit(step, seconds_per_step)
        first = self.plan.total_steps is None
        self._apply(total)
        if final:
            self._record(total, seconds_per_step, step)
        if first:
            self.log(
                f"[{self.tag}] budget {self.plan.budget_seconds / 60:g} min: "
                f"{seconds_per_step:.3f} s/step measured -> {total} steps in all "
                f"({total / self.plan.steps_per_epoch:.1f} epochs); lr and momentum "
                "schedules sized to end with the budget"
            )
        elif final:
            self.log(
                f"[{self.tag}] budget re-measured ({seconds_per_step:.3f} s/step): {total} steps"
            )

    def _record(self, total: int, seconds_per_step: float, step: int) -> None:
        if self.record_dir is None:
            return
        Path(self.record_dir).mkdir(parents=True, exist_ok=True)
        record = dict(
            total_steps=total,
            seconds_per_step=round(seconds_per_step, 5),
            budget_seconds=self.plan.budget_seconds,
            decided_at_step=step,
        )
        (Path(self.record_dir) / RUN_LENGTH_FILE).write_text(json.dumps(record))

    def _keep_to_budget(self, step: int, now: float) -> None:
        """Shortens a fixed T when the steps left no longer fit (after a stall)."""
        total, rate = self.plan.total_steps, self._seconds_per_step
        deadline = self.started + self.plan.budget_seconds - 0.5 * self.reserve_seconds
        if step >= total or now + (total - step) * rate <= deadline:
            return
        # Re-measured over everything since the compile, the stall included: cautious.
        (s0, t0) = self._ends[2]
        rate = max(rate, (now - t0) / max(step - s0, 1))
        shorter = min(total - 1, self._steps_that_fit(step, rate))
        self._apply(shorter)
        self._record(shorter, rate, step)
        self.log(
            f"[{self.tag}] behind the budget at step {step} (a stall): {total} -> "
            f"{shorter} steps, schedules shortened to end in time"
        )

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        now = self.clock()
        if self.plan.budget_seconds is not None and not self._fixed:
            self._ends.append((step, now))
            # The first steps compile; the window must also see an epoch's end (its
            # checkpoints and logs cost time too).
            window = max(self.calibration_steps, min(self.plan.steps_per_epoch + 1, 60))
            if len(self._ends) >= window + 2:
                (s0, t0), (s1, t1) = self._ends[2], self._ends[-1]
                rate = (t1 - t0) / max(s1 - s0, 1)
                if self.plan.total_steps is None:
                    self._decide(step, rate, final=False)
                    self._checks = [int(f * self.plan.total_steps) for f in (0.2, 0.5)]
                elif self._checks and step >= self._checks[0]:
                    # Re-measured over everything since the compile: a steadier figure.
                    self._checks.pop(0)
                    self._decide(step, rate, final=not self._checks)
                    self._fixed = not self._checks
        elif self._seconds_per_step is not None and self.time_stop:
            self._keep_to_budget(step, now)
        if self.plan.total_steps is not None and step >= self.plan.total_steps:
            self.model.stop_training = True
        budget = self.plan.budget_seconds
        # Not under several workers: one worker stopping alone would leave the others
        # blocked in a collective; there the decided step count stops them all.
        if self.time_stop and budget is not None and now - self.started >= budget:
            if not self.model.stop_training:
                self.stopped_by_budget = True
                self.log(f"[{self.tag}] time budget reached at step {step}")
            self.model.stop_training = True


def _mean_across_workers(strategy, value: float) -> float:
    import tensorflow as tf

    per_replica = strategy.run(lambda: tf.constant(value, tf.float32))
    return float(strategy.reduce("MEAN", per_replica, axis=None))
