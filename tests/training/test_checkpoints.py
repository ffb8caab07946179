"""Atomic checkpoints: complete or absent, the previous one kept, damaged ones skipped."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from siameseim_tf.training.checkpoints import RunCheckpoints, truncate_log, write_atomically


def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def train_steps(model, steps: int) -> None:
    x = np.ones((4, 3), np.float32)
    model.fit(x, x[:, :2], batch_size=4, epochs=steps, verbose=0)


def test_keeps_two_and_restores_the_newest(tmp_path):
    model, checkpoints = tiny_model(), RunCheckpoints(tmp_path / "ck", log=lambda *_: None)
    for step in (1, 2, 3):
        train_steps(model, 1)
        checkpoints.save(model, step, data_start=10 * step)
    assert checkpoints.steps() == [2, 3]
    fresh = tiny_model(seed=1)
    state = checkpoints.restore(fresh)
    assert (state.step, state.data_start) == (3, 30)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_damaged_newest_falls_back_to_the_previous(tmp_path):
    model, messages = tiny_model(), []
    checkpoints = RunCheckpoints(tmp_path / "ck", log=messages.append)
    train_steps(model, 1)
    checkpoints.save(model, 1, data_start=5)
    train_steps(model, 1)
    newest = checkpoints.save(model, 2, data_start=9)
    weights = newest / "state.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])  # torn
    state = checkpoints.restore(tiny_model(seed=2))
    assert state.step == 1 and any("unreadable" in m for m in messages)
    (checkpoints.complete()[0] / "state.json").write_text("{")  # both damaged now
    with pytest.raises(RuntimeError, match="could be loaded"):
        checkpoints.restore(tiny_model(seed=2))


def test_half_written_checkpoints_are_invisible_and_cleaned(tmp_path):
    model = tiny_model()
    checkpoints = RunCheckpoints(tmp_path / "ck", log=lambda *_: None)
    stray = tmp_path / "ck" / ".step-000000007.tmp-999999"
    stray.mkdir(parents=True)
    (stray / "state.weights.h5").write_bytes(b"half")
    assert checkpoints.restore(model) is None  # nothing complete yet
    train_steps(model, 1)
    checkpoints.save(model, 1, data_start=0)
    assert not stray.exists() and checkpoints.steps() == [1]


def test_truncate_log_keeps_one_row_per_epoch(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n")
    truncate_log(log, 2)
    assert log.read_text() == "epoch,loss\n0,1.0\n1,0.9\n"
    write_atomically(log, lambda tmp: tmp.write_text("x"))
    assert log.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["log.csv"]
