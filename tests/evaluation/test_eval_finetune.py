"""Fine-tuning: weight copy, layer-wise lr decay (effective per-variable lr), mixing, and a
short run on Fashion-MNIST whose loss must go down."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data.mixing import mix_batch
from siameseim_tf.evaluation.finetune import fine_tune
from siameseim_tf.evaluation.optim import layer_id, make_optimizer
from siameseim_tf.models.classifier import ViTClassifier, copy_encoder, relative_path
from siameseim_tf.training.schedules import WarmupCosine


def test_rebuild_copies_weights_and_sets_drop_path(make_encoder):
    encoder = make_encoder(depth=3)
    copy = copy_encoder(encoder, drop_path_rate=0.1)
    assert copy.drop_path_rate == 0.1 and copy.fc_norm is not None
    assert [b.drop_path for b in copy.blocks] == pytest.approx([0.0, 0.05, 0.1])
    x = tf.random.normal((2, 32, 32, 3), seed=1)
    np.testing.assert_allclose(copy(x)["tokens"], encoder(x)["tokens"], atol=1e-5)
    assert encoder.drop_path_rate == 0.0  # the original is untouched


@pytest.mark.parametrize(
    "path, expected",
    [
        ("patch_embed/proj/kernel", 0),
        ("cls_token", 0),
        ("pos_embed", 0),
        ("blocks_0/attn/qkv/kernel", 1),
        ("blocks_11/fc2/bias", 12),
        ("fc_norm/gamma", 13),
        ("head/kernel", 13),
    ],
)
def test_layer_ids(path, expected):
    assert layer_id(path, depth=12) == expected


def test_effective_learning_rate_per_variable(make_encoder):
    """One Adam step with unit gradients moves every weight by lr * factor (Adam's first
    step is lr * g / |g|), with factor = 0.65^(L + 1 - layer)."""
    depth, decay, lr = 3, 0.65, 1e-3
    model = ViTClassifier(copy_encoder(make_encoder(depth=depth), 0.0), 10)
    schedule = WarmupCosine(lr, total_steps=10, warmup_steps=0)
    optimizer = make_optimizer(model, schedule, weight_decay=0.0, layer_decay=decay)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    optimizer.apply([tf.ones_like(v) for v in variables], variables)
    seen = set()
    for variable, old in zip(variables, before):
        path = relative_path(variable)
        layer = layer_id(path, depth) if not path.startswith("head") else depth + 1
        step = np.abs(variable.numpy() - old)
        np.testing.assert_allclose(step, lr * decay ** (depth + 1 - layer), rtol=1e-3, err_msg=path)
        seen.add(layer)
    assert seen == set(range(depth + 2))  # every layer group was checked
    # The patch embedding is 0.65^4 slower than the head.
    assert optimizer.lr_factor_of(model.encoder.patch_embed.weights[0]) == pytest.approx(
        decay ** (depth + 1)
    )


def test_weight_decay_uses_the_scaled_lr_and_skips_1d(make_encoder):
    depth, decay, lr, wd = 2, 0.5, 0.1, 0.05
    model = ViTClassifier(copy_encoder(make_encoder(depth=depth), 0.0), 10)
    optimizer = make_optimizer(model, WarmupCosine(lr, warmup_steps=0, total_steps=10), wd, decay)
    variables = model.trainable_variables
    before = {relative_path(v): v.numpy().copy() for v in variables}
    optimizer.apply([tf.zeros_like(v) for v in variables], variables)  # decay only
    after = {relative_path(v): v.numpy() for v in variables}
    qkv, cls = "blocks_0/attn/qkv/kernel", "cls_token"
    np.testing.assert_allclose(after[qkv], before[qkv] * (1 - wd * lr * decay**2), rtol=1e-6)
    np.testing.assert_array_equal(after[cls], before[cls])
    np.testing.assert_array_equal(after["blocks_0/norm1/gamma"], before["blocks_0/norm1/gamma"])


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0)])
def test_mix_batch_keeps_targets_normalised(mixup, cutmix):
    x = tf.random.normal((4, 16, 16, 3), seed=0)
    y = tf.one_hot([0, 1, 2, 3], 4)
    mixed_x, mixed_y = mix_batch(x, y, tf.constant([3, 4], tf.int64), mixup, cutmix)
    assert mixed_x.shape == x.shape
    np.testing.assert_allclose(tf.reduce_sum(mixed_y, 1), 1.0, rtol=1e-6)
    lam = float(mixed_y[0, 0])  # sample 0 is mixed with sample 3
    np.testing.assert_allclose(mixed_y[0, 3], 1 - lam, rtol=1e-5, atol=1e-6)
    if cutmix:  # lam is the kept area fraction
        kept = np.isclose(mixed_x[0].numpy(), x[0].numpy()).all(-1).mean()
        assert kept == pytest.approx(lam, abs=1e-6)


@pytest.mark.slow  # 5-10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_short_fine_tune_learns(fashion_small, make_encoder, tmp_path):
    """Two epochs of 384 images under fit: the training loss falls and the classifier
    reaches twice chance (10 %) on held-out images; the original encoder is untouched."""
    train_x, train_y, test_x, test_y = fashion_small
    encoder = make_encoder(image_size=28, patch_size=7)
    before = [w.copy() for w in encoder.get_weights()]
    result = fine_tune(
        encoder,
        train_x[:384],
        train_y[:384],
        test_x[:200],
        test_y[:200],
        output_dir=tmp_path,
        epochs=3,
        batch_size=64,
        base_lr=2e-2,
        augmentation=dict(mixup_alpha=0.0, cutmix_alpha=0.0, rand_augment=False, erase_prob=0),
        progress=False,
    )
    metrics = result.metrics
    assert metrics["train_loss"][-1] < metrics["train_loss"][0] - 0.05
    assert metrics["top1"] > 0.2 and metrics["steps"] == 18
    assert result.model.encoder is not encoder
    for old, new in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(old, new)
