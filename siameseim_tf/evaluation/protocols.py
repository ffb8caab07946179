"""One entry point for all protocols: :func:`evaluate`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

PROTOCOLS = ("knn", "linear", "fewshot", "finetune")
# "all": the frozen-feature protocols; fine-tuning (100 epochs) runs only when named.
ALL_PROTOCOLS = ("knn", "linear", "fewshot")


def resolve_protocols(protocol: str) -> tuple[str, ...]:
    """``"all"`` -> knn, linear, fewshot; ``"knn,linear"`` -> a list (order kept, no
    repeats); ``"all,finetune"`` adds fine-tuning. ValueError for an unknown name."""
    names: list[str] = []
    for name in (part.strip() for part in str(protocol).split(",")):
        expanded = ALL_PROTOCOLS if name == "all" else (name,)
        for item in expanded:
            if item not in PROTOCOLS:
                raise ValueError(
                    f"unknown protocol {item!r}; choose from {', '.join(PROTOCOLS)}, all "
                    "(comma-separated lists allowed)"
                )
            if item not in names:
                names.append(item)
    return tuple(names)


def evaluate(
    encoder: Any | None,
    protocol: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    image_size: int | None = None,
    *,
    batch_size: int = 256,
    cache_dir: str | None = None,
    cache_key: str | None = None,
    progress: bool = True,
    knn_k: int = 20,
    knn_temperature: float = 0.07,
    fewshot_fraction: float = 0.01,
    fewshot_penalty: float = 0.1,
    seed: int = 0,
    linear_options: dict[str, Any] | None = None,
    finetune_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs one protocol or all of them and returns JSON-friendly metrics.

    Args:
        encoder: a ViTEncoder, or None for the raw-pixel baseline (resized, normalised,
            flattened pixels; fine-tuning is then skipped under ``"all"`` and an error alone).
        protocol: ``knn``, ``linear``, ``fewshot``, ``finetune`` or ``all``.
        train, test: (uint8 images [N, H, W, C], int labels [N]).
        image_size: S; default the encoder's (required for raw pixels: default 32).
        batch_size: feature-extraction batch.
        cache_dir, cache_key: feature cache (see :func:`extract_features`); the test-set
            key is derived from ``cache_key`` + ``"-test"`` when given.
        progress: progress bars / epoch lines.
        knn_k, knn_temperature: k-NN settings (20, 0.07).
        fewshot_fraction, fewshot_penalty: labelled fraction of the train split per class
            (1 %) and L2 penalty (0.1, divided by n).
        seed: few-shot subset / linear / fine-tune seed.
        linear_options: extra keyword arguments of :func:`linear_probe` (epochs, ...).
        finetune_options: extra keyword arguments of :func:`fine_tune`.

    Returns:
        ``{"features": "encoder"|"pixels", "image_size", "num_train", "num_test",
        <protocol>: {"top1": ..., ...}, "seconds": {...}, "skipped": [...]}``; top-1 values
        are fractions in [0, 1].
    """
    from siameseim_tf.evaluation.features import extract_features, pixel_features

    protocols = resolve_protocols(protocol)
    if encoder is None and protocols == ("finetune",):
        raise ValueError("fine-tuning needs an encoder (raw pixels have nothing to tune)")
    image_size = int(image_size or (encoder.image_size if encoder is not None else 32))
    (train_x, train_y), (test_x, test_y) = train, test
    train_y, test_y = np.asarray(train_y, np.int64), np.asarray(test_y, np.int64)
    results: dict[str, Any] = {
        "features": "encoder" if encoder is not None else "pixels",
        "image_size": image_size,
        "num_train": len(train_x),
        "num_test": len(test_x),
        "seconds": {},
        "skipped": [],
    }

    frozen = [p for p in protocols if p != "finetune"]
    if frozen:
        start = time.perf_counter()
        if encoder is None:
            train_f = pixel_features(train_x, image_size)
            test_f = pixel_features(test_x, image_size)
        else:
            train_f, test_f = (
                extract_features(
                    encoder,
                    images,
                    image_size,
                    batch_size,
                    cache_dir,
                    cache_key and f"{cache_key}{suffix}",
                    progress,
                )
                for images, suffix in ((train_x, ""), (test_x, "-test"))
            )
        results["seconds"]["features"] = time.perf_counter() - start

    for index, name in enumerate(protocols):
        start = time.perf_counter()
        if progress:
            print(f"[evaluate] {index + 1}/{len(protocols)}: {name}", flush=True)
        if name == "knn":
            results["knn"] = _knn(train_f, train_y, test_f, test_y, knn_k, knn_temperature)
        elif name == "linear":
            from siameseim_tf.evaluation.linear import linear_probe

            options = {"seed": seed, **(linear_options or {})}
            results["linear"] = linear_probe(
                train_f["pooled"], train_y, test_f["pooled"], test_y, **options
            )
            results["linear"].update(feature="pooled", **options)
        elif name == "fewshot":
            results["fewshot"] = _fewshot(
                train_f, train_y, test_f, test_y, fewshot_fraction, fewshot_penalty, seed
            )
        elif encoder is None:
            results["skipped"].append("finetune")
            continue
        else:
            from siameseim_tf.evaluation.finetune import fine_tune

            options = {"seed": seed, "progress": progress, **(finetune_options or {})}
            outcome = fine_tune(
                encoder, train_x, train_y, test_x, test_y, image_size=image_size, **options
            )
            results["finetune"] = outcome.metrics
        results["seconds"][name] = time.perf_counter() - start
    return results


def _knn(train_f, train_y, test_f, test_y, k, temperature) -> dict[str, Any]:
    from siameseim_tf.evaluation.knn import knn_accuracy

    # top1 uses the mean-pooled feature (SiameseIM's representation, as the linear probe);
    # DINO's k-NN uses the CLS token: reported as "cls".
    accuracy = {
        feature: knn_accuracy(train_f[feature], train_y, test_f[feature], test_y, k, temperature)
        for feature in ("pooled", "cls")
        if feature == "pooled" or train_f["cls"] is not train_f["pooled"]
    }
    accuracy.setdefault("cls", accuracy["pooled"])  # raw pixels: one feature
    return {
        "top1": accuracy["pooled"],
        **accuracy,
        "feature": "pooled",
        "k": k,
        "temperature": temperature,
    }


def _fewshot(train_f, train_y, test_f, test_y, fraction, penalty, seed) -> dict[str, Any]:
    from siameseim_tf.evaluation.fewshot import balanced_subset, fewshot_accuracy

    subset = balanced_subset(train_y, fraction, seed)
    top1 = fewshot_accuracy(train_f["cls"][subset], train_y[subset], test_f["cls"], test_y, penalty)
    return {
        "top1": top1,
        "feature": "cls",
        "num_labelled": int(len(subset)),
        "fraction": fraction,
        "penalty": penalty,
        "seed": seed,
    }
