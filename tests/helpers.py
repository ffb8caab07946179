"""Shared test helpers: tiny configurations and synthetic batches."""

from __future__ import annotations

import numpy as np

TINY = dict(
    image_size=32,
    patch_size=8,
    embed_dim=32,
    depth=2,
    num_heads=4,
    mlp_ratio=2.0,
    decoder_dim=16,
    decoder_num_heads=2,
    projector_depth=1,
    predictor_depth=2,
    num_masked_patches=10,
)


def random_batch(
    batch_size: int = 4,
    image_size: int = 32,
    patch_size: int = 8,
    num_masked: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A batch dict with exactly ``num_masked`` ones per mask row and plausible rel_pos."""
    rng = np.random.default_rng(seed)
    num_patches = (image_size // patch_size) ** 2
    mask = np.zeros((batch_size, num_patches), "float32")
    for row in mask:
        row[rng.choice(num_patches, num_masked, replace=False)] = 1.0
    b = batch_size
    rel_pos = np.stack(
        [
            rng.uniform(-0.3, 0.3, b),
            rng.uniform(-0.3, 0.3, b),
            rng.uniform(0.5, 1.5, b),
            rng.uniform(0.5, 1.5, b),
            rng.integers(0, 2, b),
            rng.uniform(0.0, 2.0, b),
        ],
        axis=1,
    )
    shape = (batch_size, image_size, image_size, 3)
    return {
        "view1": rng.normal(size=shape).astype("float32"),
        "view2": rng.normal(size=shape).astype("float32"),
        "rel_pos": rel_pos.astype("float32"),
        "mask": mask,
    }
