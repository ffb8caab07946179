"""MAE baseline: pure pixel/loss functions, model contract, saving, training, dataset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data import array_source, make_single_view, make_views
from siameseim_tf.models import MAE
from siameseim_tf.models.mae import (
    mae_loss,
    normalize_patches,
    num_masked_patches,
    patchify,
    restore_indices,
    unpatchify,
)
from siameseim_tf.models.train_step import global_gradients
from siameseim_tf.training.mae_data import build_mae_dataset, random_mask
from tests.helpers import TINY_MAE

ROOT = Path(__file__).parents[2]
N, M, K = 16, 12, 8 * 8 * 3  # patches, masked (round(0.75 * 16)), pixels per patch


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def mae_batch(batch_size: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.zeros((batch_size, N), "int32")
    for row in mask:
        row[rng.choice(N, M, replace=False)] = 1
    image = rng.normal(size=(batch_size, 32, 32, 3)).astype("float32")
    return {"image": image, "mask": mask}


@pytest.fixture(scope="module")
def model():
    return MAE(**TINY_MAE)


# ----------------------------------------------------------------- pure functions
def test_patchify_layout_and_round_trip():
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    patches = numpy(patchify(images, 8))
    assert patches.shape == (2, N, K)
    # Patch (row 1, col 2) = cell 6, pixels in (row, col, channel) order.
    np.testing.assert_array_equal(patches[1, 6], images[1, 8:16, 16:24].reshape(-1))
    np.testing.assert_array_equal(numpy(unpatchify(patches, 8)), images)


def test_normalized_pixel_target_by_hand():
    patch = np.array([[[1.0, 2.0, 3.0, 6.0]]], "float32")  # mean 3, unbiased var 14/3
    expected = (patch - 3.0) / np.sqrt(14.0 / 3.0 + 1e-6)
    np.testing.assert_allclose(numpy(normalize_patches(patch)), expected, rtol=1e-6)
    constant = np.full((1, 1, 4), 5.0, "float32")  # var 0: eps keeps it finite (zeros)
    np.testing.assert_array_equal(numpy(normalize_patches(constant)), 0.0)


def test_loss_by_hand_counts_masked_patches_only():
    target = np.array([[[1.0, 3.0], [0.0, 4.0], [2.0, 2.0]]], "float32")  # [1, 3, 2]
    pred = np.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]], "float32")
    mask = np.array([[1, 0, 1]], "float32")
    # raw: patch 0 -> (1 + 9) / 2 = 5, patch 2 -> (0 + 4) / 2 = 2; mean over masked = 3.5
    assert float(mae_loss(pred, target, mask, norm_pix=False)) == pytest.approx(3.5)
    # normalised: patch 0 -> [-1, 1] / sqrt(2 + eps), patch 2 -> [0, 0]
    t0 = np.array([-1.0, 1.0]) / np.sqrt(2.0 + 1e-6)
    by_hand = (np.mean((pred[0, 0] - t0) ** 2) + np.mean((pred[0, 2] - 0.0) ** 2)) / 2
    assert float(mae_loss(pred, target, mask, norm_pix=True)) == pytest.approx(by_hand, 1e-6)
    # predictions (and targets) at visible positions do not count
    pred2, target2 = pred.copy(), target.copy()
    pred2[0, 1] += 100.0
    target2[0, 1] -= 7.0
    for norm_pix in (False, True):
        assert float(mae_loss(pred2, target2, mask, norm_pix)) == pytest.approx(
            float(mae_loss(pred, target, mask, norm_pix))
        )


def test_restore_indices_put_tokens_back_in_grid_order():
    mask = np.array([[1, 0, 1, 0, 0, 1], [0, 0, 0, 1, 1, 1]], "int32")
    restore = numpy(restore_indices(mask, 3))
    keys = mask * 6 + np.arange(6)  # [visible..., masked...] as visible_indices sorts them
    np.testing.assert_array_equal(restore, np.argsort(np.argsort(keys, axis=1), axis=1))
    shuffled = np.take_along_axis(np.arange(6)[None].repeat(2, 0), np.argsort(keys, 1), 1)
    np.testing.assert_array_equal(np.take_along_axis(shuffled, restore, 1), [np.arange(6)] * 2)


def test_mask_count_and_validation():
    assert num_masked_patches(196, 0.75) == 147 and num_masked_patches(16, 0.75) == M
    with pytest.raises(ValueError):
        num_masked_patches(16, 1.0)
    mask = numpy(random_mask(tf.constant([1, 2], tf.int64), N, M))
    assert mask.dtype == np.int32 and mask.sum() == M


def test_global_gradients_clip_the_global_norm():
    grads = [tf.constant([3.0]), tf.constant([4.0])]
    clipped, norm = global_gradients(grads, keras.optimizers.SGD(), clip_grad_norm=1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose([float(g[0]) for g in clipped], [0.6, 0.8], rtol=1e-5)
    same, _ = global_gradients(grads, keras.optimizers.SGD(), clip_grad_norm=None)
    np.testing.assert_array_equal([float(g[0]) for g in same], [3.0, 4.0])


# ----------------------------------------------------------------- model
def test_contract_shapes_and_encoder(model):
    batch = mae_batch()
    outputs = model(batch)
    assert tuple(outputs["pred"].shape) == (4, N, K) and outputs["pred"].dtype == "float32"
    loss = model.compute_loss(x=batch, y_pred=outputs)
    expected = mae_loss(outputs["pred"], patchify(batch["image"], 8), batch["mask"])
    assert float(loss) == pytest.approx(float(expected))
    assert model.encoder.final_norm and model.encoder.patch_embed.trainable
    features = model.encoder(batch["image"])
    assert tuple(features["pooled"].shape) == (4, 32)
    trainable = {v.path for v in model.trainable_variables}
    assert any("patch_embed" in p for p in trainable)
    assert not any("pos_embed" in p for p in trainable)  # both sin-cos tables are fixed
    np.testing.assert_array_equal(numpy(model.decoder_pos_embed)[0, 0], 0.0)


def test_masked_pixels_do_not_reach_the_prediction(model):
    batch = mae_batch(seed=1)
    base = numpy(model(batch)["pred"])
    hidden = batch["image"].copy()
    cell = int(np.flatnonzero(batch["mask"][0])[0])
    r, c = divmod(cell, 4)
    hidden[0, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] += 5.0
    np.testing.assert_allclose(numpy(model(dict(batch, image=hidden))["pred"]), base, atol=1e-5)
    # ... whereas visible pixels do.
    cell = int(np.flatnonzero(batch["mask"][0] == 0)[0])
    r, c = divmod(cell, 4)
    hidden[0, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] += 5.0
    assert np.abs(numpy(model(dict(batch, image=hidden))["pred"]) - base).max() > 1e-4


def test_keras_round_trip_identical_outputs(model, tmp_path):
    path = tmp_path / "mae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MAE) and loaded.get_config() == model.get_config()
    batch = mae_batch(seed=2)
    np.testing.assert_array_equal(numpy(loaded(batch)["pred"]), numpy(model(batch)["pred"]))


@pytest.mark.slow  # 5-10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_fit_overfits_one_batch():
    keras.utils.set_random_seed(0)
    model = MAE(**TINY_MAE, clip_grad_norm=1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = mae_batch(8, seed=3)
    # Each image tiles its own random 8x8 patch (random contrast and offset): normalised
    # noise would only teach the tiny model to predict ~0 (loss ~1) in 30 steps.
    rng = np.random.default_rng(3)
    tiles = rng.normal(size=(8, 8, 8, 3)) * rng.uniform(0.5, 2.0, (8, 1, 1, 1))
    batch["image"] = (np.tile(tiles, (1, 4, 4, 1)) + rng.normal(size=(8, 1, 1, 1))).astype(
        "float32"
    )
    fixed = tf.data.Dataset.from_tensors(batch)
    start = float(model.evaluate(fixed, verbose=0))
    logs = model.fit(fixed.repeat(), steps_per_epoch=30, epochs=1, verbose=0).history
    end = float(model.evaluate(fixed, verbose=0))
    assert set(logs) == {"loss", "grad_norm", "lr"}
    assert np.isfinite(logs["loss"][0]) and np.isfinite(logs["grad_norm"][0])
    assert logs["lr"][0] == pytest.approx(1e-3)
    assert np.isfinite(end) and end < 0.8 * start, (start, end)


# ----------------------------------------------------------------- dataset
def test_dataset_contract_and_varying_masks():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 40, 48, 3)).astype(np.uint8)
    kw = dict(num_masked=M, image_size=32, patch_size=8, seed=5)
    ds = build_mae_dataset(array_source(images), 4, **kw)
    stream = iter(ds)
    batches = [next(stream) for _ in range(3)]
    masks = np.concatenate([numpy(b["mask"]) for b in batches])  # [12, N]
    for b in batches:
        assert b["image"].shape == (4, 32, 32, 3) and b["image"].dtype == tf.float32
        assert b["mask"].shape == (4, N) and b["mask"].dtype == tf.int32
    np.testing.assert_array_equal(masks.sum(axis=1), M)
    assert len({row.tobytes() for row in masks}) == len(masks)  # all different
    # Reproducible, and the view is view 1 of the data package's example without colour.
    again = next(iter(build_mae_dataset(array_source(images), 4, **kw)))
    np.testing.assert_array_equal(numpy(again["mask"]), numpy(batches[0]["mask"]))
    plain = build_mae_dataset(
        array_source(images), 1, num_masked=M, image_size=32, patch_size=8, seed=5, shuffle=False
    )
    first = next(iter(plain))["image"][0]
    view1 = make_views(images[0], tf.constant([5, 0], tf.int64), color=False, image_size=32)[0]
    np.testing.assert_allclose(numpy(first), numpy(view1), atol=1e-6)
    single = make_single_view(images[0], tf.constant([5, 0], tf.int64), image_size=32)
    np.testing.assert_allclose(numpy(first), numpy(single), atol=1e-6)


def test_dataset_takes_the_exact_mask_count():
    images = np.zeros((4, 16, 16, 3), np.uint8)
    ds = build_mae_dataset(array_source(images), 4, num_masked=5, image_size=16, patch_size=4)
    np.testing.assert_array_equal(numpy(next(iter(ds))["mask"]).sum(1), 5)
    for bad in (0, 16):
        with pytest.raises(ValueError, match="num_masked"):
            build_mae_dataset(array_source(images), 4, num_masked=bad, image_size=16, patch_size=4)


def test_dataset_input_context_shards_and_batches_per_replica():
    images = np.arange(8 * 16 * 16 * 3, dtype=np.int64).reshape(8, 16, 16, 3).astype(np.uint8)
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    ds = build_mae_dataset(
        array_source(images), 4, num_masked=12, image_size=16, patch_size=4, input_context=context
    )
    batch = next(iter(ds))
    assert batch["image"].shape == (2, 16, 16, 3) and batch["mask"].shape == (2, 16)
    np.testing.assert_array_equal(numpy(batch["mask"]).sum(1), 12)


# ----------------------------------------------------------------- distribution
_REPLICA_RUN = """
import json
from siameseim_tf.training.strategy import split_cpu
devices = split_cpu(2)
import keras, numpy as np, tensorflow as tf
from siameseim_tf.models import MAE
from tests.helpers import TINY_MAE
from tests.models.test_mae import mae_batch

def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = MAE(**TINY_MAE, clip_grad_norm=0.05)  # the gradient norm is ~0.27: clipped
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.optimizer.build(model.trainable_variables)
    weights = lambda: [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    before = weights()
    data = tf.data.Dataset.from_tensors(mae_batch(8, seed=4)).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    return before, weights()

start, one = run(tf.distribute.OneDeviceStrategy(devices[0]))
_, two = run(tf.distribute.MirroredStrategy(devices))
print(json.dumps({
    "change": max(float(np.abs(a - b).max()) for a, b in zip(start, one)),
    "diff": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
}))
"""


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_two_replicas_match_one_device_with_global_clipping():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", _REPLICA_RUN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["change"] > 1e-3 and report["diff"] < 1e-6, report
