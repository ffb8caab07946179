"""Official checkpoint import (method §8): strict keys, round trip, and a PyTorch forward."""

import keras
import numpy as np
import pytest

from siameseim_tf import SiameseIM
from siameseim_tf.convert import (
    CheckpointError,
    encoder_from_official_state_dict,
    encoder_to_official_state_dict,
    from_official_state_dict,
    load_pth,
    to_official_state_dict,
)
from siameseim_tf.models import ViTEncoder
from tests.helpers import TINY, random_batch

HEADS = dict(num_heads=TINY["num_heads"], decoder_num_heads=TINY["decoder_num_heads"])


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def trained_like():
    """A tiny model whose target and statistics differ from a fresh copy of the online."""
    model = SiameseIM(**TINY)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if variable.name != "momentum_total_steps":
            variable.assign(numpy(variable) + rng.normal(0, 0.02, variable.shape))
    for variable in model.weights:
        if variable.name == "moving_variance":
            variable.assign(np.abs(numpy(variable)) + 0.5)
    # Both branches share one fixed position table, in the official layout too.
    model.target_encoder.pos_embed.assign(model.encoder.pos_embed)
    return model


def test_round_trip_gives_identical_model(trained_like):
    state_dict = to_official_state_dict(trained_like)
    assert state_dict["patch_embed.proj.weight"].shape == (32, 3, 8, 8)  # [E, 3, P, P]
    assert state_dict["blocks.0.attn.qkv.weight"].shape == (96, 32)  # [3E, E]
    assert "projector_decoder_blocks.0.norm1.bn.running_var" in state_dict
    assert "mm_projector_decoder_blocks.0.norm1.bn.num_batches_tracked" in state_dict
    restored = from_official_state_dict(
        state_dict, **HEADS, num_masked_patches=TINY["num_masked_patches"]
    )
    assert restored.get_config()["mlp_ratio"] == TINY["mlp_ratio"]
    for a, b in zip(trained_like.weights, restored.weights):
        if a.name != "momentum_total_steps":
            np.testing.assert_array_equal(numpy(a), numpy(b), err_msg=a.path)
    batch = random_batch()
    for training in (False, True):
        for key, value in trained_like(batch, training=training).items():
            np.testing.assert_array_equal(
                numpy(restored(batch, training=training)[key]), numpy(value)
            )


def test_unknown_missing_and_misshaped_keys_are_listed(trained_like):
    state_dict = to_official_state_dict(trained_like)
    broken = dict(state_dict, **{"student_norm.weight": np.ones(16, "float32")})
    del broken["mm_mask_token"]
    broken["decoder_pred.bias"] = np.zeros(3, "float32")
    with pytest.raises(CheckpointError) as error:
        from_official_state_dict(broken, **HEADS, num_masked_patches=10)
    message = str(error.value)
    assert "student_norm.weight" in message and "mm_mask_token" in message
    assert "decoder_pred.bias" in message


def test_wrapped_checkpoint_and_encoder_only(trained_like):
    encoder_state = encoder_to_official_state_dict(trained_like.encoder)
    encoder_state["fc_norm.weight"] = np.full(32, 2.0, "float32")
    encoder_state["fc_norm.bias"] = np.zeros(32, "float32")
    encoder_state["head.weight"] = np.ones((10, 32), "float32")
    encoder_state["head.bias"] = np.arange(10, dtype="float32")
    encoder, head = encoder_from_official_state_dict({"model": encoder_state}, num_heads=4)
    assert isinstance(encoder, ViTEncoder) and encoder.pool_norm
    images = random_batch()["view1"]
    tokens = numpy(trained_like.encoder(images)["tokens"])
    np.testing.assert_allclose(numpy(encoder(images)["tokens"]), tokens, atol=1e-6)
    logits = numpy(head(encoder(images)["pooled"]))
    assert logits.shape == (4, 10)


def test_pth_needs_an_existing_file(tmp_path):
    pytest.importorskip("torch")
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_pth(tmp_path / "nothing.pth")
