"""k-NN: known answers on separable clusters and a hand-computed weighted vote."""

from __future__ import annotations

import numpy as np
import pytest

from siameseim_tf.evaluation.knn import knn_accuracy, knn_predict, l2_normalize

# Query (1, 0); bank with cosine similarities 1 (class 0), 0.6, 0.6 (class 1), -1 (class 0).
BANK = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]], np.float32)
BANK_LABELS = np.array([0, 1, 1, 0])
QUERY = np.array([[1.0, 0.0]], np.float32)


def test_separable_clusters_are_classified_perfectly(separable_features):
    train_x, train_y, test_x, test_y = separable_features
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=20, temperature=0.07) == 1.0


def test_hand_computed_weighted_vote():
    # k = 3: class 0 gets exp(1/T), class 1 gets 2 exp(0.6/T); class 0 wins iff
    # exp(0.4/T) > 2, i.e. T < 0.4 / ln 2 = 0.577. A plain majority vote would say class 1.
    assert knn_predict(BANK, BANK_LABELS, QUERY, k=3, temperature=0.07)[0] == 0
    assert knn_predict(BANK, BANK_LABELS, QUERY, k=3, temperature=0.5)[0] == 0
    assert knn_predict(BANK, BANK_LABELS, QUERY, k=3, temperature=0.65)[0] == 1
    # k = 4 at T = 1: class 0 gets e + 1/e = 3.086 < class 1's 2 e^0.6 = 3.644.
    assert knn_predict(BANK, BANK_LABELS, QUERY, k=4, temperature=1.0)[0] == 1
    # k = 1: the nearest neighbour only.
    assert knn_predict(BANK, BANK_LABELS, -QUERY, k=1)[0] == 0


def test_cosine_is_scale_invariant_and_k_is_clipped():
    scaled = BANK * np.array([[3.0], [0.1], [7.0], [2.0]], np.float32)
    for k in (1, 3, 50):  # 50 > bank size: clipped to 4
        np.testing.assert_array_equal(
            knn_predict(scaled, BANK_LABELS, QUERY * 9, k=k, temperature=0.5),
            knn_predict(BANK, BANK_LABELS, QUERY, k=k, temperature=0.5),
        )


def test_batching_does_not_change_predictions(separable_features):
    train_x, train_y, test_x, _ = separable_features
    noisy = test_x + np.random.default_rng(1).normal(size=test_x.shape).astype(np.float32) * 4
    full = knn_predict(train_x, train_y, noisy, batch_size=1024)
    np.testing.assert_array_equal(knn_predict(train_x, train_y, noisy, batch_size=7), full)


def test_l2_normalize_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    assert l2_normalize(x).dtype == np.float32


@pytest.mark.parametrize("temperature", [0.07, 0.01])
def test_extreme_similarities_stay_finite(temperature):
    pred = knn_predict(BANK * 1e6, BANK_LABELS, QUERY, k=4, temperature=temperature)
    assert pred[0] == 0
