"""The common shape of every data source, consumed by ``build_pretraining_dataset``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from siameseim_tf.data.bad_input import SkipReport


@dataclass
class ImageSource:
    """A sharded, undecoded stream of images.

    Attributes:
        name: path or description, used in messages.
        raw: ``raw(num_shards, index)`` -> tf.data.Dataset of raw elements of shard
            ``index`` (file paths, serialized records or already decoded arrays).
        decode: raw element -> uint8 [H, W, 3].
        key: raw element -> string scalar naming it in the skip report (path, record id).
        num_images: number of usable images (None when unknown, e.g. TFRecord).
        report: what was skipped.
        may_fail: True when ``decode`` can raise at run time (files, encoded records):
            the pipeline then guards it with ``ignore_errors`` and counts the failures.
        shuffle_window: raw elements shuffled together (a whole pass when the raw
            elements are small, e.g. file names).
        label: raw element -> int64 scalar class index (labelled sources only; a
            negative index is an error).
        class_names: the names of the class indices, when known.
    """

    name: str
    raw: Callable[[int, int], tf.data.Dataset]
    decode: Callable[..., tf.Tensor]
    key: Callable[..., tf.Tensor]
    num_images: int | None
    report: SkipReport = field(default_factory=SkipReport)
    may_fail: bool = False
    shuffle_window: int = 10_000
    label: Callable[..., tf.Tensor] | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None


def to_rgb(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, C] with C in {1, 3, 4} (or [H, W]) -> uint8 [H, W, 3] (alpha dropped)."""
    if image.shape.rank == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels in (3, 4):
        return image[..., :3]
    if channels is None:  # dynamic: decide in the graph
        c = tf.shape(image)[-1]
        return tf.cond(c == 1, lambda: tf.tile(image[..., :1], [1, 1, 3]), lambda: image[..., :3])
    raise ValueError(f"images need 1, 3 or 4 channels, got {channels}")


def array_source(
    images: np.ndarray,
    name: str = "arrays",
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
) -> ImageSource:
    """In-memory images: uint8 [N, H, W], [N, H, W, 1|3|4] -> RGB. Rows are sharded.

    ``labels``: optional int [N] class indices (a labelled source; class names default to
    the indices 0..max).
    """
    from siameseim_tf.data.bad_input import BadInputError

    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise BadInputError(f"{name}: images must be uint8, got {images.dtype}", name)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise BadInputError(f"{name}: expected [N, H, W, C], got shape {images.shape}", name)
    if len(images) == 0:
        raise BadInputError(f"{name}: no images", name)

    def raw(num_shards: int, index: int) -> tf.data.Dataset:
        ids = tf.data.Dataset.range(len(images)).shard(num_shards, index)
        table = tf.constant(images)  # [N, H, W, C], captured once
        return ids.map(lambda i: (i, tf.gather(table, i)))

    label = None
    if labels is not None:
        labels = np.asarray(labels, np.int64).reshape(-1)
        if labels.shape != (len(images),) or labels.min() < 0:
            raise BadInputError(
                f"{name}: need one non-negative label per image, got {labels.shape}", name
            )
        label_table = tf.constant(labels)
        class_names = class_names or tuple(str(k) for k in range(int(labels.max()) + 1))

        def label(i, image):
            return tf.gather(label_table, i)

    return ImageSource(
        name=name,
        raw=raw,
        decode=lambda i, image: to_rgb(image),
        key=lambda i, image: tf.strings.as_string(i),
        num_images=len(images),
        report=SkipReport(source=name),
        label=label,
        class_names=tuple(class_names) if labels is not None else None,
    )
