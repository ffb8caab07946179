"""The fit() driver: run directory, resume after a crash, recipes."""

import json

import keras
import numpy as np
import pytest

from siameseim_tf.data import array_source
from siameseim_tf.recipes import RecipeError, load_recipe, model_arguments, switch_method
from siameseim_tf.training.pretrain import pretrain
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
        verbose=0,
        backup_every_steps=2,
        **kwargs,
    )


def test_run_directory_and_resume_after_crash(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, extra_callbacks=[Crash(after_batches=7)])  # in epoch 2 of 3 (4 steps)
    model, history = run(tmp_path)
    # The resumed run finished the schedule: 3 epochs x 4 steps, no more, no fewer.
    assert int(model.optimizer.iterations) == 12
    assert float(keras.ops.convert_to_numpy(model.momentum_total_steps)) == 12
    assert len(history.history["loss"]) < 3  # it did not start again from epoch 1
    directory = tmp_path / "run"
    for name in ("model.keras", "encoder.keras", "run.json", "log.csv", "skipped.txt"):
        assert (directory / name).is_file(), name
    assert json.loads((directory / "run.json").read_text())["steps_per_epoch"] == 4
    encoder = keras.saving.load_model(directory / "encoder.keras")
    assert encoder.embed_dim == TINY["embed_dim"]


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
