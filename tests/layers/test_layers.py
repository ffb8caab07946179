"""Every weighted layer through the shared layer / serialisation check (tests/helpers.py)."""

from __future__ import annotations

from siameseim_tf.layers import (
    MultiHeadSelfAttention,
    PatchEmbedding,
    TokenBatchNorm,
    TransformerBlock,
)
from tests.helpers import run_layer_test


def test_patch_embedding():
    run_layer_test(PatchEmbedding, dict(patch_size=4, embed_dim=8), (2, 16, 12, 3), (2, 12, 8))


def test_attention():
    run_layer_test(MultiHeadSelfAttention, dict(dim=8, num_heads=2), (2, 5, 8), (2, 5, 8))


def test_transformer_block_with_layer_norm_and_drop_path():
    kwargs = dict(dim=8, num_heads=2, mlp_ratio=2.0, drop_path=0.1, layer_scale=0.1)
    run_layer_test(TransformerBlock, kwargs, (2, 5, 8), (2, 5, 8))


def test_transformer_block_with_batch_norm():
    kwargs = dict(dim=8, num_heads=2, norm="batch")
    run_layer_test(TransformerBlock, kwargs, (2, 5, 8), (2, 5, 8))


def test_token_batch_norm():
    layer = run_layer_test(TokenBatchNorm, dict(momentum=0.8), (3, 4, 6), (3, 4, 6))
    assert layer.get_config()["momentum"] == 0.8


def test_the_encoder_dtype_reaches_every_sub_layer():
    """keras-hub's rule: the parent's dtype policy is passed down (norms stay float32), so
    a float32 copy of a mixed-precision encoder needs no global policy switch."""
    import keras

    from siameseim_tf.models import ViTEncoder

    encoder = ViTEncoder.of_size(
        "tiny", image_size=16, patch_size=8, depth=1, dtype="mixed_bfloat16"
    )
    assert keras.config.dtype_policy().name == "float32"
    computes = {
        layer.path: layer.dtype_policy.compute_dtype
        for layer in encoder._flatten_layers(include_self=False)
    }
    for path, compute in computes.items():
        expected = "float32" if "norm" in path.split("/")[-1] else "bfloat16"
        assert compute == expected, (path, compute)
