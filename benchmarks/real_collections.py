"""Real labelled image collections installable from the package registries, written as
``ROOT/train/CLASS/*.png`` and ``ROOT/test/CLASS/*.png`` folders (the layout
``siameseim pretrain --data ROOT`` and ``siameseim evaluate --data ROOT`` read).

- ``fashion-mnist``: Debian's dataset-fashion-mnist (60k / 10k, 28 px, grey), read from
  ``/usr/share/datasets/fashion-mnist`` (the CLI reads it directly too).
- ``fashion-mnist-10k``: the first 10 000 training and all 10 000 test images of
  Debian's Fashion-MNIST, as a folder (a user-sized collection).
- ``digits``: scikit-learn's bundled copy of the UCI optical handwritten digits
  (1797 images of 8x8 px, 17 grey levels, 10 classes), split 80/20 per class with a
  fixed seed; pixels scaled 0..16 -> 0..255.

Command:
    python benchmarks/real_collections.py digits /tmp/digits
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def write_folder(root: str, images: np.ndarray, labels: np.ndarray, split: str) -> int:
    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, split, f"class_{int(label)}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, f"{index:05d}.png"))
    return len(images)


def digits(root: str, seed: int = 0) -> dict:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.round(data.images * 255.0 / 16.0).astype(np.uint8)  # [1797, 8, 8]
    labels = data.target
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test[rng.choice(members, int(round(0.2 * len(members))), replace=False)] = True
    return {
        "train": write_folder(root, images[~test], labels[~test], "train"),
        "test": write_folder(root, images[test], labels[test], "test"),
    }


def fashion_10k(root: str) -> dict:
    from siameseim_tf.data import load_labelled_split

    train_x, train_y = load_labelled_split(None, "train")
    test_x, test_y = load_labelled_split(None, "test")
    return {
        "train": write_folder(root, train_x[:10000, ..., 0], train_y[:10000], "train"),
        "test": write_folder(root, test_x[..., 0], test_y, "test"),
    }


COLLECTIONS = {"digits": digits, "fashion-mnist-10k": fashion_10k}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(COLLECTIONS))
    parser.add_argument("root")
    args = parser.parse_args(argv)
    counts = COLLECTIONS[args.name](args.root)
    print(f"{args.name}: {counts['train']} train / {counts['test']} test images in {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
