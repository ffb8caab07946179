"""Image-folder source: recursive listing, pre-scan, TF decode with a PIL fallback."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from siameseim_tf.data.bad_input import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    IMAGE_EXTENSIONS,
    BadInputError,
    SkipReport,
    scan_image_file,
)
from siameseim_tf.data.source import ImageSource


def list_files(root: str) -> list[str]:
    """All non-hidden files under ``root`` (recursive, sorted, symlinked dirs not followed)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
    return found


def scan_folder(
    root: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    workers: int = 8,
) -> tuple[list[str], list[bool], SkipReport]:
    """Pre-scan a folder: (usable paths, needs-PIL flags, report of skipped files).

    Raises BadInputError when ``root`` is missing, empty, or has no usable image.
    """
    root = os.fspath(root)
    if os.path.isfile(root):
        raise BadInputError(
            f"{root} is a file; --data takes a folder of images, IDX files, *.tfrecord "
            "files or tfds:NAME",
            root,
        )
    if not os.path.isdir(root):
        raise BadInputError(f"image folder not found: {root}", root)
    report = SkipReport(source=root)
    files = list_files(root)
    candidates = []
    for path in files:
        if path.lower().endswith(IMAGE_EXTENSIONS):
            candidates.append(path)
        else:
            report.add(path, "not an image extension")
    with ThreadPoolExecutor(workers) as pool:
        verdicts = list(pool.map(lambda p: scan_image_file(p, max_pixels, min_side), candidates))
    paths, use_pil = [], []
    for path, (kind, reason) in zip(candidates, verdicts):
        if kind == "skip":
            report.add(path, reason)
        else:
            paths.append(path)
            use_pil.append(kind == "pil")
    if not paths:
        what = "is empty" if not files else f"has no usable image ({report.summary()})"
        raise BadInputError(f"image folder {root} {what}", root, report)
    return paths, use_pil, report


def pil_load_rgb(path: str | bytes) -> np.ndarray:
    """PIL decode to uint8 [H, W, 3]; 16/32-bit grayscale is scaled, not clipped."""
    from PIL import Image

    path = os.fsdecode(path)  # file names need not be UTF-8
    with Image.open(path) as im:
        im.seek(0)
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, np.float64)
            scale = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
            gray = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.repeat(gray[..., None], 3, axis=-1)
        return np.asarray(im.convert("RGB"), np.uint8)


def decode_image_bytes(data: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP/WebP bytes -> uint8 [H, W, 3] (first frame, alpha dropped)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _decode_path(path: tf.Tensor, use_pil: tf.Tensor) -> tf.Tensor:
    def with_pil():
        image = tf.numpy_function(pil_load_rgb, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    return tf.cond(use_pil, with_pil, lambda: decode_image_bytes(tf.io.read_file(path)))


def class_labels(root: str, paths: list[str], report: SkipReport) -> tuple[list, list, tuple]:
    """(paths inside a class sub-folder, their class indices, sorted class names).

    The class of ``root/CLASS/**/image`` is CLASS; files directly in ``root`` are skipped
    (reported). Raises BadInputError when no class sub-folder holds an image.
    """
    kept, labels, rels = [], [], [os.path.relpath(p, root) for p in paths]
    classes = sorted({r.split(os.sep)[0] for r in rels if os.sep in r})
    index = {c: k for k, c in enumerate(classes)}
    for path, rel in zip(paths, rels):
        if os.sep in rel:
            kept.append(path)
            labels.append(index[rel.split(os.sep)[0]])
        else:
            report.add(path, "not in a class sub-folder")
    if not classes:
        raise BadInputError(
            f"{root}: a labelled folder needs ROOT/CLASS/image files; no class sub-folder "
            "holds an image",
            root,
            report,
        )
    return kept, labels, tuple(classes)


def image_folder_source(
    root: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    labelled: bool = False,
) -> ImageSource:
    """Every JPEG/PNG/BMP/GIF/WebP under ``root`` (recursive).

    Unlabelled (default): sub-folders are ignored. ``labelled``: ``root/CLASS/**/image``,
    class indices in sorted class-name order (:func:`class_labels`).
    Grayscale, palette, 16-bit, CMYK and alpha images become RGB. Bad files are skipped
    and reported (``source.report``); see :mod:`siameseim_tf.data.bad_input`.
    """
    paths, use_pil, report = scan_folder(root, max_pixels, min_side)
    labels, class_names = [-1] * len(paths), None
    if labelled:
        pil_of = dict(zip(paths, use_pil))
        paths, labels, class_names = class_labels(os.fspath(root), paths, report)
        use_pil = [pil_of[p] for p in paths]

    # Bytes, not str: a file name that is not valid UTF-8 is still a path TF can open.
    encoded = [os.fsencode(p) for p in paths]

    def raw(num_shards: int, index: int) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((encoded, use_pil, np.asarray(labels, np.int64)))
        return ds.shard(num_shards, index)

    return ImageSource(
        name=os.fspath(root),
        raw=raw,
        decode=lambda path, use_pil, label: _decode_path(path, use_pil),
        key=lambda path, use_pil, label: path,
        num_images=len(paths),
        report=report,
        may_fail=True,
        shuffle_window=max(len(paths), 1),  # file names: the whole pass is one window
        label=(lambda path, use_pil, label: label) if labelled else None,
        class_names=class_names,
    )
