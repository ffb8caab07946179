"""`siameseim evaluate` and :func:`evaluate`: errors are one line, a small run works."""

from __future__ import annotations

import json

import numpy as np
import pytest

from siameseim_tf.cli import main


def _error_lines(capsys, argv):
    code = main(["evaluate", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--checkpoint", "/nonexistent/model.keras"], "checkpoint not found"),
        (["--raw-pixels", "--protocol", "bogus"], "unknown protocol 'bogus'"),
        (["--raw-pixels", "--data", "/nonexistent/data"], "data directory not found"),
        ([], "exactly one of --checkpoint"),
        (["--raw-pixels", "--protocol", "finetune"], "needs --checkpoint"),
        (["--raw-pixels", "--limit-train", "0"], "--limit-train must be positive"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, fragment):
    code, err = _error_lines(capsys, argv)
    assert code == 2
    assert len(err) == 1 and fragment in err[0], err
    assert err[0].startswith("siameseim evaluate: error:")


def test_unloadable_and_wrong_checkpoints(capsys, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    code, err = _error_lines(capsys, ["--checkpoint", str(bad)])
    assert code == 2 and len(err) == 1 and "cannot load" in err[0]

    import keras

    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "dense.keras"
    dense.save(path)
    code, err = _error_lines(capsys, ["--checkpoint", str(path)])
    assert code == 2 and len(err) == 1 and "not a ViTEncoder" in err[0]


def test_empty_image_folder_is_a_user_error(capsys, tmp_path):
    code, err = _error_lines(capsys, ["--raw-pixels", "--data", str(tmp_path)])
    assert code == 2 and len(err) == 1 and "no IDX files" in err[0]


def test_cli_knn_on_a_saved_encoder(tmp_path, capsys, fashion_small, make_encoder):
    path = tmp_path / "encoder.keras"
    make_encoder().save(path)
    output = tmp_path / "out" / "results.json"
    argv = [
        "evaluate",
        "--checkpoint",
        str(path),
        "--protocol",
        "knn",
        "--limit-train",
        "300",
        "--limit-test",
        "100",
        "--output",
        str(output),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    assert main(argv) == 0
    results = json.loads(output.read_text())
    assert results["features"] == "encoder" and results["num_train"] == 300
    assert 0.2 < results["knn"]["top1"] <= 1.0  # 10 classes: chance 0.1
    assert len(list((tmp_path / "cache").iterdir())) == 2  # train + test features cached
    assert "knn" in capsys.readouterr().out
    code, err = _error_lines(capsys, ["--checkpoint", str(path), "--image-size", "64"])
    assert code == 2 and len(err) == 1 and "differs from the encoder's 32" in err[0]


def test_evaluate_all_on_raw_pixels_runs_the_frozen_protocols(fashion_small):
    from siameseim_tf.evaluation import evaluate

    train_x, train_y, test_x, test_y = fashion_small
    results = evaluate(
        None,
        "all",
        (train_x, train_y),
        (test_x, test_y),
        32,
        progress=False,
        fewshot_fraction=0.05,
        linear_options={"epochs": 5},
    )
    # "all" = knn, linear, fewshot: fine-tuning (100 epochs) runs only when named
    assert results["skipped"] == [] and "finetune" not in results
    assert results["fewshot"]["num_labelled"] == pytest.approx(30, abs=5)
    for name in ("knn", "linear", "fewshot"):
        assert 0.3 < results[name]["top1"] <= 1.0, (name, results[name])
    json.dumps(results)  # JSON-friendly


def test_evaluate_rejects_unknown_protocol():
    from siameseim_tf.evaluation import evaluate

    images = np.zeros((4, 28, 28, 1), np.uint8)
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(None, "svm", (images, np.arange(4)), (images, np.arange(4)), 32)


def test_protocol_lists_and_all():
    from siameseim_tf.evaluation.protocols import resolve_protocols

    assert resolve_protocols("all") == ("knn", "linear", "fewshot")
    assert resolve_protocols("linear,knn") == ("linear", "knn")
    assert resolve_protocols("all,finetune") == ("knn", "linear", "fewshot", "finetune")
    assert resolve_protocols("knn, knn") == ("knn",)
    with pytest.raises(ValueError, match="unknown protocol 'svm'"):
        resolve_protocols("knn,svm")


def test_random_init_baseline_is_seeded_and_differs_from_the_checkpoint(
    tmp_path, capsys, fashion_small, make_encoder
):
    from siameseim_tf.cli.evaluate import random_init_encoder

    trained = make_encoder()
    first = random_init_encoder(trained, seed=3)
    again = random_init_encoder(trained, seed=3)
    other = random_init_encoder(trained, seed=4)
    a, b, c = (np.concatenate([w.ravel() for w in e.get_weights()]) for e in (first, again, other))
    assert first.get_config()["embed_dim"] == trained.get_config()["embed_dim"]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    path = tmp_path / "encoder.keras"
    trained.save(path)
    argv = ["evaluate", "--checkpoint", str(path), "--random-init", "--protocol", "knn,linear"]
    argv += ["--limit-train", "200", "--limit-test", "100", "--epochs", "2", "--no-cache"]
    argv += ["--quiet", "--output", str(tmp_path / "r.json")]
    assert main(argv) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["random_init"] is True and {"knn", "linear"} <= set(results)
    code, err = _error_lines(capsys, ["--random-init", "--config", "no_such_recipe"])
    assert code == 2 and len(err) == 1 and "unknown config" in err[0]
