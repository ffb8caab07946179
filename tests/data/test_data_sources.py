"""Every source ends in the same batch dict; labelled loaders for evaluation."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from siameseim_tf.data import (
    BadInputError,
    array_source,
    build_pretraining_dataset,
    idx_source,
    image_folder_source,
    load_idx_split,
    load_labelled_split,
    open_source,
    tfds_source,
    tfrecord_source,
    write_tfrecords,
)

FMNIST = "/usr/share/datasets/fashion-mnist"
SIZE, PATCH, MASKED = 32, 8, 9


def _batches(source, batch=4, n=2, **kw):
    kw = {"image_size": SIZE, "patch_size": PATCH, "num_masked": MASKED, "seed": 1} | kw
    ds = build_pretraining_dataset(source, batch, **kw)
    return list(ds.take(n))


def _check_batch(b, batch=4):
    assert set(b) == {"view1", "view2", "rel_pos", "mask"}
    assert b["view1"].shape == (batch, SIZE, SIZE, 3) and b["view1"].dtype == tf.float32
    assert b["view2"].shape == (batch, SIZE, SIZE, 3) and b["view2"].dtype == tf.float32
    assert b["rel_pos"].shape == (batch, 6) and b["rel_pos"].dtype == tf.float32
    assert b["mask"].shape == (batch, (SIZE // PATCH) ** 2)
    np.testing.assert_array_equal(b["mask"].numpy().sum(axis=1), MASKED)
    assert np.isfinite(b["view1"].numpy()).all() and np.isfinite(b["view2"].numpy()).all()


def _write_images(root, rng):
    """One image per format / mode, some in sub-folders (classes a and b)."""
    specs = [
        ("a/rgb.jpg", "RGB"),
        ("a/gray.jpeg", "L"),
        ("a/x/deep.PNG", "RGBA"),
        ("a/la.png", "LA"),
        ("b/pal.bmp", "P"),
        ("b/bw.bmp", "1"),
        ("b/anim.gif", "P"),
        ("b/pic.webp", "RGB"),
        ("b/cmyk.jpg", "CMYK"),
    ]
    for rel, mode in specs:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(path)
    # 16-bit PNG
    g16 = (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(g16).save(os.path.join(root, "b", "g16.png"))
    return len(specs) + 1


def test_folder_source_all_formats(tmp_path):
    n = _write_images(str(tmp_path), np.random.default_rng(0))
    source = image_folder_source(str(tmp_path))
    assert source.num_images == n and source.report.count == 0
    batches = _batches(source, batch=4, n=3)
    for b in batches:
        _check_batch(b)
    # one pass over the files decodes each exactly once, none fails
    ds = build_pretraining_dataset(
        source, 1, image_size=SIZE, patch_size=PATCH, num_masked=MASKED, repeat=False
    )
    assert sum(1 for _ in ds) == n
    assert source.report.runtime_failures == []


def test_pipeline_is_reproducible_and_varies(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10, 24, 30, 3), dtype=np.uint8)
    a = _batches(array_source(images), batch=5, n=3)
    b = _batches(array_source(images), batch=5, n=3)
    c = _batches(array_source(images), batch=5, n=3, seed=2)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())
    assert not np.array_equal(a[0]["mask"].numpy(), c[0]["mask"].numpy())
    masks = np.concatenate([x["mask"].numpy() for x in a])
    assert len({m.tobytes() for m in masks}) > 10  # masks differ between samples


def test_input_context_sharding():
    images = np.arange(8 * 16 * 16 * 3, dtype=np.uint8).reshape(8, 16, 16, 3)
    seen = []
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(2, pipeline, 2)
        ds = build_pretraining_dataset(
            array_source(images), 8, image_size=16, patch_size=8, num_masked=1,
            input_context=ctx, shuffle=False, repeat=False, color=False,
        )  # fmt: skip
        batches = list(ds)
        assert all(b["view1"].shape[0] == 4 for b in batches)  # per-replica batch
        seen.append(sum(b["view1"].shape[0] for b in batches))
        assert ds.options().experimental_distribute.auto_shard_policy == (
            tf.data.experimental.AutoShardPolicy.OFF
        )
    assert seen == [4, 4]
    default = build_pretraining_dataset(
        array_source(images), 8, image_size=16, patch_size=8, num_masked=2
    )
    assert default.options().experimental_distribute.auto_shard_policy == (
        tf.data.experimental.AutoShardPolicy.DATA
    )


def test_tfrecord_writer_and_source(tmp_path):
    n = _write_images(str(tmp_path / "imgs"), np.random.default_rng(2))
    files, report = write_tfrecords(str(tmp_path / "imgs"), str(tmp_path / "rec" / "train"), 2)
    assert len(files) == 2 and report.count == 0
    labels = []
    for record in tf.data.TFRecordDataset(files):
        ex = tf.train.Example.FromString(record.numpy())
        labels.append(ex.features.feature["image/class/label"].int64_list.value[0])
    assert sorted(labels) == sorted([0] * 4 + [1] * (n - 4))
    source = open_source(str(tmp_path / "rec"))
    for b in _batches(source, n=2):
        _check_batch(b)
    ds = build_pretraining_dataset(
        source, 1, image_size=SIZE, patch_size=PATCH, num_masked=MASKED, repeat=False
    )
    assert sum(1 for _ in ds) == n


def test_tfrecord_bad_records_are_dropped_and_counted(tmp_path):
    path = str(tmp_path / "mixed.tfrecord")
    good = tf.io.encode_png(np.full((20, 20, 3), 9, np.uint8)).numpy()
    with tf.io.TFRecordWriter(path) as writer:
        for data in (good, b"not an image", good, b"", good):
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    source = tfrecord_source(path)
    ds = build_pretraining_dataset(
        source, 1, image_size=SIZE, patch_size=PATCH, num_masked=MASKED, repeat=False
    )
    assert sum(1 for _ in ds) == 3
    assert source.report.count == 2
    assert sorted(source.report.runtime_failures) == [f"{path}#1", f"{path}#3"]
    with pytest.raises(BadInputError, match="no TFRecord"):
        tfrecord_source(str(tmp_path / "nothing-*.tfrecord"))


def _tiny_builder():
    import tensorflow_datasets as tfds

    class SiameseimTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        # No URLs to check; also keeps tfds from locating this file's package through
        # importlib_resources (not installed: etils imports it lazily).
        url_infos = None

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {"image": tfds.features.Image(shape=(None, None, 1)), "label": tf.int64}
                )
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(6)}

        def _generate_examples(self, n):
            rng = np.random.default_rng(0)
            for k in range(n):
                yield k, {"image": rng.integers(0, 256, (18 + k, 25, 1), np.uint8), "label": k}

    return SiameseimTinyImages


def test_tfds_source_with_a_local_builder(tmp_path):
    builder_cls = _tiny_builder()
    builder_cls(data_dir=str(tmp_path)).download_and_prepare()
    source = tfds_source("siameseim_tiny_images", data_dir=str(tmp_path))
    assert source.num_images == 6
    for b in _batches(source, n=2):
        _check_batch(b)
    assert open_source(f"tfds:siameseim_tiny_images:{tmp_path}").num_images == 6
    with pytest.raises(BadInputError, match="not prepared"):
        tfds_source("siameseim_tiny_images", data_dir=str(tmp_path / "elsewhere"))


@pytest.mark.skipif(not os.path.isdir(FMNIST), reason="apt-get install dataset-fashion-mnist")
def test_debian_fashion_mnist_idx():
    images, labels = load_idx_split(None, "test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    rgb, _ = load_idx_split(FMNIST, "train", rgb=True)
    assert rgb.shape == (60000, 28, 28, 3)
    source = idx_source(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"))
    assert source.num_images == 10000
    for b in _batches(source):
        _check_batch(b)


def test_idx_keras_cache_layout_and_raw_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    cache = tmp_path / ".keras" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    header_i = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in images.shape)
    header_l = b"\x00\x00\x08\x01" + (7).to_bytes(4, "big")
    with gzip.open(cache / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(header_i + images.tobytes())
    with gzip.open(cache / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(header_l + labels.tobytes())
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "train-images-idx3-ubyte").write_bytes(header_i + images.tobytes())
    # Keras-cache layout, found through the default search path (Debian dir hidden)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(
        "siameseim_tf.data.idx.FASHION_MNIST_DIRS",
        ("/nonexistent", "~/.keras/datasets/fashion-mnist"),
    )
    got, got_labels = load_labelled_split(None, "test")
    np.testing.assert_array_equal(got[..., 0], images)
    np.testing.assert_array_equal(got_labels, labels)
    got, none = load_idx_split(str(tmp_path / "raw"), "train")
    np.testing.assert_array_equal(got[..., 0], images) and none is None
    assert none is None
    with pytest.raises(BadInputError, match="t10k-images"):
        load_idx_split(str(tmp_path / "raw"), "test")
    (tmp_path / "raw" / "bad-images-idx3-ubyte").write_bytes(header_i + images.tobytes()[:100])
    with pytest.raises(BadInputError, match="truncated"):
        load_idx_split(str(tmp_path / "raw" / "bad-images-idx3-ubyte"))


def test_labelled_folder_loader(tmp_path):
    _write_images(str(tmp_path / "train"), np.random.default_rng(4))
    images, labels = load_labelled_split(str(tmp_path), "train", image_size=24)
    assert images.shape == (10, 24, 24, 3) and images.dtype == np.uint8
    assert list(np.bincount(labels)) == [4, 6]


def test_array_source_validation():
    with pytest.raises(BadInputError):
        array_source(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(BadInputError):
        array_source(np.zeros((2, 8, 8, 3), np.float32))
    for b in _batches(array_source(np.zeros((5, 9, 11), np.uint8)), n=1):
        _check_batch(b)
