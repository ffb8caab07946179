"""Fine-tuning as a Keras task: classifier round trip, labelled sources, mixing semantics,
2 replicas = 1 device, export with probabilities, the CLI on a class folder."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data import BadInputError, array_source
from siameseim_tf.data.finetune_data import build_finetune_dataset, count_classes
from siameseim_tf.data.folder import image_folder_source
from siameseim_tf.data.mixing import cutmix_box, mix_batch, smooth_one_hot
from siameseim_tf.models.classifier import ViTClassifier, copy_encoder
from tests.helpers import run_module


def test_classifier_keras_round_trip(make_encoder, tmp_path):
    model = ViTClassifier(copy_encoder(make_encoder(), 0.1), 3, ["cat", "dog", "eel"])
    x = tf.random.normal((2, 32, 32, 3), seed=0)
    model.save(tmp_path / "c.keras")
    loaded = keras.saving.load_model(tmp_path / "c.keras")
    assert type(loaded) is ViTClassifier and loaded.class_names == ["cat", "dog", "eel"]
    assert loaded.encoder.drop_path_rate == 0.1 and loaded.encoder.fc_norm is not None
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_linear_probe_trains_only_the_head_with_lars(make_encoder, tmp_path):
    """The paper's probe: frozen encoder (weights and behaviour), BatchNorm without affine
    parameters + head, LARS with gradient accumulation; the .keras file round-trips."""
    from siameseim_tf.evaluation.finetune import finetune
    from siameseim_tf.evaluation.optim import LARS

    encoder = make_encoder()
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (32, 36, 36, 3)).astype(np.uint8), np.arange(32) % 4
    model, metrics = finetune(
        encoder,
        array_source(images, "r", labels),
        tmp_path,
        test_source=array_source(images[:8], "t", labels[:8]),
        protocol="linear",
        total_steps=4,
        global_batch_size=8,
        accumulation_steps=2,
        base_lr=0.1,
        weight_decay=0.0,
        verbose=0,
    )
    assert isinstance(model.optimizer, LARS) and metrics["steps"] == 4
    assert (
        metrics["augmentation"]["mixup_alpha"] == 0 and not metrics["augmentation"]["rand_augment"]
    )
    assert [v.path.split("/")[-2:] for v in model.trainable_variables] == [
        ["head", "kernel"],
        ["head", "bias"],
    ]
    x = tf.random.normal((2, 32, 32, 3), seed=3)
    np.testing.assert_allclose(model.encoder(x)["pooled"], encoder(x)["pooled"], atol=1e-6)
    assert model.head_norm.center is False and model.head_norm.scale is False
    loaded = keras.saving.load_model(tmp_path / "classifier.keras", compile=False)
    assert loaded.probe and not loaded.encoder.trainable
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)


def test_class_names_must_match_classes(make_encoder):
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        ViTClassifier(make_encoder(), 3, ["a", "b"])


def _write_png(path: Path, value: int, size=(20, 24)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_labelled_folder_labels_by_sorted_class_and_skips_top_level(tmp_path):
    for name, value in [("b/x.png", 10), ("a/y.png", 20), ("a/deep/z.png", 30), ("top.png", 0)]:
        _write_png(tmp_path / name, value)
    source = image_folder_source(str(tmp_path), labelled=True)
    assert source.class_names == ("a", "b") and source.num_images == 3
    pairs = sorted(
        (int(source.decode(*raw)[0, 0, 0]), int(source.label(*raw)))
        for raw in source.raw(1, 0).as_numpy_iterator()
    )
    assert pairs == [(10, 1), (20, 0), (30, 0)]
    assert "not in a class sub-folder" in source.report.listing()
    assert count_classes(source) == 2


def test_folder_without_class_folders_is_a_clear_error(tmp_path):
    _write_png(tmp_path / "only.png", 5)
    with pytest.raises(BadInputError, match="ROOT/CLASS/image"):
        image_folder_source(str(tmp_path), labelled=True)


@pytest.mark.slow  # 5-10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_finetune_stream_is_a_function_of_seed_and_position():
    images = np.random.default_rng(0).integers(0, 255, (12, 30, 26, 3)).astype(np.uint8)
    source = array_source(images, "r", np.arange(12) % 3)

    def first(seed, start=0):
        ds = build_finetune_dataset(source, 4, image_size=16, num_classes=3, seed=seed, start=start)
        return next(iter(ds))

    (x1, y1), (x2, y2), (x3, _) = first(0), first(0), first(1)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(x1, x3)
    assert x1.shape == (4, 16, 16, 3) and y1.shape == (4, 3)
    np.testing.assert_allclose(tf.reduce_sum(y1, 1), 1.0, rtol=1e-6)


def test_smoothing_values_are_timms():
    y = smooth_one_hot(tf.constant([2]), 4, 0.1).numpy()
    np.testing.assert_allclose(y, [[0.025, 0.025, 0.925, 0.025]], rtol=1e-6)


def test_cutmix_box_side_and_clipping():
    """Side int(S * sqrt(1 - lam)) before clipping; every box inside the image."""
    for k in range(50):
        y0, y1, x0, x1 = (int(v) for v in cutmix_box(tf.constant([k, 1], tf.int64), 20, 30, 0.75))
        assert 0 <= y0 <= y1 <= 20 and 0 <= x0 <= x1 <= 30
        assert y1 - y0 <= 10 and x1 - x0 <= 15  # int(20 * 0.5), int(30 * 0.5)


def test_mixing_is_seeded_and_switches_between_mixup_and_cutmix():
    x = tf.random.normal((4, 16, 16, 3), seed=0)
    y = tf.one_hot([0, 1, 2, 3], 4)
    kinds = set()
    for k in range(20):
        seed = tf.constant([k, 0], tf.int64)
        a, ya = mix_batch(x, y, seed, 0.8, 1.0)
        b, yb = mix_batch(x, y, seed, 0.8, 1.0)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya, yb)
        kept = np.isclose(a[0].numpy(), x[0].numpy()).all(-1).mean()
        kinds.add("cutmix" if kept > 0.01 else "mixup")
    assert kinds == {"cutmix", "mixup"}


@pytest.mark.slow
def test_two_replicas_match_one_device(tmp_path):
    """3 steps of the same global batches (RandAugment + erasing on; mixup and drop path
    off) on 1 device and on 2 MirroredStrategy replicas: the same weights within float32
    reduction-order noise."""
    one = run_module("tests.evaluation.finetune_run", str(tmp_path / "one"))
    two = run_module("tests.evaluation.finetune_run", str(tmp_path / "two"), "--replicas", "2")
    assert one["steps"] == two["steps"] == 3
    a, b = np.load(tmp_path / "one" / "weights.npz"), np.load(tmp_path / "two" / "weights.npz")
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a.files)
    moved = max(float(np.max(np.abs(a[k]))) for k in a.files)
    assert worst < 1e-5 and moved > 0, (worst, moved)


def test_classifier_export_has_probabilities(make_encoder, tmp_path):
    from siameseim_tf.export.onnx import export_onnx, run_onnx
    from siameseim_tf.export.saved_model import export_saved_model

    model = ViTClassifier(copy_encoder(make_encoder(), 0.0), 5)
    path = export_saved_model(model, str(tmp_path), "clf", verbose=False)
    loaded = tf.saved_model.load(path)
    pixels = np.random.default_rng(1).integers(0, 255, (2, 40, 50, 3)).astype(np.uint8)
    out = loaded.signatures["embed_pixels"](pixels=tf.constant(pixels))
    assert out["probabilities"].shape == (2, 5)
    np.testing.assert_allclose(tf.reduce_sum(out["probabilities"], 1), 1.0, rtol=1e-5)
    onnx_path = str(tmp_path / "clf.onnx")
    export_onnx(model, onnx_path, "clf", verbose=False)
    images = np.random.default_rng(2).normal(size=(3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        run_onnx(onnx_path, images)["probabilities"],
        keras.ops.softmax(model(images)).numpy(),
        atol=1e-5,
    )


@pytest.mark.slow  # 5-10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_cli_finetunes_a_class_folder_and_exports(make_encoder, tmp_path, capsys):
    from siameseim_tf.cli import main

    encoder = make_encoder()
    encoder.save(tmp_path / "encoder.keras")
    for split, count in (("train", 8), ("test", 3)):
        for c, value in enumerate((40, 200)):
            for k in range(count):
                _write_png(tmp_path / "data" / split / f"class{c}" / f"{k}.png", value + k)
    run = tmp_path / "run"
    argv = [
        "finetune",
        "--checkpoint",
        str(tmp_path / "encoder.keras"),
        "--data",
        str(tmp_path / "data"),
        "--config",
        "finetune_tiny",
        "--steps",
        "2",
        "--output",
        str(run),
    ]
    assert main(argv) == 0
    summary = json.loads([ln for ln in capsys.readouterr().out.splitlines() if "top1" in ln][-1])
    assert summary["steps"] == 2 and 0.0 <= summary["top1"] <= 1.0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["replicas"] == 1 and not (run / "checkpoints").exists()
    assert main(argv) == 0  # a finished run: nothing to do
    assert "holds a finished run" in capsys.readouterr().out
    export = ["export", "--checkpoint", str(run / "classifier.keras"), "--output"]
    assert main([*export, str(tmp_path / "exp"), "--format", "onnx"]) == 0
    assert (tmp_path / "exp" / "siameseim.onnx").is_file()


def test_cli_rejects_a_pretraining_recipe(make_encoder, tmp_path):
    from siameseim_tf.cli import main

    make_encoder().save(tmp_path / "e.keras")
    code = main(
        ["finetune", "--checkpoint", str(tmp_path / "e.keras"), "--data", str(tmp_path)]
        + ["--config", "tiny", "--output", str(tmp_path / "r")]
    )
    assert code == 2


@pytest.mark.parametrize(
    "height, width, size", [(28, 28, 28), (8, 8, 28), (37, 120, 32), (300, 200, 224)]
)
def test_resize_then_crop_has_the_evaluation_geometry(height, width, size):
    """Training windows and the evaluation centre crop are S x S windows of one resized
    image (the export's resize): objects have the same scale in training and at test."""
    from siameseim_tf.data.finetune_data import eval_resized_shape, resize_then_crop
    from siameseim_tf.serving.preprocessing import resized_shape
    from siameseim_tf.serving.preprocessing_tf import preprocess_uint8

    new_h, new_w = resized_shape(height, width, size)
    assert tuple(eval_resized_shape(height, width, size).numpy()) == (new_h, new_w)
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3)).astype(np.uint8)
    resized = tf.image.resize(image.astype(np.float32), (new_h, new_w), antialias=False).numpy()
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    top, left = (new_h - size) // 2, (new_w - size) // 2
    centre = (resized[top : top + size, left : left + size] / 255.0 - mean) / std
    np.testing.assert_allclose(preprocess_uint8(image, size)[0], centre, atol=1e-4)
    for k in range(5):
        seed = tf.constant([k, 0], tf.int64)
        view = resize_then_crop(tf.constant(image), seed, tf.constant(False), size).numpy() * 255
        corners = np.argwhere(np.all(np.abs(resized - view[0, 0]) < 1e-3, axis=-1))
        assert any(
            i + size <= new_h
            and j + size <= new_w
            and np.allclose(view, resized[i : i + size, j : j + size], atol=1e-3)
            for i, j in corners
        ), k
