"""A picture of what the model is fed: both crops, both views, the mask, and rel_pos at work."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from siameseim_tf.data.color import denormalize
from siameseim_tf.data.views import ViewConfig, example_mask, make_views

VIEW_COLORS = ("tab:blue", "tab:orange")
DOT_COLORS = ("red", "lime", "cyan", "magenta", "yellow", "white")


def map_view2_cells(rel_pos: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """method §1/§4: centres of view-2 cells (r, c) in view-1 grid units; ([G, G], [G, G])."""
    di, dj, dh, dw, flip, fdj = (float(v) for v in rel_pos)
    r, c = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    h = dh * (r + 0.5) + di * grid - 0.5
    w = (-dw * (c + 0.5) + fdj * grid - 0.5) if flip > 0.5 else (dw * (c + 0.5) + dj * grid - 0.5)
    return h, w


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    image = image[..., None] if image.ndim == 2 else image
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]


def _pick_cells(h, w, grid, count, rng):
    """Up to ``count`` view-2 cells whose centre lands inside view 1, spread at random."""
    inside = (h >= -0.5) & (h <= grid - 0.5) & (w >= -0.5) & (w <= grid - 0.5)
    cells = np.argwhere(inside)
    if len(cells) == 0:
        return cells
    return cells[rng.choice(len(cells), min(count, len(cells)), replace=False)]


def visualize_views(
    images: Sequence[np.ndarray] | np.ndarray,
    out_png: str,
    seed: int = 0,
    image_size: int = 224,
    patch_size: int = 16,
    num_masked: int = 118,
    color: bool = True,
    crop_min: float = 0.2,
    num_points: int = 4,
) -> str:
    """Draw a PNG grid: one row per image (uint8 [H, W, C], C in 1/3/4).

    Columns: the original with both crop boxes (view 1 blue, view 2 orange; dashed and
    marked "flipped" when that view is mirrored), view 1 with its masked patches greyed,
    view 2. Coloured dots: view-2 patch centres (in view 2) and the same points mapped into
    view 1 through ``rel_pos`` (method §4 formula); matching colours mark matching points.
    Sample k uses the seed (seed, k), i.e. exactly what the pipeline draws for element k.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    config = ViewConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_masked=num_masked,
        crop_min=crop_min,
        color=color,
    )
    grid, p = config.grid, patch_size
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for k, image in enumerate(images):
        image = _as_rgb(image)
        element_seed = tf.constant([seed, k], tf.int64)
        view1, view2, rel_pos, boxes = make_views(
            tf.constant(image), element_seed, color, image_size, crop_min
        )
        mask = example_mask(element_seed, config).numpy().reshape(grid, grid)
        v1 = np.clip(denormalize(view1).numpy(), 0, 1)
        v2 = np.clip(denormalize(view2).numpy(), 0, 1)
        masked = np.kron(mask, np.ones((p, p))).astype(bool)  # [S, S]
        v1[masked] = 0.25 * v1[masked] + 0.75 * 0.5  # grey out masked patches

        ax_o, ax_1, ax_2 = axes[k]
        ax_o.imshow(image)
        for (top, left, h, w, flipped), col, name in zip(boxes.numpy(), VIEW_COLORS, "12"):
            style = "--" if flipped else "-"
            ax_o.add_patch(
                Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec=col, lw=2, ls=style)
            )
            label = f"view {name}" + (" (flipped)" if flipped else "")
            ax_o.text(left, top, label, color=col, fontsize=7, va="bottom")
        ax_o.set_title(f"original {image.shape[1]}x{image.shape[0]}", fontsize=8)
        ax_1.imshow(v1)
        ax_1.set_title(f"view 1, {int(mask.sum())}/{grid * grid} masked", fontsize=8)
        ax_2.imshow(v2)
        ax_2.set_title(
            "view 2  rel_pos=" + ",".join(f"{v:.2f}" for v in rel_pos.numpy()), fontsize=7
        )
        h_map, w_map = map_view2_cells(rel_pos.numpy(), grid)
        for n, (r, c) in enumerate(_pick_cells(h_map, w_map, grid, num_points, rng)):
            dot = DOT_COLORS[n % len(DOT_COLORS)]
            ax_2.plot((c + 0.5) * p - 0.5, (r + 0.5) * p - 0.5, "o", color=dot, ms=6, mec="k")
            ax_1.plot(
                (w_map[r, c] + 0.5) * p - 0.5, (h_map[r, c] + 0.5) * p - 0.5, "o", color=dot,
                ms=6, mec="k",
            )  # fmt: skip
        for ax in axes[k]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png
