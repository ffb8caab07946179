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
