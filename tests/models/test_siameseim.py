"""SiameseIM forward, momentum update, train step and saving (method §3, §5, §6)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf import SiameseIM
from siameseim_tf.layers.tokens import visible_indices
from siameseim_tf.layers.transformer import configure_blocks
from siameseim_tf.losses import unigrad_loss
from siameseim_tf.training import momentum_at
from siameseim_tf.training.callbacks import MomentumSchedule
from tests.helpers import NEEDS_TF_BF16_KERNELS, TINY, native_skip_reason, random_batch

NATIVE_SKIP = native_skip_reason()


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def model():
    return SiameseIM(**TINY)


def test_contract_shapes_and_loss(model):
    batch = random_batch()
    outputs = model(batch, training=False)
    assert tuple(outputs["pred"].shape) == (4, 16, 16)
    assert tuple(outputs["target"].shape) == (4, 16, 16)
    loss = model.compute_loss(x=batch, y_pred=outputs)
    np.testing.assert_allclose(
        float(loss), float(unigrad_loss(outputs["pred"], outputs["target"], 0.02))
    )
    features = model.encoder(batch["view1"])
    assert {k: tuple(v.shape) for k, v in features.items()} == {
        "cls": (4, 32),
        "tokens": (4, 16, 32),
        "pooled": (4, 32),
    }


def test_target_starts_as_copy_and_patch_embedding_is_frozen(model):
    for target, online in model.momentum_pairs():
        np.testing.assert_array_equal(numpy(target), numpy(online))
    trainable = {v.path for v in model.trainable_variables}
    assert not any("patch_embed" in p for p in trainable)
    assert not any(p.startswith("mm_") for p in trainable)
    names = {v.name for v in model.trainable_variables}
    assert "mask_token" in names and "mm_mask_token" not in names


def test_visible_indices_keep_grid_order():
    mask = np.array([[1, 0, 1, 0, 0, 1], [0, 0, 0, 1, 1, 1]], "float32")
    np.testing.assert_array_equal(numpy(visible_indices(mask, 3)), [[1, 3, 4], [0, 1, 2]])


def test_prediction_depends_on_relative_position_not_on_masked_pixels(model):
    batch = random_batch(seed=1)
    base = numpy(model.predict_tokens(batch))
    moved = dict(batch, rel_pos=batch["rel_pos"] + np.array([0.1, 0, 0, 0, 0, 0], "float32"))
    assert np.abs(numpy(model.predict_tokens(moved)) - base).max() > 1e-4
    # Changing masked pixels only must not change the prediction.
    hidden = batch["view1"].copy()
    cell = int(np.flatnonzero(batch["mask"][0])[0])
    r, c = divmod(cell, 4)
    hidden[0, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] += 5.0
    np.testing.assert_allclose(
        numpy(model.predict_tokens(dict(batch, view1=hidden))), base, atol=1e-5
    )


def test_momentum_update_formula():
    model = SiameseIM(**TINY)
    pairs = model.momentum_pairs()
    for _, online in pairs:
        online.assign(online + 1.0)
    before = [(numpy(t), numpy(o)) for t, o in pairs]
    model.update_target(0.9)
    for (t, o), (target, _) in zip(before, pairs):
        np.testing.assert_allclose(numpy(target), 0.9 * t + 0.1 * o, rtol=1e-6, atol=1e-7)


def fit_tiny(model, steps=4, epochs=1, **compile_kwargs):
    batches = [random_batch(seed=s) for s in range(steps)]
    data = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(4)
    return model.fit(dataset, epochs=epochs, verbose=0, callbacks=[MomentumSchedule()])


def test_fit_logs_metrics_and_follows_schedules():
    model = SiameseIM(**TINY, base_momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    patch_before = numpy(model.encoder.patch_embed.proj.kernel)
    target_before = [numpy(t) for t, _ in model.momentum_pairs()]
    history = fit_tiny(model, steps=4, epochs=2).history
    assert set(history) == {"loss", "grad_norm", "lr", "momentum"}
    assert all(np.isfinite(v).all() for v in history.values())
    assert float(model.momentum_total_steps) == 8
    # momentum logged at the last step (t = 7 of T = 8)
    np.testing.assert_allclose(history["momentum"][-1], momentum_at(7 / 8, 0.9), rtol=1e-6)
    np.testing.assert_array_equal(numpy(model.encoder.patch_embed.proj.kernel), patch_before)
    # The target patch embedding follows the frozen online one: unchanged too.
    changed = [
        np.abs(numpy(t) - b).max() > 0 for (t, _), b in zip(model.momentum_pairs(), target_before)
    ]
    assert sum(changed) > len(changed) // 2


def test_gradient_clipping_bounds_the_global_update():
    # SGD: the update is -lr * g_clipped, so its global norm is lr * clip when clipping bites.
    model = SiameseIM(**TINY, clip_grad_norm=1e-3)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [numpy(v) for v in model.trainable_variables]
    history = fit_tiny(model, steps=1).history
    assert history["grad_norm"][0] > 1e-3  # clipping was active
    step = np.sqrt(
        sum(np.sum((numpy(v) - b) ** 2) for v, b in zip(model.trainable_variables, before))
    )
    np.testing.assert_allclose(step, 1e-3, rtol=1e-3)


def test_keras_round_trip_and_resume(tmp_path):
    model = SiameseIM(**TINY)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    fit_tiny(model, steps=2)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    batch = random_batch(seed=3)
    for key, value in model(batch).items():
        np.testing.assert_array_equal(numpy(restored(batch)[key]), numpy(value))
    assert int(restored.optimizer.iterations) == 2
    np.testing.assert_allclose(float(restored.current_momentum()), float(model.current_momentum()))
    encoder_path = tmp_path / "encoder.keras"
    model.encoder.save(encoder_path)
    encoder = keras.saving.load_model(encoder_path)
    np.testing.assert_array_equal(
        numpy(encoder(batch["view1"])["pooled"]), numpy(model.encoder(batch["view1"])["pooled"])
    )


@pytest.mark.slow  # 5-10 s on a fast CPU: the default run stays under 10 min on slow ones
@NEEDS_TF_BF16_KERNELS
def test_mixed_bfloat16_trains():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = SiameseIM(**TINY)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        history = fit_tiny(model, steps=2).history
        assert np.isfinite(history["loss"]).all()
        assert model.decoder_pred.compute_dtype == "bfloat16"
        assert model.projector_blocks[0].norm1.compute_dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_bad_mask_count_is_rejected():
    with pytest.raises(ValueError, match="num_masked_patches"):
        SiameseIM(**dict(TINY, num_masked_patches=16))


@pytest.mark.skipif(NATIVE_SKIP is not None, reason=str(NATIVE_SKIP))
def test_fused_step_keeps_no_attention_probabilities_for_the_target_branch():
    plain, fused = SiameseIM(**TINY), SiameseIM(**TINY)
    fused.set_weights(plain.get_weights())
    assert configure_blocks(fused, fused_kernels=True) > 0
    for m in (plain, fused):
        m.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        fit_tiny(m, steps=2)
    for a, b in zip(plain.get_weights(), fused.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    batch = {k: tf.constant(v) for k, v in random_batch(seed=9).items()}
    graph = tf.function(fused.train_step).get_concrete_function(batch).graph
    types = [op.type for op in graph.get_operations()]
    blocks = len(fused.target_encoder.blocks) + len(fused.target_projector_blocks)
    assert types.count("SimAttentionInference") == blocks  # the momentum branch
    assert types.count("SimAttention") == blocks + len(fused.predictor_blocks)  # online
