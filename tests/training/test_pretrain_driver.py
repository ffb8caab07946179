"""The fit() driver: run directory, resume after a crash, recipes."""

import json

import keras
import numpy as np
import pytest

from siameseim_tf.data import array_source
from siameseim_tf.recipes import RecipeError, load_recipe, model_arguments, switch_method
from siameseim_tf.training.pretrain import pretrain, uses_batch_norm
from tests.helpers import TINY


class Crash(keras.callbacks.Callback):
    """Simulates preemption after a given number of training batches."""

    def __init__(self, after_batches: int):
        super().__init__()
        self.after, self.seen = after_batches, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.after:
            raise KeyboardInterrupt("preempted")


def images(count=64):
    return np.random.default_rng(0).integers(0, 255, (count, 36, 36, 3), dtype=np.uint8)


def run(tmp_path, **kwargs):
    return pretrain(
        array_source(images()),
        tmp_path / "run",
        model_args=dict(TINY),
        epochs=3,
        global_batch_size=16,
        warmup_epochs=1,
        backup_every_steps=2,
        **{"verbose": 0, **kwargs},
    )


def weights(model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def max_difference(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(weights(a), weights(b)))


def log_epochs(directory) -> list[int]:
    rows = (directory / "log.csv").read_text().splitlines()[1:]
    return [int(row.split(",")[0]) for row in rows]


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_crash_resume_reaches_the_uninterrupted_weights(tmp_path):
    reference, _ = run(tmp_path / "a", seed=3)
    with pytest.raises(KeyboardInterrupt):  # mid-epoch 2 of 3 (4 steps), a backup at step 6
        run(tmp_path / "b", seed=3, extra_callbacks=[Crash(after_batches=7)])
    model, history = run(tmp_path / "b", seed=3)
    # The resumed run finished the schedule: 3 epochs x 4 steps, no more, no fewer.
    assert int(model.optimizer.iterations) == 12
    assert float(keras.ops.convert_to_numpy(model.momentum_total_steps)) == 12
    assert len(history.history["loss"]) < 3  # it did not start again from epoch 1
    assert max_difference(model, reference) <= 1e-6
    directory = tmp_path / "b" / "run"
    assert log_epochs(directory) == [0, 1, 2]
    for name in ("model.keras", "encoder.keras", "run.json", "skipped.txt", "finished.json"):
        assert (directory / name).is_file(), name
    assert not (directory / "checkpoints").exists()  # removed once the final files exist
    assert json.loads((directory / "run.json").read_text())["steps_per_epoch"] == 4
    encoder = keras.saving.load_model(directory / "encoder.keras")
    assert encoder.embed_dim == TINY["embed_dim"]


@pytest.mark.slow  # the kill tests check this too, through a subprocess
def test_finished_run_is_not_trained_again(tmp_path, capsys):
    run(tmp_path, seed=1)
    _, history = pretrain(
        array_source(images()),
        tmp_path / "run",
        model_args=dict(TINY),
        epochs=3,
        global_batch_size=16,
        verbose=1,
    )
    assert history is None
    assert "holds a finished run" in capsys.readouterr().out


def test_recipes_validate_and_switch_method():
    config = load_recipe("vit_base_1600ep")
    arguments = model_arguments(config)
    assert (arguments["embed_dim"], arguments["decoder_dim"], arguments["num_masked_patches"]) == (
        768,
        768,
        118,
    )
    assert config["train"]["global_batch_size"] == 4096 and config["train"]["crop_min"] == 0.08
    mae = switch_method(config, "mae")
    assert "num_masked_patches" not in mae["model"] and mae["model"]["decoder_dim"] == 768
    with pytest.raises(RecipeError, match="unknown model keys"):
        load_recipe("tiny", ["model.depthh=3"])
    with pytest.raises(RecipeError, match="unknown config"):
        load_recipe("no_such_recipe")


def test_start_up_line_asks_about_batch_norm_only_for_models_that_have_it():
    assert uses_batch_norm("siameseim", {})  # its default projector / predictor norm
    assert not uses_batch_norm("siameseim", {"norm": "layer"})
    assert not uses_batch_norm("mae", {})  # no norm argument: LayerNorm throughout
