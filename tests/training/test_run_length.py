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
    decided = json.loads((tmp_path / "run" / "run_length.json").read_text())
    steps = int(model.optimizer.iterations)
    assert steps == decided["total_steps"] > 10
    assert model.optimizer._learning_rate.total_steps == steps
    assert float(keras.ops.convert_to_numpy(model.momentum_total_steps)) == steps
    out = capsys.readouterr().out
    assert "s/step measured" in out and "compiling the train step" in out


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
