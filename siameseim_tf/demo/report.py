"""The demo's report picture (matplotlib, Agg): loss curve, accuracy bars, a 2-D projection
of test embeddings coloured by class, and a retrieval grid."""

from __future__ import annotations

from typing import Any

import numpy as np

FASHION_CLASSES = (
    "T-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)


def project_2d(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """[N, E] -> [N, 2] with PCA or t-SNE (scikit-learn; t-SNE after a 50-D PCA)."""
    from sklearn.decomposition import PCA

    x = np.asarray(features, np.float64)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x)
    if method != "tsne":
        raise ValueError(f"projection must be 'pca' or 'tsne', got {method!r}")
    from sklearn.manifold import TSNE

    x = PCA(min(50, x.shape[1], len(x)), random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def nearest_neighbours(queries: np.ndarray, bank: np.ndarray, count: int) -> np.ndarray:
    """Indices [Q, count] of the most cosine-similar bank rows for each query row."""
    from siameseim_tf.evaluation.knn import l2_normalize

    similarity = l2_normalize(queries) @ l2_normalize(bank).T  # [Q, N]
    return np.argsort(-similarity, axis=1)[:, :count]


def _gray(image: np.ndarray) -> np.ndarray:
    return image[..., 0] if image.shape[-1] == 1 else image


def _draw_loss(ax, losses: list[float]) -> None:
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.4, color="tab:blue", label="per step")
    if len(losses) >= 10:
        width = max(5, len(losses) // 30)
        smooth = np.convolve(losses, np.ones(width) / width, mode="valid")
        ax.plot(steps[width - 1 :], smooth, color="tab:blue", label=f"mean of {width}")
    ax.set(title="pretraining loss (UniGrad)", xlabel="step", ylabel="loss")
    ax.legend(fontsize=7)


def _draw_bars(ax, top1: dict[str, dict[str, float]]) -> None:
    from siameseim_tf.demo.compare import PROTOCOL_TITLES, PROTOCOLS

    names = list(top1)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        values = [top1[name].get(p, 0.0) for p in PROTOCOLS]
        x = np.arange(len(PROTOCOLS)) + (k - (len(names) - 1) / 2) * width
        bars = ax.bar(x, values, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=6)
    ax.set_xticks(np.arange(len(PROTOCOLS)), [PROTOCOL_TITLES[p] for p in PROTOCOLS])
    low = min(v for row in top1.values() for v in row.values())
    ax.set(title="test top-1 (%)", ylim=(max(0.0, low - 15), 100))
    ax.legend(fontsize=7, loc="upper center", ncol=len(names))


def _draw_projection(ax, points: np.ndarray, labels: np.ndarray, title: str, classes) -> None:
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=3, vmin=0, vmax=9)
    handles, _ = scatter.legend_elements(num=list(np.unique(labels)))
    names = [classes[c] if c < len(classes) else str(c) for c in np.unique(labels)]
    ax.legend(handles, names, fontsize=6, markerscale=0.7, loc="best", ncol=2)
    ax.set(title=title, xticks=[], yticks=[])


def _draw_retrieval(fig, cell, query_images, query_labels, bank_images, bank_labels, indices):
    rows, cols = indices.shape
    grid = cell.subgridspec(rows, cols + 1, wspace=0.05, hspace=0.05)
    for r in range(rows):
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(_gray(query_images[r]), cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set(color="tab:blue", linewidth=2)
        if r == 0:
            ax.set_title("query", fontsize=7)
        for c in range(cols):
            ax = fig.add_subplot(grid[r, c + 1])
            j = indices[r, c]
            ax.imshow(_gray(bank_images[j]), cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            colour = "tab:green" if bank_labels[j] == query_labels[r] else "tab:red"
            for side in ax.spines.values():
                side.set(color=colour, linewidth=1.5)
            if r == 0 and c == cols // 2:
                ax.set_title("nearest training images (green: same class)", fontsize=7)


def draw_report(
    path: str,
    losses: list[float],
    top1: dict[str, dict[str, float]],
    embedding: dict[str, Any],
    retrieval: dict[str, Any],
    classes=FASHION_CLASSES,
) -> str:
    """Writes the 2 x 2 report PNG to ``path`` and returns it.

    Args:
        losses: per-step pretraining losses.
        top1: extractor -> protocol -> top-1 %.
        embedding: {"points": [n, 2], "labels": [n], "title": str}.
        retrieval: {"query_images", "query_labels", "bank_images", "bank_labels",
            "indices": [Q, K]}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(14, 11))
    outer = fig.add_gridspec(2, 2, hspace=0.25, wspace=0.15)
    _draw_loss(fig.add_subplot(outer[0, 0]), losses)
    _draw_bars(fig.add_subplot(outer[0, 1]), top1)
    _draw_projection(
        fig.add_subplot(outer[1, 0]),
        embedding["points"],
        embedding["labels"],
        embedding["title"],
        classes,
    )
    _draw_retrieval(fig, outer[1, 1], **retrieval)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
