"""Weighted k-NN classifier on frozen features (DINO / SiameseIM practice).

Cosine similarity on L2-normalised features; the k nearest training samples vote for their
class with weight exp(similarity / T); the prediction is the class with the largest vote.
"""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm: [N, E] -> [N, E] (float32)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def knn_predict(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Class predictions of a temperature-weighted cosine k-NN.

    Args:
        train_features: [N, E] bank features.
        train_labels: [N] integer labels in [0, num_classes).
        test_features: [M, E] query features.
        k: neighbours (clipped to N).
        temperature: T in the vote weight exp(sim / T).
        num_classes: C; default ``max(train_labels) + 1``.
        batch_size: queries per similarity matrix ([batch, N] floats in memory).

    Returns:
        int64 [M] predicted labels (ties go to the smaller class index).
    """
    bank = l2_normalize(train_features)  # [N, E]
    queries = l2_normalize(test_features)  # [M, E]
    labels = np.asarray(train_labels, np.int64)
    num_classes = int(num_classes or labels.max() + 1)
    k = min(int(k), len(bank))
    predictions = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), batch_size):
        sim = queries[start : start + batch_size] @ bank.T  # [b, N]
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # [b, k] indices (unordered)
        top_sim = np.take_along_axis(sim, top, axis=1)  # [b, k]
        # Subtracting 1/T (sim <= 1) keeps exp finite; a common factor does not change argmax.
        weights = np.exp((top_sim.astype(np.float64) - 1.0) / temperature)  # [b, k]
        votes = np.zeros((len(sim), num_classes))  # [b, C]
        np.add.at(votes, (np.arange(len(sim))[:, None], labels[top]), weights)
        predictions[start : start + len(sim)] = votes.argmax(axis=1)
    return predictions


def knn_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of :func:`knn_predict` on labelled queries."""
    num_classes = int(max(np.max(train_labels), np.max(test_labels)) + 1)
    predictions = knn_predict(
        train_features, train_labels, test_features, k, temperature, num_classes, batch_size
    )
    return float(np.mean(predictions == np.asarray(test_labels)))
