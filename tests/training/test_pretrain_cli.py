"""`siameseim pretrain` as a user meets it: train/ vs test/, budgets, auto recipe."""

import keras
import numpy as np
import pytest
from PIL import Image

from siameseim_tf.cli import main


def _folder(root, count=40, size=30, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = root / f"class_{i % 2}"
        path.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            path / f"{i}.png"
        )


def _errors(capsys, argv):
    code = main(["pretrain", *argv])
    return code, capsys.readouterr().err.strip().splitlines()


def test_refuses_a_root_with_test_but_no_train(tmp_path, capsys):
    _folder(tmp_path / "test")
    _folder(tmp_path / "other")
    code, err = _errors(capsys, ["--data", str(tmp_path), "--output", str(tmp_path / "run")])
    assert code == 2 and len(err) == 1 and "no train/" in err[0]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--budget-minutes", "0"], "--budget-minutes must be positive"),
        (["--steps", "-3"], "--steps must be positive"),
        (["--config", "tiny", "--set", "train.global_batch_size=4096"], "less than one global"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, argv, fragment):
    _folder(tmp_path / "train")
    keras.config.set_dtype_policy("mixed_float16")  # what "auto" never picks on a CPU
    try:
        code, err = _errors(
            capsys, ["--data", str(tmp_path), "--output", str(tmp_path / "r"), *argv]
        )
        # the caller's global dtype policy is back, also after an error
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy("float32")
    assert code == 2 and len(err) == 1 and fragment in err[0], err


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_train_folder_only_auto_recipe_and_exact_steps(tmp_path, capsys):
    _folder(tmp_path / "train", count=48)
    _folder(tmp_path / "test", count=8, seed=1)
    argv = ["--data", str(tmp_path), "--output", str(tmp_path / "run"), "--steps", "3"]
    argv += ["--set", "train.global_batch_size=16", "--seed", "1"]
    assert main(["pretrain", *argv]) == 0
    out = capsys.readouterr().out
    assert "train (test/ left for evaluation)" in out
    assert "no --config: chose a recipe" in out and "typical shorter side 30 px" in out
    assert "48 images" in out and "3 steps" in out and "compiling the train step" in out
    import json

    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["total_steps"] == 3 and run["source"].endswith("train")
    assert run["model_args"]["image_size"] == 28


def test_auto_recipe_follows_the_images():
    from siameseim_tf.recipes import validate
    from siameseim_tf.recipes_auto import auto_recipe

    small, _ = auto_recipe(10000, 28, budget_minutes=10)
    medium, _ = auto_recipe(50000, 64)
    large, reasons = auto_recipe(1000, 500)
    assert small["model"]["image_size"] == 28 and medium["model"]["image_size"] == 64
    assert large["model"]["image_size"] > 64 and large["train"]["global_batch_size"] < 256
    assert "total_steps" not in small["train"]  # the budget decides
    assert medium["train"]["total_steps"] == max(1200, 3 * (50000 // 256))
    for config in (small, medium, large):
        validate(config, "auto")
    assert any("batch" in line for line in reasons)
