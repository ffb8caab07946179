"""Evaluation protocols of method §7: k-NN, linear probe, few-shot, fine-tune, and a raw-pixel
baseline. Names are imported lazily so that importing this package does not load
TensorFlow (the CLI imports it inside ``run``)."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "extract_features": "features",
    "pixel_features": "features",
    "preprocess_uint8": "features",
    "feature_cache_key": "features",
    "knn_predict": "knn",
    "knn_accuracy": "knn",
    "linear_probe": "linear",
    "fewshot_accuracy": "fewshot",
    "balanced_subset": "fewshot",
    "penalty_to_c": "fewshot",
    "centre_and_normalize": "fewshot",
    "fine_tune": "finetune",
    "layer_decay_factors": "finetune",
    "evaluate": "protocols",
    "PROTOCOLS": "protocols",
    "load_labelled": "datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
