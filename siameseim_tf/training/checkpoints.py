"""Atomic run checkpoints: weights, optimizer state and the data stream's position.

One directory per saved step, ``checkpoints/step-000000120/`` holding
``state.weights.h5`` (``model.save_weights``: model and optimizer variables, the step
counter included) and ``state.json`` (step, position of the next raw element of the data
stream). A checkpoint is written under a temporary name, flushed to disk and renamed in
one step, so a kill at any instant leaves either the complete new one or none; the
previous complete checkpoint is kept until the new one exists (TF's ``CheckpointManager``
and Keras' ``double_checkpoint`` follow the same pattern). A checkpoint that fails to load
(damaged disk, edited by hand) is reported and the previous one is used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_DIR = "checkpoints"
WEIGHTS_FILE = "state.weights.h5"
STATE_FILE = "state.json"
FINISHED_FILE = "finished.json"
# Fault injection for the kill tests: "STAGE:STEP" kills this process with SIGKILL at
# STAGE of step STEP: "weights-written" (mid-save), "renamed" (saved, not yet pruned),
# "final-saved" (model.keras and encoder.keras written, finished.json not yet).
FAULT_ENV = "SIAMESEIM_TEST_KILL_AT"


def train_step_count(model) -> int:
    """Batches the train step has run: the optimizer's step counter. With gradient
    accumulation Keras' ``iterations`` counts updates; ``_iterations`` counts batches, the
    unit of run lengths, schedules, checkpoints and stream positions here."""
    import keras

    optimizer = model.optimizer
    return int(keras.ops.convert_to_numpy(getattr(optimizer, "_iterations", optimizer.iterations)))


@dataclass
class RunState:
    """What a restart continues from."""

    step: int  # optimizer steps done
    data_start: int  # position tag of the next raw element of the data stream
    path: Path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fault(stage: str, step: int) -> None:
    if os.environ.get(FAULT_ENV) == f"{stage}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def write_atomically(path: Path, write) -> None:
    """``write(tmp_path)`` then flush and rename to ``path``: never a torn ``path``."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # same suffix (Keras checks it)
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


class RunCheckpoints:
    """The checkpoints of one run directory (per worker under several workers).

    Args:
        directory: where ``step-*`` directories live.
        keep: complete checkpoints kept (>= 2: the previous one survives a bad latest).
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 2, log=print):
        if keep < 2:
            raise ValueError(
                f"keep must be >= 2 (the previous checkpoint is the fallback), got {keep}"
            )
        self.directory, self.keep, self.log = Path(directory), keep, log

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [
            p
            for p in self.directory.glob("step-*")
            if (p / WEIGHTS_FILE).is_file() and (p / STATE_FILE).is_file()
        ]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def steps(self) -> list[int]:
        return [int(p.name.split("-")[1]) for p in self.complete()]

    def save(self, model, step: int, data_start: int) -> Path:
        final = self.directory / f"step-{step:09d}"
        if final.exists():
            return final
        tmp = self.directory / f".step-{step:09d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_weights(tmp / WEIGHTS_FILE)
        fault("weights-written", step)
        state = dict(step=int(step), data_start=int(data_start), format=1)
        (tmp / STATE_FILE).write_text(json.dumps(state))
        for name in (WEIGHTS_FILE, STATE_FILE):
            _fsync(tmp / name)
        _fsync(tmp)
        os.replace(tmp, final)  # atomic: the complete directory appears at once
        _fsync(self.directory)
        fault("renamed", step)
        self._prune()
        return final

    def _prune(self) -> None:
        for old in self.complete()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stray in self.directory.glob(".step-*.tmp-*"):  # a save killed half-way
            if not stray.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(stray, ignore_errors=True)

    def restore(self, model, at_step: int | None = None) -> RunState | None:
        """Loads the newest loadable checkpoint (at ``at_step`` exactly, when given) into
        ``model`` (built, with a built optimizer); None when there is none yet."""
        candidates = self.complete()
        if at_step is not None:
            candidates = [p for p in candidates if int(p.name.split("-")[1]) == at_step]
        for path in reversed(candidates):
            try:
                state = json.loads((path / STATE_FILE).read_text())
                model.load_weights(path / WEIGHTS_FILE)
                done = train_step_count(model)
                if done != state["step"]:
                    raise ValueError(f"optimizer step {done} != recorded step {state['step']}")
            except Exception as error:  # noqa: BLE001 - any damage means: use the previous
                self.log(
                    f"WARNING [resume] checkpoint {path} is unreadable "
                    f"({type(error).__name__}: {str(error)[:200]}); trying the previous one"
                )
                continue
            return RunState(step=state["step"], data_start=state["data_start"], path=path)
        if candidates:
            raise RuntimeError(
                f"no checkpoint in {self.directory} could be loaded (see the warnings above); "
                "move the directory away to start the run again"
            )
        return None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def truncate_log(path: Path, first_dropped_epoch: int) -> None:
    """Drops ``log.csv`` rows of epochs >= ``first_dropped_epoch`` (they are redone), so
    the file keeps one row per epoch across restarts."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(",", 1)[0].strip().isdigit()
        and int(line.split(",", 1)[0]) < first_dropped_epoch
    ]
    if len(kept) != len(lines):
        write_atomically(path, lambda tmp: Path(tmp).write_text("".join(kept)))


def num_workers(strategy) -> int:
    """Worker processes of ``strategy`` (1 without a cluster)."""
    return getattr(getattr(strategy, "extended", None), "_num_workers", 1) or 1


def agree_on_step(strategy, local_steps: list[int]) -> int | None:
    """The newest checkpoint step every worker has (a kill can land between two workers'
    saves); None when some worker has none. One worker: its newest."""
    newest = local_steps[-1] if local_steps else -1
    if num_workers(strategy) > 1:
        import tensorflow as tf

        per_replica = strategy.run(lambda: tf.constant([newest], tf.int64))
        newest = int(tf.reduce_min(strategy.gather(per_replica, axis=0)).numpy())
        if newest >= 0 and newest not in local_steps:
            raise RuntimeError(
                f"workers' checkpoints disagree: step {newest} is missing here ({local_steps})"
            )
    return None if newest < 0 else newest
