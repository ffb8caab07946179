"""IDX files (MNIST / Fashion-MNIST), plain or gzip, as shipped by Debian or cached by Keras.

Looked up, in order, when no path is given: ``/usr/share/datasets/fashion-mnist/`` (Debian
package ``dataset-fashion-mnist``) and ``~/.keras/datasets/fashion-mnist/`` (the layout
``keras.datasets.fashion_mnist.load_data`` leaves behind). Never downloads.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from siameseim_tf.data.bad_input import BadInputError
from siameseim_tf.data.source import ImageSource, array_source

FASHION_MNIST_DIRS = (
    "/usr/share/datasets/fashion-mnist",
    os.path.join("~", ".keras", "datasets", "fashion-mnist"),
)
_PREFIX = {"train": "train", "test": "t10k"}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Parse one IDX file (``.gz`` or raw) into an array of its declared type and shape."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise BadInputError(f"cannot read IDX file {path}: {error}", path) from error
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _DTYPES:
        raise BadInputError(f"{path} is not an IDX file (bad magic number)", path)
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    count = int(np.prod(dims)) if dims else 0
    offset = 4 + 4 * ndim
    if len(data) - offset < count * dtype.itemsize:
        raise BadInputError(f"IDX file {path} is truncated", path)
    return np.frombuffer(data, dtype, count, offset).reshape(dims)


def _existing(base: str) -> str | None:
    for candidate in (base, base + ".gz"):
        if os.path.isfile(candidate):
            return candidate
    return None


def find_idx_files(path: str | None = None, split: str = "train") -> tuple[str, str | None]:
    """(images file, labels file or None) for a directory, an images file, or the defaults."""
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if path is not None and os.path.isfile(path):
        labels = path.replace("images-idx3", "labels-idx1")
        return path, (labels if labels != path and os.path.isfile(labels) else None)
    dirs = [path] if path is not None else [os.path.expanduser(d) for d in FASHION_MNIST_DIRS]
    for directory in dirs:
        images = _existing(os.path.join(directory, f"{_PREFIX[split]}-images-idx3-ubyte"))
        if images:
            labels = _existing(os.path.join(directory, f"{_PREFIX[split]}-labels-idx1-ubyte"))
            return images, labels
    where = path if path is not None else " or ".join(FASHION_MNIST_DIRS)
    raise BadInputError(
        f"no {_PREFIX[split]}-images-idx3-ubyte[.gz] in {where} "
        "(Fashion-MNIST: 'apt-get install dataset-fashion-mnist')",
        path,
    )


def load_idx_split(
    path: str | None = None, split: str = "train", rgb: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images uint8 [N, H, W, 1] ([N, H, W, 3] if ``rgb``) and labels int64 [N] (or None).

    ``path``: a directory holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``,
    an images file, or None for Fashion-MNIST in its Debian / Keras-cache location.
    """
    images_path, labels_path = find_idx_files(path, split)
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise BadInputError(f"{images_path}: expected uint8 [N, H, W], got {images.shape}")
    if len(images) == 0:
        raise BadInputError(f"{images_path} holds no image", images_path)
    images = images[..., None] if images.ndim == 3 else images
    if rgb and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path).astype(np.int64)
        if labels.shape != (len(images),):
            raise BadInputError(f"{labels_path}: {labels.shape} labels for {len(images)} images")
    return images, labels


def idx_source(
    path: str | None = None, split: str = "train", labelled: bool = False
) -> ImageSource:
    """IDX images (grayscale 28 x 28 for Fashion-MNIST) as an RGB source; ``labelled``
    needs the labels file next to the images."""
    images, labels = load_idx_split(path, split)
    name = find_idx_files(path, split)[0]
    if labelled and labels is None:
        raise BadInputError(f"no labels file next to {name}", name)
    return array_source(images, name=name, labels=labels if labelled else None)
