"""Evaluation preprocessing and frozen-feature extraction with an on-disk cache.

Preprocessing is the one shared definition of ``siameseim_tf.serving.preprocessing`` (also
used by the SavedModel signatures and the ONNX server, so evaluation and serving cannot
drift apart): shorter side to ``round(S * 256 / 224)``, centre crop S x S, ImageNet
normalisation (method §7). Grayscale inputs are repeated to three channels first.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

# Re-exported: evaluation's preprocessing constants are the serving ones.
from siameseim_tf.serving.preprocessing import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    resize_size,
)

# Bump when preprocessing or the cache layout changes: old cache entries become misses.
CACHE_VERSION = "features-v2"
# Config keys that do not change inference outputs (excluded from the cache key).
_NON_ARCH_KEYS = ("name", "trainable", "dtype", "drop_path_rate")


def preprocess_uint8(images: np.ndarray, image_size: int):
    """uint8 [B, H, W, C] (C = 1 or 3) -> float32 tf.Tensor [B, S, S, 3], ImageNet-normalised.

    Grayscale is repeated to RGB, then the shared serving preprocessing applies
    (``siameseim_tf.serving.preprocessing_tf.preprocess_uint8``).
    """
    import tensorflow as tf

    from siameseim_tf.serving.preprocessing_tf import preprocess_uint8 as shared_preprocess

    x = tf.convert_to_tensor(images)
    if x.shape.rank == 3:  # [B, H, W] -> [B, H, W, 1]
        x = x[..., None]
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)  # grayscale -> RGB
    if x.shape[-1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got shape {tuple(x.shape)}")
    return shared_preprocess(x, image_size)


def iterate_batches(num: int, batch_size: int, progress: bool, desc: str) -> Iterator[slice]:
    """Slices [start, stop) over ``num`` items, with an optional tqdm bar."""
    starts = range(0, num, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    for start in starts:
        yield slice(start, min(start + batch_size, num))


def weights_digest(encoder: Any) -> str:
    """sha256 over the encoder's architecture config and weights (paths without the model
    name, shapes, dtypes, values): equal for two loads of one checkpoint."""
    digest = hashlib.sha256()
    if hasattr(encoder, "get_config"):
        config = {k: v for k, v in encoder.get_config().items() if k not in _NON_ARCH_KEYS}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for variable in encoder.weights:
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        path = getattr(variable, "path", variable.name).split("/", 1)[-1]  # drop model name
        digest.update(f"{path}|{value.shape}|{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def images_digest(images: np.ndarray) -> str:
    """sha256 over an image array's shape, dtype and bytes."""
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def feature_cache_key(encoder: Any, images: np.ndarray, image_size: int) -> str:
    """Cache key: hash of encoder weights + image set + image size (+ CACHE_VERSION)."""
    parts = [CACHE_VERSION, weights_digest(encoder), images_digest(images), str(image_size)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def extract_features(
    encoder: Any,
    images_uint8: np.ndarray,
    image_size: int | None = None,
    batch_size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    cache_key: str | None = None,
    progress: bool = True,
    labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Frozen-encoder features of a uint8 image set.

    Args:
        encoder: a ViTEncoder (anything with ``weights`` and ``__call__(x, training=False)``
            returning a dict with ``cls`` and ``pooled``).
        images_uint8: [N, H, W, C] uint8, C = 1 or 3 (or [N, H, W]).
        image_size: S; default ``encoder.image_size``.
        batch_size: images per encoder call.
        cache_dir: if set, features are stored as ``<cache_dir>/<key>.npz`` and read back
            when present, so one checkpoint is never extracted twice on one image set.
        cache_key: explicit key (e.g. a checkpoint digest the caller already has); default
            :func:`feature_cache_key` (hash of weights + images + image size).
        progress: show a tqdm bar.
        labels: optional [N] labels, returned unchanged under ``"labels"``.

    Returns:
        ``{"cls": float32 [N, E], "pooled": float32 [N, E]}`` (+ ``"labels"`` [N]).
    """
    image_size = int(image_size or encoder.image_size)
    path = None
    if cache_dir is not None:
        key = cache_key or feature_cache_key(encoder, images_uint8, image_size)
        path = os.path.join(os.fspath(cache_dir), f"{key}.npz")
        if os.path.exists(path):
            with np.load(path) as cached:
                features = {name: cached[name] for name in ("cls", "pooled")}
            return _with_labels(features, labels)

    cls_parts, pooled_parts = [], []
    for batch in iterate_batches(len(images_uint8), batch_size, progress, "features"):
        out = encoder(preprocess_uint8(images_uint8[batch], image_size), training=False)
        cls_parts.append(np.asarray(out["cls"], np.float32))  # [b, E]
        pooled_parts.append(np.asarray(out["pooled"], np.float32))  # [b, E]
    features = {"cls": np.concatenate(cls_parts), "pooled": np.concatenate(pooled_parts)}

    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"  # atomic: write then rename
        np.savez(tmp, **features)
        os.replace(tmp, path)
    return _with_labels(features, labels)


def pixel_features(
    images_uint8: np.ndarray, image_size: int, batch_size: int = 1024
) -> dict[str, np.ndarray]:
    """Raw-pixel baseline features: preprocessed (resized, normalised) flattened pixels.

    Returns ``{"cls": [N, S*S*3], "pooled": [N, S*S*3]}`` (the same array under both keys
    so every protocol can run on it).
    """
    parts = [
        np.asarray(preprocess_uint8(images_uint8[batch], image_size)).reshape(
            batch.stop - batch.start, -1
        )
        for batch in iterate_batches(len(images_uint8), batch_size, False, "pixels")
    ]
    flat = np.concatenate(parts).astype(np.float32)  # [N, S*S*3]
    return {"cls": flat, "pooled": flat}


def _with_labels(features: dict, labels: np.ndarray | None) -> dict:
    if labels is not None:
        features["labels"] = np.asarray(labels)
    return features
