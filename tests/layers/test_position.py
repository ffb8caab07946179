"""Position embeddings against method §4 and the authors' reference values."""

import json
from pathlib import Path

import numpy as np
import pytest

from siameseim_tf.layers import relative_position_embedding, sincos_2d_embedding

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "reference_values.json").read_text())


def test_sincos_matches_authors_reference():
    ref = REFERENCE["absolute_sincos_embedding"]
    table = sincos_2d_embedding(ref["grid"], ref["dim"], cls_token=ref["with_cls_row_first"])
    np.testing.assert_allclose(table, np.array(ref["embedding"]), atol=1e-5)


def test_sincos_layout_by_hand():
    # method §4: cell (r, c) -> [sin(r w), cos(r w), sin(c w), cos(c w)], w_k = 1e4^(-k/(D/4)).
    table = sincos_2d_embedding(grid=3, dim=8)  # D/4 = 2: w = (1, 1e-2)
    r, c = 2, 1
    expected = [np.sin(r), np.sin(r * 1e-2), np.cos(r), np.cos(r * 1e-2),
                np.sin(c), np.sin(c * 1e-2), np.cos(c), np.cos(c * 1e-2)]  # fmt: skip
    np.testing.assert_allclose(table[r * 3 + c], expected, atol=1e-6)


def test_relative_matches_authors_reference():
    ref = REFERENCE["relative_position_embedding"]
    out = relative_position_embedding(
        np.array(ref["rel_pos"], "float32"), ref["grid"], ref["decoder_dim"]
    )
    assert tuple(out.shape) == tuple(ref["shape"])
    np.testing.assert_allclose(np.asarray(out), np.array(ref["embedding"]), atol=1e-5)


def test_identity_relation_gives_absolute_embedding():
    # method §4: deltas 0, scales 1, no flip -> first D values = the D-dim sin-cos table.
    dim, grid = 16, 5
    identity = np.array([[0, 0, 1, 1, 0, 1]], "float32")
    out = np.asarray(relative_position_embedding(identity, grid, dim))[0]
    np.testing.assert_allclose(out[:, :dim], sincos_2d_embedding(grid, dim), atol=1e-6)
    # ln(1) = 0: scale parts are sin 0 = 0 and cos 0 = 1.
    quarter = dim // 4
    np.testing.assert_allclose(out[:, dim : dim + quarter], 0.0, atol=1e-7)
    np.testing.assert_allclose(out[:, dim + quarter : dim + 2 * quarter], 1.0, atol=1e-7)


def test_flipped_relation_mirrors_columns():
    # One view flipped, same crop covering the whole image: delta_w = 1, flip_delta_j = 1
    # -> w = -(c + 0.5) + G - 0.5 = G - 1 - c: column c lands on column G - 1 - c.
    dim, grid = 16, 4
    flipped = np.array([[0, 0, 1, 1, 1, 1]], "float32")
    out = np.asarray(relative_position_embedding(flipped, grid, dim))[0, :, :dim]
    table = sincos_2d_embedding(grid, dim)
    mirrored = table.reshape(grid, grid, dim)[:, ::-1].reshape(-1, dim)
    np.testing.assert_allclose(out[:, dim // 2 :], mirrored[:, dim // 2 :], atol=1e-5)
    np.testing.assert_allclose(out[:, : dim // 2], table[:, : dim // 2], atol=1e-6)


def test_scale_terms_by_hand():
    # s_h = 10 ln(delta_h); the 5th quarter is sin(s_h * w_k).
    dim, grid = 8, 2
    rel = np.array([[0.1, -0.2, 0.5, 2.0, 0, 0]], "float32")
    out = np.asarray(relative_position_embedding(rel, grid, dim))[0]
    s_h, s_w = 10 * np.log(0.5), 10 * np.log(2.0)
    np.testing.assert_allclose(out[0, 8:10], np.sin(s_h * np.array([1, 1e-2])), atol=1e-5)
    np.testing.assert_allclose(out[0, 12:14], np.sin(s_w * np.array([1, 1e-2])), atol=1e-5)
    # h of cell (1, 0): 0.5 * 1.5 + 0.1 * 2 - 0.5 = 0.45
    np.testing.assert_allclose(out[2, 0], np.sin(0.45), atol=1e-6)


def test_dim_must_be_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d_embedding(4, 6)
