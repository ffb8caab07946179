"""Collapse monitors: the statistics' properties and the callback's logs."""

import numpy as np
import pytest

from siameseim_tf.training.monitors import collapse_warning, effective_rank, feature_std


def test_feature_std_is_zero_when_collapsed_and_near_one_when_spread():
    rng = np.random.default_rng(0)
    same = np.tile(rng.normal(size=(1, 64)), (500, 1))
    assert feature_std(same) == pytest.approx(0.0, abs=1e-9)
    spread = rng.normal(size=(20000, 64))  # isotropic: every dim of the unit vector ~ 1/sqrt(E)
    assert feature_std(spread) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_effective_rank_of_equal_singular_values_is_their_count(rank):
    rng = np.random.default_rng(rank)
    q, _ = np.linalg.qr(rng.normal(size=(200, rank)))  # orthonormal columns
    basis, _ = np.linalg.qr(rng.normal(size=(32, rank)))
    x = q @ basis.T  # singular values all 1 (after centring: nearly)
    x -= x.mean(axis=0)
    assert effective_rank(x) == pytest.approx(rank, rel=0.05)


def test_effective_rank_is_zero_for_constant_features():
    assert effective_rank(np.ones((10, 4))) == 0.0


def test_collapse_warning_thresholds():
    assert collapse_warning(0.01, 5.0, 6.0) and "collapsed" in collapse_warning(0.01, 5.0, 6.0)
    assert "partial" in collapse_warning(0.5, 2.9, 6.0)
    assert collapse_warning(0.5, 4.0, 6.0) is None


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_monitor_logs_reach_csv(tmp_path):
    from siameseim_tf.data import array_source
    from siameseim_tf.training.pretrain import pretrain
    from tests.helpers import TINY

    images = np.random.default_rng(0).integers(0, 255, (40, 36, 36, 3), dtype=np.uint8)
    labels = np.arange(40) % 4
    pretrain(
        array_source(images),
        tmp_path / "run",
        model_args=dict(TINY),
        total_steps=3,
        global_batch_size=16,
        verbose=0,
        monitor_data=(images, labels),
    )
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    for key in ("feature_std", "effective_rank", "knn_top1", "loss"):
        assert key in header, header
