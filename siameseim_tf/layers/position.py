"""Fixed 2-D sin-cos and relative position embeddings (method §3 and §4).

Pure functions: the absolute table is numpy (a constant of the graph, also at export), the
relative one uses keras ops because it depends on each sample's ``rel_pos``.
"""

from __future__ import annotations

import numpy as np
from keras import ops

# Column order of the [B, 6] relative-position tensor (method §1).
REL_POS_COLUMNS = ("delta_i", "delta_j", "delta_h", "delta_w", "relative_flip", "flip_delta_j")


def _frequencies(dim: int) -> np.ndarray:
    """omega_k = 1 / 10000^(k / (dim/4)), k = 0 .. dim/4 - 1 (method §4)."""
    if dim % 4:
        raise ValueError(f"embedding dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    return 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)


def sincos_2d_embedding(grid: int, dim: int, cls_token: bool = False) -> np.ndarray:
    """Fixed 2-D sin-cos embedding of a ``grid x grid`` token grid.

    Layout per cell (r, c): concat[sin(r w), cos(r w), sin(c w), cos(c w)] (method §4).

    Args:
        grid: cells per side G.
        dim: embedding width, a multiple of 4.
        cls_token: prepend a row of zeros for the CLS slot.

    Returns:
        float32 array [G*G (+1), dim], cells in row-major order.
    """
    omega = _frequencies(dim)  # [dim/4]
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    r = rows.reshape(-1, 1) * omega  # [N, dim/4]
    c = cols.reshape(-1, 1) * omega
    table = np.concatenate([np.sin(r), np.cos(r), np.sin(c), np.cos(c)], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return table.astype(np.float32)


def relative_cell_coordinates(rel_pos, grid: int):
    """Centres of view 2's cells in view 1's grid units (method §4).

    Args:
        rel_pos: [B, 6] (delta_i, delta_j, delta_h, delta_w, relative_flip, flip_delta_j).
        grid: cells per side G.

    Returns:
        (h, w): each [B, G*G], row-major over view 2's cells.
    """
    rel_pos = ops.cast(rel_pos, "float32")
    delta_i, delta_j, delta_h, delta_w, flip, flip_delta_j = [
        rel_pos[:, k : k + 1] for k in range(6)
    ]  # each [B, 1]
    centres = np.arange(grid, dtype=np.float32) + 0.5
    r_centre = np.repeat(centres, grid)[None, :]  # [1, N]
    c_centre = np.tile(centres, grid)[None, :]  # [1, N]
    h = delta_h * r_centre + delta_i * grid - 0.5  # [B, N]
    w_same = delta_w * c_centre + delta_j * grid - 0.5
    w_flipped = -delta_w * c_centre + flip_delta_j * grid - 0.5
    w = ops.where(flip > 0.5, w_flipped, w_same)
    return h, w


def relative_position_embedding(rel_pos, grid: int, dim: int):
    """Relative embedding of all of view 2's cells in view 1's frame (method §4).

    Args:
        rel_pos: float [B, 6], columns as :data:`REL_POS_COLUMNS`.
        grid: cells per side G.
        dim: decoder width D; the output has 2*D values per cell.

    Returns:
        float32 [B, G*G, 2*D]: concat[sin(h w), cos(h w), sin(w w), cos(w w),
        sin(s_h w), cos(s_h w), sin(s_w w), cos(s_w w)], s = 10 ln(scale).
    """
    omega = _frequencies(dim).astype(np.float32)  # [D/4]
    rel_pos = ops.cast(rel_pos, "float32")
    h, w = relative_cell_coordinates(rel_pos, grid)  # [B, N]
    scale_h = 10.0 * ops.log(rel_pos[:, 2:3])  # [B, 1]
    scale_w = 10.0 * ops.log(rel_pos[:, 3:4])
    num_cells = grid * grid
    scale_h = ops.repeat(scale_h, num_cells, axis=1)  # [B, N]
    scale_w = ops.repeat(scale_w, num_cells, axis=1)
    parts = []
    for value in (h, w, scale_h, scale_w):
        angle = value[..., None] * omega  # [B, N, D/4]
        parts += [ops.sin(angle), ops.cos(angle)]
    return ops.concatenate(parts, axis=-1)  # [B, N, 2D]
