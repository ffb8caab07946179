"""Few-shot (1 % labels) protocol: logistic regression on centred, L2-normalised CLS features.

method §7: multinomial logistic regression, L2 penalty 0.1 divided by the number of samples,
no intercept (the MSN / SiameseIM recipe, solved there with cyanure).

Penalty -> scikit-learn ``C``. Cyanure minimises the *mean* loss plus (lambda / 2)||W||^2:

    (1/n) sum_i l_i(W) + (lambda / 2) ||W||^2,    lambda = penalty / n.

scikit-learn's ``LogisticRegression`` minimises (1/2)||W||^2 + C sum_i l_i(W). Multiplying
the cyanure objective by 1 / lambda (which does not move the minimiser) gives
(1 / (n lambda)) sum_i l_i + (1/2)||W||^2, hence

    C = 1 / (n * lambda) = 1 / penalty          (with lambda = penalty / n),

i.e. C = 10 for penalty 0.1, independent of n. :func:`penalty_to_c` implements the general
formula so that ``divide_by_n=False`` (lambda = penalty) is also available.
"""

from __future__ import annotations

import numpy as np

from siameseim_tf.evaluation.knn import l2_normalize


def penalty_to_c(penalty: float, num_samples: int, divide_by_n: bool = True) -> float:
    """scikit-learn ``C`` equivalent to cyanure's L2 ``lambda`` (see the module docstring).

    Args:
        penalty: method §7's L2 penalty (0.1).
        num_samples: n, the number of training samples.
        divide_by_n: lambda = penalty / n (method §7) if True, else lambda = penalty.
    """
    lam = penalty / num_samples if divide_by_n else penalty
    return 1.0 / (num_samples * lam)


def centre_and_normalize(
    train_features: np.ndarray, test_features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the *training* mean from both sets, then L2-normalise rows: [N, E], [M, E]."""
    mean = np.asarray(train_features, np.float64).mean(axis=0, keepdims=True)  # [1, E]
    return (
        l2_normalize(np.asarray(train_features, np.float64) - mean),
        l2_normalize(np.asarray(test_features, np.float64) - mean),
    )


def balanced_subset(labels: np.ndarray, fraction: float = 0.01, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced label subset: ``max(1, round(fraction * n_c))`` per class.

    Deterministic for a seed; indices are sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = max(1, int(round(fraction * len(members))))
        picked.append(rng.choice(members, size=min(count, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def fewshot_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    penalty: float = 0.1,
    max_iter: int = 1000,
) -> float:
    """Top-1 accuracy of the method §7 few-shot classifier trained on the given (small) set.

    Args:
        train_features: [n, E] CLS features of the labelled subset.
        train_labels: [n] labels.
        test_features: [M, E]; test_labels: [M].
        penalty: L2 penalty, divided by n (method §7).
        max_iter: L-BFGS iterations.
    """
    from sklearn.linear_model import LogisticRegression

    train_x, test_x = centre_and_normalize(train_features, test_features)
    classifier = LogisticRegression(
        C=penalty_to_c(penalty, len(train_x)),
        fit_intercept=False,
        solver="lbfgs",
        max_iter=max_iter,
    )  # multinomial (softmax) for > 2 classes with lbfgs
    classifier.fit(train_x, np.asarray(train_labels))
    return float(np.mean(classifier.predict(test_x) == np.asarray(test_labels)))
