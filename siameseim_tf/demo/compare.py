"""The demo's comparison: frozen-feature protocols for several feature extractors (a
pretrained encoder, its random-init self, raw pixels) through
:func:`siameseim_tf.evaluation.evaluate`, and the results table."""

from __future__ import annotations

from typing import Any

import numpy as np

PROTOCOLS = ("linear", "knn", "fewshot")
PROTOCOL_TITLES = {"linear": "linear probe", "knn": "k-NN (k 20)", "fewshot": "1 % few-shot"}


def evaluate_features(
    extractors: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    image_size: int,
    *,
    cache_dir: str | None = None,
    linear_options: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 1024,
) -> dict[str, dict[str, Any]]:
    """Runs linear probe, k-NN and few-shot for every extractor.

    Args:
        extractors: name -> ViTEncoder, or None for raw pixels.
        train, test: (uint8 images [N, H, W, C], int labels [N]).
        image_size: S (the encoder's; pixels are resized to it too).
        cache_dir: feature cache: each encoder's features are extracted once.
        linear_options: keyword arguments of the linear probe (epochs, batch_size).
        batch_size: images per encoder call in feature extraction.

    Returns:
        name -> {protocol: evaluate()'s metrics for that protocol, "seconds": {...}}.
    """
    from siameseim_tf.evaluation import evaluate

    results: dict[str, dict[str, Any]] = {}
    for name, extractor in extractors.items():
        results[name] = {"seconds": {}}
        for protocol in PROTOCOLS:
            print(f"[demo] {name}: {PROTOCOL_TITLES[protocol]}", flush=True)
            outcome = evaluate(
                extractor,
                protocol,
                train,
                test,
                image_size,
                batch_size=batch_size,
                cache_dir=cache_dir,
                progress=progress,
                seed=seed,
                linear_options=linear_options,
            )
            results[name][protocol] = outcome[protocol]
            results[name]["seconds"].update(outcome["seconds"])
    return results


def top1_table(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """name -> protocol -> top-1 in percent (rounded to 0.01)."""
    return {
        name: {p: round(100.0 * metrics[p]["top1"], 2) for p in PROTOCOLS if p in metrics}
        for name, metrics in results.items()
    }


def results_table(top1: dict[str, dict[str, float]]) -> str:
    """A markdown table: one row per extractor, one column per protocol (top-1 %)."""
    header = "| features | " + " | ".join(PROTOCOL_TITLES[p] for p in PROTOCOLS) + " |"
    lines = [header, "|---" * (len(PROTOCOLS) + 1) + "|"]
    for name, row in top1.items():
        cells = " | ".join(f"{row[p]:.1f}" if p in row else "-" for p in PROTOCOLS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
