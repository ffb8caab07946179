"""``build_dataset`` (the one tf.data skeleton) and ``build_pretraining_dataset`` (SiameseIM).

Batch dict: view1, view2 float32 [B, S, S, 3] (ImageNet-normalised), rel_pos float32
[B, 6], mask int32 [B, N] with exactly ``num_masked`` ones per row.

Distribution (docs/data_pipeline.md): prefer explicit sharding with
``strategy.distribute_datasets_from_function`` (see :func:`distribute_pretraining_dataset`):
each input pipeline reads only its shard of the files / rows and batches the per-replica
size; auto-sharding is then switched OFF. Without an ``input_context`` the dataset batches
the global size and sets ``AutoShardPolicy.DATA`` so that
``strategy.experimental_distribute_dataset`` works under MultiWorkerMirroredStrategy
(every worker then decodes everything and keeps its part: correct but wasteful).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from siameseim_tf.data.source import ImageSource
from siameseim_tf.data.views import ViewConfig, finish_batch, make_example

AUTOTUNE = tf.data.AUTOTUNE


# Attempts are noted per group of this many raw elements (one Python call per group
# instead of per image; a Python call costs ~0.1 ms of CPU, 3 % of an image's budget).
ATTEMPT_GROUP = 64


def _note_attempts(ds: tf.data.Dataset, source: ImageSource) -> tf.data.Dataset:
    """Raw elements, unchanged, with their keys recorded in ``source.report`` as attempted."""
    report = source.report

    def note(*raw):
        noted = tf.numpy_function(report.note_attempts, [source.key(*raw)], tf.bool)
        with tf.control_dependencies([noted]):
            return tuple(tf.identity(x) for x in raw)

    return ds.batch(ATTEMPT_GROUP).map(note).unbatch()


def _decode_with_key(source: ImageSource):
    """raw -> (key, image): the key rides along to be noted as decoded once per batch."""

    def decode(*raw):
        return source.key(*raw), source.decode(*raw)  # may raise -> dropped

    return decode


def _note_decoded(ds: tf.data.Dataset, source: ImageSource, batch_size: int, drop: bool):
    """Batches carrying "_key": note their keys as decoded (one Python call per batch),
    strip them, and only then drop a final partial batch (its images did decode)."""
    report = source.report

    def note(batch):
        noted = tf.numpy_function(report.note_decodes, [batch["_key"]], tf.bool)
        with tf.control_dependencies([noted]):
            return {k: tf.identity(v) for k, v in batch.items() if k != "_key"}

    ds = ds.map(note)
    if not drop:
        return ds
    ds = ds.filter(lambda batch: tf.shape(next(iter(batch.values())))[0] == batch_size)
    # filter() forgets the batch dimension: restore the static shapes drop_remainder gives
    return ds.map(
        lambda batch: {k: tf.ensure_shape(v, [batch_size, *v.shape[1:]]) for k, v in batch.items()}
    )


def build_dataset(
    source: ImageSource,
    global_batch_size: int,
    example_fn: Callable[[tf.Tensor, tf.Tensor], dict],
    *,
    seed: int = 0,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    repeat: bool = True,
    drop_remainder: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    num_parallel_calls: int = AUTOTUNE,
    batch_fn: Callable[[dict], dict] | None = None,
) -> tf.data.Dataset:
    """The one pipeline skeleton: shard, shuffle, repeat, guarded decode, per-sample seed,
    ``example_fn``, batch, optional ``batch_fn``, prefetch, options.

    Args:
        source: any :class:`ImageSource`.
        global_batch_size: batch over all replicas; with ``input_context`` each pipeline
            reads its shard and yields the per-replica size.
        example_fn: (image uint8 [H, W, 3], seed int64 [2]) -> dict of tensors (one sample).
            Sample k of pipeline p (of n) gets the seed (seed, k * n + p); k counts decoded
            images and keeps growing over repeated epochs.
        seed: base seed; also seeds the shuffle.
        drop_remainder: keep True for static shapes (XLA, MirroredStrategy).
        batch_fn: dict of batched tensors -> dict, applied after ``batch`` (vectorised work).
    """
    shards, index, batch_size = 1, 0, global_batch_size
    if input_context is not None:
        shards, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
    ds = source.raw(shards, index)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed + 7919 * index, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if source.may_fail:
        ds = _note_attempts(ds, source)
        ds = ds.map(_decode_with_key(source), num_parallel_calls=num_parallel_calls)
        ds = ds.ignore_errors()  # the last net; failures are counted in source.report
    else:
        ds = ds.map(lambda *raw: (tf.constant(b""), source.decode(*raw)), num_parallel_calls)

    def example(k, key_and_image):
        key, image = key_and_image
        element_seed = tf.stack([tf.constant(seed, tf.int64), k * shards + index])  # [2]
        out = example_fn(image, element_seed)
        return out | {"_key": key} if source.may_fail else out

    ds = ds.enumerate().map(example, num_parallel_calls=num_parallel_calls)
    if source.may_fail:
        ds = _note_decoded(ds.batch(batch_size), source, batch_size, drop_remainder)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if batch_fn is not None:
        ds = ds.map(batch_fn, num_parallel_calls=num_parallel_calls)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
        if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA
    )
    options.deterministic = True
    return ds.with_options(options)


def build_pretraining_dataset(
    source: ImageSource,
    global_batch_size: int,
    *,
    image_size: int = 224,
    patch_size: int = 16,
    num_masked: int = 118,
    crop_min: float = 0.2,
    color: bool = True,
    seed: int = 0,
    antialias: bool = True,
    interpolation: str = "bicubic",
    matmul_dtype: str = "auto",
    backend: str = "auto",
    **pipeline_kwargs,
) -> tf.data.Dataset:
    """Two views + rel_pos + mask per image, batched, shuffled, prefetched.

    Args:
        source: from :func:`image_folder_source`, :func:`tfds_source`,
            :func:`tfrecord_source`, :func:`idx_source` or :func:`array_source`.
        global_batch_size: batch over all replicas; with ``input_context`` each pipeline
            yields the per-replica size.
        seed: base seed of the per-sample stateless seeds (see :func:`build_dataset`);
            with ``repeat`` (the default; pass ``steps_per_epoch`` to ``fit``) every epoch
            draws new views and masks.
        antialias, interpolation: the resize filter. Default = SPEC (bicubic, PIL-like
            antialiasing); ``interpolation="bilinear"`` and/or ``antialias=False`` change
            the filter only (boxes and rel_pos stay exact), not the cost.
        matmul_dtype, backend: see :class:`~siameseim_tf.data.views.ViewConfig`
            (implementation choices; "auto" picks the fastest available here).
        **pipeline_kwargs: ``shuffle``, ``shuffle_buffer``, ``repeat``, ``drop_remainder``,
            ``input_context``, ``num_parallel_calls`` of :func:`build_dataset`.
    """
    config = ViewConfig(
        image_size,
        patch_size,
        num_masked,
        crop_min,
        color,
        antialias,
        interpolation,
        matmul_dtype,
        backend,
    )
    return build_dataset(
        source,
        global_batch_size,
        lambda image, element_seed: make_example(image, element_seed, config, with_mask=False),
        seed=seed,
        batch_fn=lambda batch: finish_batch(batch, config),  # masks, normalise, transpose
        **pipeline_kwargs,
    )


def distribute_pretraining_dataset(
    strategy: tf.distribute.Strategy, source: ImageSource, global_batch_size: int, **kwargs
) -> tf.distribute.DistributedDataset:
    """``strategy.distribute_datasets_from_function`` with explicit per-pipeline sharding."""
    return strategy.distribute_datasets_from_function(
        lambda ctx: build_pretraining_dataset(
            source, global_batch_size, input_context=ctx, **kwargs
        )
    )
