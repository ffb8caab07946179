"""Few-shot: penalty -> C derivation, centring / normalisation, balanced subsets."""

from __future__ import annotations

import numpy as np
import pytest

from siameseim_tf.evaluation.fewshot import (
    balanced_subset,
    centre_and_normalize,
    fewshot_accuracy,
    penalty_to_c,
)


@pytest.mark.parametrize("n", [10, 137, 12811])
def test_penalty_divided_by_n_gives_c_one_over_penalty(n):
    assert penalty_to_c(0.1, n) == pytest.approx(10.0)
    assert penalty_to_c(0.1, n, divide_by_n=False) == pytest.approx(1.0 / (0.1 * n))


def test_sklearn_solution_minimises_the_cyanure_objective():
    """At sklearn's optimum with C = penalty_to_c, the gradient of
    (1/n) sum CE + (lambda/2)||W||^2, lambda = 0.1 / n, vanishes."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n, e, c = 60, 5, 3
    x = rng.normal(size=(n, e))
    y = rng.integers(0, c, size=n)
    y[:c] = np.arange(c)
    lam = 0.1 / n
    clf = LogisticRegression(
        C=penalty_to_c(0.1, n), fit_intercept=False, tol=1e-10, max_iter=10000
    ).fit(x, y)
    w = clf.coef_.T  # [E, C]
    logits = x @ w
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = x.T @ (p - np.eye(c)[y]) / n + lam * w  # [E, C]
    assert np.abs(grad).max() < 1e-6
    # A wrong C (e.g. 1 / lambda) is not at the optimum of the same objective.
    wrong = LogisticRegression(C=1 / lam, fit_intercept=False, max_iter=10000).fit(x, y)
    lw = x @ wrong.coef_.T
    pw = np.exp(lw - lw.max(axis=1, keepdims=True))
    pw /= pw.sum(axis=1, keepdims=True)
    assert np.abs(x.T @ (pw - np.eye(c)[y]) / n + lam * wrong.coef_.T).max() > 1e-4


def test_centre_with_training_mean_then_normalise():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 8)) + 3.0
    test = rng.normal(size=(20, 8)) + 5.0
    train_n, test_n = centre_and_normalize(train, test)
    np.testing.assert_allclose(np.linalg.norm(train_n, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(test_n, axis=1), 1.0, rtol=1e-5)
    mean = train.mean(axis=0)
    expected = (test - mean) / np.linalg.norm(test - mean, axis=1, keepdims=True)
    np.testing.assert_allclose(test_n, expected, rtol=1e-5, atol=1e-6)
    # Centred training features sum to ~0 before normalisation: direction check.
    centred = train - mean
    np.testing.assert_allclose(
        train_n, centred / np.linalg.norm(centred, axis=1, keepdims=True), rtol=1e-5, atol=1e-6
    )


def test_balanced_subset_counts_and_seed():
    labels = np.repeat(np.arange(10), [100, 200, 300, 100, 100, 100, 100, 100, 100, 50])
    subset = balanced_subset(labels, fraction=0.01, seed=3)
    counts = np.bincount(labels[subset], minlength=10)
    np.testing.assert_array_equal(counts, [1, 2, 3, 1, 1, 1, 1, 1, 1, 1])  # >= 1 per class
    np.testing.assert_array_equal(subset, balanced_subset(labels, 0.01, seed=3))
    assert not np.array_equal(subset, balanced_subset(labels, 0.01, seed=4))
    assert len(np.unique(subset)) == len(subset)


def test_fewshot_on_separable_clusters(separable_features):
    train_x, train_y, test_x, test_y = separable_features
    subset = balanced_subset(train_y, fraction=0.02, seed=0)  # 2 per class
    assert fewshot_accuracy(train_x[subset], train_y[subset], test_x, test_y) > 0.95
