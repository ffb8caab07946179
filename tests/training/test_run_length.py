"""Run length: steps, epochs or a time budget, all ending at an exact step count."""

import json

import keras
import numpy as np
import pytest

from siameseim_tf.data import array_source
from siameseim_tf.training.pretrain import pretrain
from siameseim_tf.training.run_length import RunPlanError, plan_run
from tests.helpers import TINY


def test_plan_from_epochs_steps_and_budget():
    plan = plan_run(1000, 100, epochs=3, warmup_epochs=1)
    assert (plan.steps_per_epoch, plan.total_steps, plan.max_epochs) == (10, 30, 3)
    assert plan.warmup_fraction == pytest.approx(1 / 3)
    plan = plan_run(1000, 100, epochs=3, total_steps=25)  # steps win over epochs
    assert (plan.total_steps, plan.max_epochs) == (25, 3)
    plan = plan_run(1000, 100, budget_minutes=2)
    assert plan.total_steps is None and plan.budget_seconds == 120
    assert plan.warmup_fraction == 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_images=10, global_batch_size=32, epochs=1), "less than one global batch"),
        (dict(num_images=100, global_batch_size=10), "say how long"),
        (dict(num_images=100, global_batch_size=10, total_steps=0), "positive"),
        (dict(num_images=100, global_batch_size=10, budget_minutes=-1), "positive"),
    ],
)
def test_plan_errors_are_one_line(kwargs, message):
    with pytest.raises(RunPlanError, match=message) as info:
        plan_run(kwargs.pop("num_images"), kwargs.pop("global_batch_size"), **kwargs)
    assert "\n" not in str(info.value)


def images(count=48):
    return np.random.default_rng(0).integers(0, 255, (count, 36, 36, 3), dtype=np.uint8)


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_total_steps_ends_mid_epoch_with_schedules_sized(tmp_path):
    model, history = pretrain(
        array_source(images()),
        tmp_path / "run",
        model_args=dict(TINY),
        total_steps=5,  # 3 steps per epoch: ends in the second epoch
        global_batch_size=16,
        warmup_fraction=0.2,
        verbose=0,
        monitors=False,
    )
    assert int(model.optimizer.iterations) == 5
    assert float(keras.ops.convert_to_numpy(model.momentum_total_steps)) == 5
    schedule = model.optimizer._learning_rate
    assert (schedule.total_steps, schedule.warmup_steps) == (5, 1)
    assert float(schedule(5)) == pytest.approx(0.0, abs=1e-9)  # cosine ended at the last step


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_budget_run_decides_steps_records_them_and_stops(tmp_path, capsys):
    model, _ = pretrain(
        array_source(images()),
        tmp_path / "run",
        model_args=dict(TINY),
        # The budget includes start-up: graph mode (seconds to trace) rather than XLA
        # (33 s to compile on an AVX2 EPYC, which then left no time for a second step).
        budget_minutes=1.0,
        global_batch_size=16,
        verbose=1,
        monitors=False,
        jit_compile=False,
    )
    decided = json.loads((tmp_path / "run" / "run_length.json").read_text())["total_steps"]
    steps = int(model.optimizer.iterations)
    out = capsys.readouterr().out
    assert "s/step measured" in out and "compiling the train step" in out
    assert decided > 10
    assert model.optimizer._learning_rate.total_steps == decided
    assert float(keras.ops.convert_to_numpy(model.momentum_total_steps)) == decided
    # Ends at the decided step; only a stall of seconds in the last steps (seen once on a
    # loaded machine) leaves the clock to stop it, and then it says so. The decisions
    # themselves are tested on a fake clock below.
    stopped_by_clock = f"time budget reached at step {steps}" in out
    assert steps == decided or (stopped_by_clock and steps < decided)


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    def weights(seed, name):
        model, _ = pretrain(
            array_source(images()),
            tmp_path / name,
            model_args=dict(TINY),
            total_steps=2,
            global_batch_size=16,
            seed=seed,
            verbose=0,
            monitors=False,
        )
        return np.concatenate([np.ravel(w) for w in model.get_weights()])

    from siameseim_tf.training.pretrain import build_model

    first, again = weights(5, "a"), weights(5, "b")
    # Same machine, same command: identical (initialisation, data order, views, masks).
    assert np.abs(first - again).max() <= 1e-6

    def init(seed):
        keras.utils.set_random_seed(seed)
        return np.concatenate([np.ravel(w) for w in build_model("siameseim", **TINY).get_weights()])

    np.testing.assert_array_equal(init(5), init(5))
    assert np.abs(init(5) - init(6)).max() > 1e-3  # another seed: another initialisation


class _Optimizer:
    def __init__(self):
        self.iterations = 0


class _Model:
    def __init__(self):
        self.optimizer, self.stop_training = _Optimizer(), False


class _Schedule:
    def __init__(self):
        self.lengths = []

    def set_length(self, total, warmup):
        self.lengths.append(total)


def _budget_run(tmp_path, stall_at=None, stall_seconds=0.0, step_seconds=0.1):
    """Drives RunLength as fit would, on a fake clock: 1-minute budget, 2 s compile."""
    from siameseim_tf.training.run_length import RunLength

    clock, logs = [0.0], []
    plan = plan_run(1000, 100, budget_minutes=1)
    schedule, model = _Schedule(), _Model()
    length = RunLength(plan, schedule, started=0.0, record_dir=tmp_path, log=logs.append)
    length.clock = lambda: clock[0]
    length.set_model(model)
    length.on_train_begin()
    while not model.stop_training:
        step = model.optimizer.iterations
        clock[0] += 2.0 if step == 0 else step_seconds
        clock[0] += stall_seconds if step == stall_at else 0.0
        model.optimizer.iterations += 1
        length.on_train_batch_end(step)
    record = json.loads((tmp_path / "run_length.json").read_text())
    return model.optimizer.iterations, clock[0], length, schedule, record, logs


def test_budget_run_without_stall_keeps_its_decided_length(tmp_path):
    steps, now, length, schedule, record, logs = _budget_run(tmp_path)
    # (60 s - 2 s compile - 5 s reserve) at 0.1 s/step, 3 % margin: ~514 steps.
    assert 500 <= steps <= 530 and now < 60
    assert steps == record["total_steps"] == length.total_steps == schedule.lengths[-1]
    assert not length.stopped_by_budget and not any("behind" in line for line in logs)


def test_budget_run_shortens_its_schedules_after_a_stall(tmp_path):
    steps, now, length, schedule, record, logs = _budget_run(tmp_path, 400, 8.0)
    # Fixed at 50 % (~257 steps); the stall at step 400 would push the end past 60 s.
    assert now < 60 and not length.stopped_by_budget
    assert steps == record["total_steps"] == length.total_steps == schedule.lengths[-1]
    assert steps < 500 and record["decided_at_step"] == 401
    assert sum("behind the budget at step 401" in line for line in logs) == 1


def test_budget_stall_at_the_very_end_is_stopped_by_the_clock(tmp_path):
    steps, now, length, _, record, logs = _budget_run(tmp_path, 505, 30.0)
    assert length.stopped_by_budget and now >= 60 and steps < record["total_steps"]
    assert any("time budget reached" in line for line in logs)
