"""One entry point for the CLI (``open_source``) and labelled loaders for evaluation."""

from __future__ import annotations

import glob
import os

import numpy as np

from siameseim_tf.data.bad_input import DEFAULT_MAX_PIXELS, BadInputError
from siameseim_tf.data.folder import pil_load_rgb, scan_folder
from siameseim_tf.data.idx import find_idx_files, idx_source, load_idx_split
from siameseim_tf.data.source import ImageSource, array_source


def _is_idx(path: str) -> bool:
    if os.path.isfile(path):
        return "-idx" in os.path.basename(path)
    return bool(glob.glob(os.path.join(path, "*-images-idx3-ubyte*")))


def _is_tfrecord(path: str) -> bool:
    if os.path.isdir(path):
        return bool(glob.glob(os.path.join(path, "*.tfrecord*")))
    return ".tfrecord" in os.path.basename(path) or "*" in path


def open_source(
    data: str | np.ndarray | None = None, split: str = "train", **folder_kwargs
) -> ImageSource:
    """Pick the source from what ``data`` is.

    None -> Fashion-MNIST IDX (Debian / Keras cache); ``"tfds:NAME"`` or
    ``"tfds:NAME:DATA_DIR"`` -> TFDS; an IDX file or a directory holding IDX files -> IDX;
    ``*.tfrecord*`` files, globs or directories of them -> TFRecord; any other directory ->
    image folder; a numpy array -> arrays.
    """
    from siameseim_tf.data.folder import image_folder_source
    from siameseim_tf.data.records import tfds_source, tfrecord_source

    if data is None:
        return idx_source(None, split)
    if isinstance(data, np.ndarray):
        return array_source(data)
    data = os.fspath(data)
    if data.startswith("tfds:"):
        name, _, data_dir = data[5:].partition(":")
        return tfds_source(name, data_dir or None, split)
    if not glob.glob(data):
        raise BadInputError(f"data path not found: {data}", data)
    if _is_idx(data):
        return idx_source(data, split)
    if _is_tfrecord(data):
        return tfrecord_source(data)
    return image_folder_source(data, **folder_kwargs)


SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}


def split_folder(data: str, split: str) -> str | None:
    """``data/train`` (split "train") or ``data/test`` / ``data/val`` (split "test") if it
    exists, else None."""
    for name in SPLIT_FOLDERS.get(split, (split,)):
        if os.path.isdir(os.path.join(data, name)):
            return os.path.join(data, name)
    return None


def open_labelled_source(data: str | None, split: str = "train", **folder_kwargs) -> ImageSource:
    """A labelled source of one split: IDX with labels (None = Fashion-MNIST),
    ``tfds:NAME[:DATA_DIR]`` (feature "label"), TFRecords with ``image/class/label``, or
    a class folder ``ROOT/CLASS/image``.

    For folders and TFRecord directories ``ROOT/train`` and ``ROOT/test`` (or ``val``) are
    used when present; a ROOT without them is the train split and has no test split.
    Raises BadInputError (no such split, no labels, nothing usable).
    """
    from siameseim_tf.data.folder import image_folder_source
    from siameseim_tf.data.records import tfds_source, tfrecord_source

    if data is None or (not str(data).startswith("tfds:") and _is_idx(os.fspath(data))):
        return idx_source(data, split, labelled=True)
    data = os.fspath(data)
    if data.startswith("tfds:"):
        name, _, data_dir = data[5:].partition(":")
        return tfds_source(name, data_dir or None, split, label_key="label")
    if not glob.glob(data):
        raise BadInputError(f"data path not found: {data}", data)
    root = split_folder(data, split) if os.path.isdir(data) else None
    if root is None and split != "train":
        raise BadInputError(
            f"{data} has no {split} split (expected {data}/{SPLIT_FOLDERS[split][0]}/)", data
        )
    root = root or data
    if _is_tfrecord(root):
        return tfrecord_source(root, labelled=True)
    return image_folder_source(root, labelled=True, **folder_kwargs)


def load_folder_split(
    root: str, image_size: int = 224, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labelled image folder ``root/CLASS/**/image`` -> (uint8 [N, S, S, 3], int64 [N], classes).

    Each image is resized (bicubic) so that its shorter side is ``image_size`` and centre
    cropped to ``image_size`` x ``image_size``. Bad files are skipped (see the report that
    ``scan_folder`` logs). Labels are sorted sub-folder indices.
    """
    from PIL import Image

    paths, _, report = scan_folder(root, max_pixels=max_pixels)
    rels = [os.path.relpath(p, root) for p in paths]
    classes = sorted({r.split(os.sep)[0] for r in rels if os.sep in r})
    if not classes:
        raise BadInputError(f"{root}: no class sub-folder holds an image", root, report)
    index = {c: k for k, c in enumerate(classes)}
    images, labels = [], []
    for path, rel in zip(paths, rels):
        if os.sep not in rel:
            continue  # files at the top level have no class
        image = Image.fromarray(pil_load_rgb(path))
        scale = image_size / min(image.size)
        w, h = (
            max(image_size, round(image.width * scale)),
            max(image_size, round(image.height * scale)),
        )
        image = image.resize((w, h), Image.BICUBIC)
        left, top = (w - image_size) // 2, (h - image_size) // 2
        images.append(np.asarray(image.crop((left, top, left + image_size, top + image_size))))
        labels.append(index[rel.split(os.sep)[0]])
    return np.stack(images), np.asarray(labels, np.int64), classes


def load_labelled_split(
    path: str | None = None, split: str = "train", image_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images + labels for evaluation from IDX (None = Fashion-MNIST) or a class folder.

    IDX -> (uint8 [N, H, W, 1], int64 [N]); a folder ``path/{split}/CLASS/...`` (or
    ``path/CLASS/...`` if it has no ``split`` sub-folder) -> (uint8 [N, S, S, 3], int64 [N]).
    """
    if path is None or _is_idx(path):
        images, labels = load_idx_split(path, split)
        if labels is None:
            raise BadInputError(f"no labels file next to {find_idx_files(path, split)[0]}", path)
        return images, labels
    root = os.path.join(path, split) if os.path.isdir(os.path.join(path, split)) else path
    images, labels, _ = load_folder_split(root, image_size or 224)
    return images, labels
