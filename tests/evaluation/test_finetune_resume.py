"""Kills a tiny fine-tuning run (mid-save, at random moments, one SIGTERM) and checks that
the restarted run ends with the uninterrupted run's weights: the checkpoint and stream
machinery of pretraining, reused."""

from __future__ import annotations

import random
import signal
import time

import numpy as np
import pytest

from tests.training.test_kill_resume import Run

MODULE, STEPS = "tests.evaluation.finetune_run", 9  # 3 epochs of 3 steps, saves every 2


def run(run_dir, replicas, fault=None):
    extra = ("--steps", str(STEPS), "--step-seconds", "0.3")
    return Run(run_dir, replicas, fault, module=MODULE, extra=extra)


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_killed_finetune_ends_with_the_uninterrupted_weights(tmp_path, replicas):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert run(reference, replicas).finish() == 0
    assert run(killed, replicas, "weights-written:4").finish() == -signal.SIGKILL
    rng = random.Random(replicas)
    attempt = run(killed, replicas)
    if attempt.wait_for("first step done"):
        time.sleep(rng.uniform(0.2, 1.0))
    attempt.process.kill()
    attempt.finish()
    attempt = run(killed, replicas)
    assert attempt.wait_for("first step done"), attempt.output[-2000:]
    attempt.process.send_signal(signal.SIGTERM)
    assert attempt.finish() == 0 and "SIGTERM: saved step" in attempt.output
    final = run(killed, replicas)
    assert final.finish() == 0, final.output[-3000:]
    a, b = np.load(reference / "weights.npz"), np.load(killed / "weights.npz")
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a.files)
    assert worst <= 1e-6, worst
    assert "resuming from step-" in final.output or "resuming from" in attempt.output
    rows = (killed / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [0, 1, 2]
    assert not (killed / "checkpoints").exists()
