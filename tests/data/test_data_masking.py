"""Block masking with a fixed count (method §2)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.data import (
    ViewConfig,
    array_source,
    block_mask,
    build_pretraining_dataset,
    make_example,
)
from siameseim_tf.data.masking import mask_from_seed, masks_from_seeds


def _neighbour_pairs(mask: np.ndarray) -> int:
    return int((mask[1:] & mask[:-1]).sum() + (mask[:, 1:] & mask[:, :-1]).sum())


@pytest.mark.parametrize(
    "grid, num_masked", [(14, 118), (14, 0), (14, 196), (14, 5), (7, 30), ((6, 9), 20), (2, 3)]
)
def test_exact_count(grid, num_masked):
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = block_mask(grid, num_masked, rng)
        gh, gw = (grid, grid) if isinstance(grid, int) else grid
        assert mask.shape == (gh * gw,) and mask.dtype == np.int32
        assert set(np.unique(mask)) <= {0, 1}
        assert mask.sum() == num_masked


def test_reproducible_and_varied():
    a = [block_mask(14, 118, np.random.default_rng(s)) for s in range(20)]
    b = [block_mask(14, 118, np.random.default_rng(s)) for s in range(20)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len({x.tobytes() for x in a}) == 20


def test_masks_are_blocks_not_salt_and_pepper():
    rng = np.random.default_rng(1)
    block = np.mean(
        [_neighbour_pairs(block_mask(14, 118, rng).reshape(14, 14)) for _ in range(100)]
    )
    rand = []
    for _ in range(100):
        m = np.zeros(196, np.int32)
        m[rng.choice(196, 118, replace=False)] = 1
        rand.append(_neighbour_pairs(m.reshape(14, 14)))
    assert block > np.mean(rand) + 20, (block, np.mean(rand))


def test_coverage_every_cell_reachable_centre_biased():
    # BEiT rectangles are placed uniformly among positions where they fit, so centre cells
    # are covered more often than corners (a property of the reference algorithm).
    rng = np.random.default_rng(2)
    freq = np.mean([block_mask(14, 118, rng) for _ in range(2000)], axis=0).reshape(14, 14)
    assert np.allclose(freq.mean(), 118 / 196)
    assert freq.min() > 0.02
    assert freq[5:9, 5:9].mean() > freq[[0, 0, -1, -1], [0, -1, 0, -1]].mean() + 0.3


def test_bad_count_raises():
    with pytest.raises(ValueError):
        block_mask(4, 17, np.random.default_rng(0))


def test_tf_wrapper_is_deterministic_per_seed():
    f = tf.function(lambda s: mask_from_seed(s, 14, 118))
    seeds = [tf.constant([9, k], tf.int64) for k in range(10)]
    a = [f(s).numpy() for s in seeds]
    b = [f(s).numpy() for s in seeds]
    assert all(x.sum() == 118 and x.shape == (196,) for x in a)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len({x.tobytes() for x in a}) == 10
    # negative int64 seeds (stateless_split output) work too
    assert f(tf.constant([-5, -(2**62)], tf.int64)).numpy().sum() == 118


def test_batched_masks_equal_per_element_masks():
    seeds = tf.constant([[9, k] for k in range(6)] + [[-3, -(2**62)]], tf.int64)
    batched = tf.function(lambda s: masks_from_seeds(s, 14, 118))(seeds).numpy()
    assert batched.shape == (7, 196) and batched.dtype == np.int32
    for seed, row in zip(seeds, batched):
        np.testing.assert_array_equal(row, mask_from_seed(seed, 14, 118).numpy())
    assert masks_from_seeds(tf.zeros([0, 2], tf.int64), 14, 118).shape == (0, 196)


def test_pipeline_masks_are_the_examples_masks():
    """The pipeline draws masks per batch; they are those of ``make_example`` per sample."""
    images = np.zeros((5, 20, 20, 3), np.uint8)
    config = ViewConfig(16, 4, 7, color=False)
    ds = build_pretraining_dataset(
        array_source(images),
        5,
        image_size=16,
        patch_size=4,
        num_masked=7,
        color=False,
        seed=3,
        shuffle=False,
        repeat=False,
    )
    masks = next(iter(ds))["mask"].numpy()
    for k, row in enumerate(masks):
        seed = tf.constant([3, k], tf.int64)
        np.testing.assert_array_equal(row, make_example(images[k], seed, config)["mask"].numpy())
