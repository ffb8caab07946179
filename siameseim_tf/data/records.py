"""TFRecord and TFDS sources, and a writer converting an image folder to TFRecords.

TFRecord schema (one ``tf.train.Example`` per image):
    image/encoded      bytes   JPEG / PNG / GIF / BMP / WebP file bytes (required)
    image/class/label  int64   class index (optional; sorted sub-folder order, -1 = none)
    image/filename     bytes   path relative to the converted folder (optional)
"""

from __future__ import annotations

import glob
import io
import os

import tensorflow as tf

from siameseim_tf.data.bad_input import BadInputError, SkipReport
from siameseim_tf.data.folder import decode_image_bytes, pil_load_rgb, scan_folder
from siameseim_tf.data.source import ImageSource, to_rgb

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}


def _expand(pattern: str | list[str]) -> list[str]:
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = []
    for p in patterns:
        if os.path.isdir(p):
            p = os.path.join(p, "*.tfrecord*")
        files += sorted(glob.glob(p))
    return files


def tfrecord_source(pattern: str | list[str], labelled: bool = False) -> ImageSource:
    """TFRecord files (a glob, a list, or a directory of ``*.tfrecord*``) of the schema above.

    Files are sharded across input pipelines when there are enough of them, else records.
    Undecodable records are dropped at run time and counted in ``source.report``; with
    ``labelled``, so are records without ``image/class/label`` (or with -1).
    """
    files = _expand(pattern)
    name = pattern if isinstance(pattern, str) else ",".join(pattern)
    if not files:
        raise BadInputError(f"no TFRecord file matches {name}", name)
    empty = [f for f in files if os.path.getsize(f) == 0]
    report = SkipReport(source=name)
    for f in empty:
        report.add(f, "empty file")
    files = [f for f in files if f not in empty]
    if not files:
        raise BadInputError(f"every TFRecord file of {name} is empty", name, report)

    def raw(num_shards: int, index: int) -> tf.data.Dataset:
        by_file = len(files) >= num_shards
        ds = tf.data.Dataset.from_tensor_slices(files)
        if by_file:
            ds = ds.shard(num_shards, index)
        ds = ds.interleave(
            lambda f: tf.data.TFRecordDataset(f).enumerate().map(lambda k, r: (f, k, r)),
            cycle_length=4,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return ds if by_file else ds.shard(num_shards, index)

    def decode(filename, k, record):
        parsed = tf.io.parse_single_example(record, FEATURES)
        return decode_image_bytes(parsed["image/encoded"])

    def label(filename, k, record):
        return tf.io.parse_single_example(record, FEATURES)["image/class/label"]

    return ImageSource(
        name=name,
        raw=raw,
        decode=decode,
        key=lambda f, k, r: tf.strings.join([f, tf.strings.as_string(k)], "#"),
        num_images=None,
        report=report,
        may_fail=True,
        label=label if labelled else None,
        class_names=None,  # not stored in the records; the classifier counts max + 1
    )


def write_tfrecords(
    folder: str, output_prefix: str, num_shards: int = 1, **scan_kwargs
) -> tuple[list[str], SkipReport]:
    """Convert an image folder (pre-scanned like :func:`image_folder_source`) to TFRecords.

    Files TF decodes are stored as they are; the rest (e.g. 1-bit BMP) are re-encoded as
    PNG. Labels are the index of the first-level sub-folder in sorted order (-1 for files
    directly in ``folder``). Returns (written files ``{prefix}-00000-of-0000N.tfrecord``,
    skip report).
    """
    from PIL import Image

    paths, use_pil, report = scan_folder(folder, **scan_kwargs)
    rels = [os.path.relpath(p, folder) for p in paths]
    classes = sorted({r.split(os.sep)[0] for r in rels if os.sep in r})
    index = {c: k for k, c in enumerate(classes)}
    outputs = [f"{output_prefix}-{s:05d}-of-{num_shards:05d}.tfrecord" for s in range(num_shards)]
    os.makedirs(os.path.dirname(os.path.abspath(output_prefix)), exist_ok=True)
    writers = [tf.io.TFRecordWriter(o) for o in outputs]
    try:
        for n, (path, rel, pil) in enumerate(zip(paths, rels, use_pil)):
            if pil:
                buffer = io.BytesIO()
                Image.fromarray(pil_load_rgb(path)).save(buffer, format="PNG")
                data = buffer.getvalue()
            else:
                with open(path, "rb") as f:
                    data = f.read()
            label = index.get(rel.split(os.sep)[0], -1) if os.sep in rel else -1
            feature = {
                "image/encoded": _bytes(data),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "image/filename": _bytes(rel.encode()),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writers[n % num_shards].write(example.SerializeToString())
    finally:
        for w in writers:
            w.close()
    return outputs, report


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def tfds_source(
    name: str,
    data_dir: str | None = None,
    split: str = "train",
    image_key: str = "image",
    label_key: str | None = None,
) -> ImageSource:
    """A prepared TFDS dataset by name (``tfds.builder(name, data_dir=...)``); never downloads.

    Grayscale images become RGB, alpha is dropped. Examples are sharded across pipelines.
    ``label_key`` (e.g. "label", a ClassLabel feature) makes it a labelled source.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 - tfds raises DatasetNotFoundError & co.
        raise BadInputError(f"TFDS dataset {name!r}: {error}", name) from error
    if not builder.is_prepared():
        where = data_dir or "the default TFDS data_dir"
        raise BadInputError(f"TFDS dataset {name!r} is not prepared in {where}", name)
    if builder.info.splits[split].num_examples == 0:
        raise BadInputError(f"TFDS dataset {name!r} split {split!r} is empty", name)

    encoded = isinstance(builder.info.features[image_key], tfds.features.Image)

    def raw(num_shards: int, index: int) -> tf.data.Dataset:
        # Image features stay encoded until after sharding (each pipeline decodes its part).
        decoders = {image_key: tfds.decode.SkipDecoding()} if encoded else None
        ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        if label_key is None:
            return ds.map(lambda ex: ex[image_key]).enumerate().shard(num_shards, index)
        ds = ds.map(lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int64)))
        return ds.enumerate().map(lambda k, pair: (k, *pair)).shard(num_shards, index)

    class_names = None
    if label_key is not None:
        if label_key not in builder.info.features:
            raise BadInputError(f"TFDS dataset {name!r} has no feature {label_key!r}", name)
        class_names = tuple(getattr(builder.info.features[label_key], "names", None) or ())

    def decode(k, image, *label):
        return decode_image_bytes(image) if encoded else to_rgb(image)

    return ImageSource(
        name=f"tfds:{name}/{split}",
        raw=raw,
        decode=decode,
        key=lambda k, *rest: tf.strings.as_string(k),
        num_images=builder.info.splits[split].num_examples,
        report=SkipReport(source=f"tfds:{name}"),
        may_fail=encoded,
        label=(lambda k, image, label: label) if label_key is not None else None,
        class_names=class_names or None,
    )
