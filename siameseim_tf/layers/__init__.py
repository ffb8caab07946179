"""Layers with weights, and the position-embedding functions they use."""

from siameseim_tf.layers.norms import TokenBatchNorm, make_norm
from siameseim_tf.layers.patch_embedding import PatchEmbedding
from siameseim_tf.layers.position import (
    REL_POS_COLUMNS,
    relative_cell_coordinates,
    relative_position_embedding,
    sincos_2d_embedding,
)
from siameseim_tf.layers.transformer import MultiHeadSelfAttention, TransformerBlock, gelu_exact

__all__ = [
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "REL_POS_COLUMNS",
    "TokenBatchNorm",
    "TransformerBlock",
    "gelu_exact",
    "make_norm",
    "relative_cell_coordinates",
    "relative_position_embedding",
    "sincos_2d_embedding",
]
