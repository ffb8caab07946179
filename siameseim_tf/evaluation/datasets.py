"""Minimal labelled-image loaders for evaluation: IDX (MNIST / Fashion-MNIST) and folders.

TODO(merge): fold into the generic data sources of ``siameseim_tf.data`` once they exist.

Layouts understood by :func:`load_labelled`:
- an IDX directory with ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` (split test = t10k);
- an image folder ``root/<split>/<class>/*.png|jpg|...`` with split ``train`` and
  ``val`` or ``test``;
- an image folder ``root/<class>/*`` without splits: a deterministic 80 / 20 split per
  class (every 5th file, sorted by name, is test).
Class indices follow the sorted class-folder names.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_IDX_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 numpy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(root: str, name: str) -> str | None:
    for candidate in (name, f"{name}.gz"):
        if os.path.exists(os.path.join(root, candidate)):
            return os.path.join(root, candidate)
    return None


def _class_files(folder: str) -> list[tuple[str, int]]:
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    return [
        (os.path.join(folder, cls, name), index)
        for index, cls in enumerate(classes)
        for name in sorted(os.listdir(os.path.join(folder, cls)))
        if name.lower().endswith(IMAGE_EXTENSIONS)
    ]


def _load_images(files: list[str], square_size: int | None) -> np.ndarray:
    """Reads RGB images; if sizes differ, resizes (shorter side, bicubic) + centre-crops to
    ``square_size`` (required then) so that they stack into [N, s, s, 3]."""
    from PIL import Image

    images = []
    for path in files:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    if len({image.size for image in images}) > 1:
        if square_size is None:
            raise ValueError("images of different sizes need square_size")
        images = [_resize_crop(image, square_size) for image in images]
    return np.stack([np.asarray(image, np.uint8) for image in images])  # [N, H, W, 3]


def _resize_crop(image, size: int):
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_labelled(
    path: str | None, split: str, square_size: int | None = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled images of one split: (uint8 [N, H, W, C] with C = 1 or 3, int64 [N]).

    Args:
        path: IDX directory or image folder; None = the Debian Fashion-MNIST directory.
        split: ``"train"`` or ``"test"`` (``"val"`` accepted as ``"test"``).
        square_size: for folders of mixed image sizes, every image is resized (shorter
            side) and centre-cropped to this square; pass the evaluation resize size
            ``int(S * 256 / 224)`` so that evaluation preprocessing does not resample again.

    Raises:
        FileNotFoundError: missing path or no recognisable layout.
        ValueError: unknown split.
    """
    split = {"val": "test"}.get(split, split)
    if split not in _IDX_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = path or DEFAULT_DATA_DIR
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data directory not found: {root}")

    prefix = _IDX_PREFIX[split]
    image_file = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    label_file = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if image_file and label_file:
        images, labels = read_idx(image_file), read_idx(label_file)
        return images[..., None], labels.astype(np.int64)  # [N, 28, 28, 1], [N]

    split_dirs = [
        os.path.join(root, name) for name in ((split,) if split == "train" else ("val", "test"))
    ]
    split_dir = next((d for d in split_dirs if os.path.isdir(d)), None)
    if split_dir is not None:
        entries = _class_files(split_dir)
    else:
        entries = _class_files(root)
        # Position of each file within its class (files are grouped by class, sorted).
        first: dict[int, int] = {}
        for i, (_, label) in enumerate(entries):
            first.setdefault(label, i)
        entries = [
            (f, label)
            for i, (f, label) in enumerate(entries)
            if ((i - first[label]) % 5 == 4) == (split == "test")
        ]
    if not entries:
        raise FileNotFoundError(f"no IDX files or class-subfolder images found in {root}")
    files, labels = zip(*entries)
    return _load_images(list(files), square_size), np.asarray(labels, np.int64)
