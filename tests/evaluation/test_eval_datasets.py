"""Minimal evaluation loaders: IDX files and class-subfolder image folders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from siameseim_tf.evaluation.datasets import load_labelled, read_idx


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "t10k-images-idx3-ubyte.gz")), images)
    x, y = load_labelled(str(tmp_path), "test")
    assert x.shape == (2, 3, 4, 1) and y.tolist() == [7, 1]


def test_folder_without_splits_is_split_per_class(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(10):
            size = (20, 30) if i % 2 else (40, 40)  # mixed sizes: resized + cropped
            Image.new("RGB", size, (value, value, value)).save(tmp_path / cls / f"{i:02d}.png")
    train_x, train_y = load_labelled(str(tmp_path), "train", square_size=16)
    test_x, test_y = load_labelled(str(tmp_path), "test", square_size=16)
    assert train_x.shape == (16, 16, 16, 3) and test_x.shape == (4, 16, 16, 3)
    assert np.bincount(train_y).tolist() == [8, 8] and np.bincount(test_y).tolist() == [2, 2]
    assert np.all(test_x[test_y == 0] == 10) and np.all(test_x[test_y == 1] == 200)


def test_folder_with_train_and_val(tmp_path):
    for split, count in (("train", 3), ("val", 2)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8), 50).save(tmp_path / split / cls / f"{i}.png")
    assert load_labelled(str(tmp_path), "train")[0].shape == (6, 8, 8, 3)
    assert load_labelled(str(tmp_path), "test")[1].tolist() == [0, 0, 1, 1]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_labelled(str(tmp_path / "missing"), "train")
    with pytest.raises(FileNotFoundError):
        load_labelled(str(tmp_path), "train")
    with pytest.raises(ValueError):
        load_labelled(str(tmp_path), "validation-2")
