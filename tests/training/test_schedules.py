"""Schedules and optimizer of method §6."""

import json
from pathlib import Path

import keras
import numpy as np

from siameseim_tf.training import AdamW, WarmupCosine, make_optimizer, momentum_at

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "reference_values.json").read_text())


def test_momentum_matches_authors_reference():
    ref = REFERENCE["momentum_schedule"]
    got = [momentum_at(t / ref["total_epochs"], ref["base"]) for t in ref["at_epochs"]]
    np.testing.assert_allclose(got, ref["momentum"], atol=1e-7)


def test_momentum_end_points_and_monotone():
    assert momentum_at(0.0, 0.995) == 0.995
    assert momentum_at(1.0, 0.995) == 1.0
    assert abs(momentum_at(0.5, 0.99) - 0.995) < 1e-12  # half way: (m0 + 1) / 2
    values = [momentum_at(t, 0.99) for t in np.linspace(0, 1, 50)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_warmup_cosine_values():
    schedule = WarmupCosine(1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    at = lambda s: float(schedule(s))
    assert at(0) == 0.0
    np.testing.assert_allclose(at(5), 0.5)
    np.testing.assert_allclose(at(10), 1.0)
    np.testing.assert_allclose(at(60), 0.55, rtol=1e-6)  # cosine half way: (1 + 0.1) / 2
    np.testing.assert_allclose(at(110), 0.1, rtol=1e-6)
    restored = WarmupCosine.from_config(schedule.get_config())
    assert float(restored(37)) == at(37)


def test_make_optimizer_scales_lr_with_batch():
    opt = make_optimizer(
        base_lr=6.25e-5, global_batch_size=4096, steps_per_epoch=10, epochs=100, warmup_epochs=40
    )
    schedule = opt._learning_rate  # the LearningRateSchedule object
    np.testing.assert_allclose(float(schedule(400)), 6.25e-5 * 16, rtol=1e-6)
    assert opt.beta_1 == 0.9 and opt.beta_2 == 0.95 and opt.weight_decay == 0.05


def test_adamw_decays_only_matrices():
    matrix = keras.Variable(np.ones((2, 2), "float32"))
    vector = keras.Variable(np.ones((2,), "float32"))
    opt = AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.apply([np.zeros((2, 2), "float32"), np.zeros((2,), "float32")], [matrix, vector])
    np.testing.assert_allclose(matrix.numpy(), 1 - 0.1 * 0.5)  # decoupled decay
    np.testing.assert_allclose(vector.numpy(), 1.0)  # biases / norms: no decay


def test_update_ema_interpolates_between_target_and_online():
    import keras

    from siameseim_tf.models.momentum import update_ema

    target, online = keras.Variable([1.0, 2.0]), keras.Variable([3.0, 6.0])
    update_ema([(target, online)], 1.0)
    np.testing.assert_array_equal(target.numpy(), [1.0, 2.0])
    update_ema([(target, online)], 0.75)
    np.testing.assert_allclose(target.numpy(), [1.5, 3.0])
    update_ema([(target, online)], 0.0)
    np.testing.assert_array_equal(target.numpy(), online.numpy())
