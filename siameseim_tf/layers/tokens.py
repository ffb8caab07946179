"""Token selection shared by the masked models."""

from __future__ import annotations

from keras import ops


def visible_indices(mask, num_visible: int):
    """Grid indices of the unmasked patches, in grid order: mask [B, N] -> [B, V]."""
    num_patches = mask.shape[-1]
    # Unique sort keys: visible cells first, each group in grid order.
    keys = ops.cast(mask, "int32") * num_patches + ops.arange(num_patches, dtype="int32")
    return ops.argsort(keys, axis=-1)[:, :num_visible]
