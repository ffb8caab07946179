"""Kills a tiny pretraining run again and again (SIGKILL mid-save, after a save, at an
epoch boundary, at start-up and at random moments, plus one SIGTERM) and checks that the
restarted run ends with the uninterrupted run's weights and step count."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from siameseim_tf.training.checkpoints import FAULT_ENV

ROOT = Path(__file__).resolve().parents[2]
TOTAL_STEPS = 15  # kill_driver: 5 epochs x 3 steps, checkpoints every 2 steps + epoch ends


class Run:
    """One driver process; its output lines are collected as they come."""

    def __init__(
        self,
        run_dir: Path,
        replicas: int,
        fault: str | None = None,
        module: str = "tests.training.kill_driver",
        extra: tuple[str, ...] = (),
    ):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop(FAULT_ENV, None)
        if fault:
            env[FAULT_ENV] = fault
        argv = [sys.executable, "-m", module, str(run_dir), *extra]
        self.process = subprocess.Popen(
            [*argv, "--replicas", str(replicas)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 120) -> bool:
        end = time.time() + timeout
        while time.time() < end and self.process.poll() is None:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def weights(run_dir: Path) -> dict:
    return dict(np.load(run_dir / "weights.npz"))


def check_same_run(reference: dict, resumed: dict) -> None:
    assert int(resumed["steps"]) == int(reference["steps"]) == TOTAL_STEPS
    worst = max(float(np.max(np.abs(reference[k] - resumed[k]))) for k in reference)
    assert worst <= 1e-6, worst


def kill_schedule(run_dir: Path, replicas: int, rng: random.Random) -> list[str]:
    """Runs the schedule; returns what happened to each process."""
    events = []
    # Faults placed in the checkpoint writer: mid-save, just after a save, and the save
    # at an epoch boundary (step 9 = end of epoch 3).
    for fault in ("weights-written:4", "renamed:6", "weights-written:9"):
        code = Run(run_dir, replicas, fault).finish()
        assert code == -signal.SIGKILL, f"{fault}: exit {code}"
        events.append(f"SIGKILL at {fault}")
    run = Run(run_dir, replicas)  # at start-up, before the first step
    time.sleep(rng.uniform(1.0, 4.0))
    run.process.kill()
    events.append(f"SIGKILL at start-up ({run.finish()})")
    run = Run(run_dir, replicas)
    assert run.wait_for("first step done"), run.output[-2000:]
    run.process.send_signal(signal.SIGTERM)
    code = run.finish()
    assert code == 0 and "SIGTERM: saved step" in run.output, run.output[-2000:]
    events.append("SIGTERM -> saved, exit 0")
    for _ in range(2):  # at random moments of training
        run = Run(run_dir, replicas)
        if run.wait_for("first step done"):
            time.sleep(rng.uniform(0.0, 1.2))
        run.process.kill()
        events.append(f"SIGKILL during training ({run.finish()})")
    code = Run(run_dir, replicas, f"final-saved:{TOTAL_STEPS}").finish()
    assert code == -signal.SIGKILL  # trained to the end, killed before finished.json
    events.append("SIGKILL after the final save")
    run = Run(run_dir, replicas)  # nothing left to train: writes the final files again
    code = run.finish()
    assert code == 0, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    return events


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_killed_runs_end_with_the_uninterrupted_weights(tmp_path, replicas):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    assert Run(reference_dir, replicas).finish() == 0
    events = kill_schedule(killed_dir, replicas, random.Random(replicas))
    assert len(events) >= 6
    check_same_run(weights(reference_dir), weights(killed_dir))
    rows = (killed_dir / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(5))  # one row per epoch
    assert not (killed_dir / "checkpoints").exists()
    again = Run(killed_dir, replicas)  # a finished run says so and trains nothing
    assert again.finish() == 0 and "holds a finished run" in again.output
