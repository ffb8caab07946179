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

import itertools
import threading
from collections.abc import Callable

import tensorflow as tf

from siameseim_tf.data.source import ImageSource
from siameseim_tf.data.views import ViewConfig, finish_batch, make_example

AUTOTUNE = tf.data.AUTOTUNE


# Attempts are noted per group of this many raw elements (one Python call per group
# instead of per image; a Python call costs ~0.1 ms of CPU, 3 % of an image's budget).
ATTEMPT_GROUP = 64
# Position tag of a raw element: pass * PASS_STRIDE + index within the (shuffled) pass.
PASS_STRIDE = 1 << 32


class StreamPositions:
    """The position tag of the last element of every batch a pipeline has produced.

    Checkpoints read the position after the batches a step consumed (prefetched batches
    are produced but not consumed), so a restart resumes the stream at the next element
    without decoding what came before.
    """

    def __init__(self, start: int = 0):
        self.start = start  # the first tag of the stream
        self._last_tags: list[int] = []
        self._offset = 0  # batches forgotten from the front of _last_tags
        self._lock = threading.Lock()

    def note(self, last_tag) -> bool:
        with self._lock:
            self._last_tags.append(int(last_tag))
        return True

    def next_start(self, batches: int) -> int:
        """The first tag after ``batches`` batches of this stream (``start`` if none)."""
        with self._lock:
            if batches <= 0:
                return self.start
            index = batches - 1 - self._offset
            if not 0 <= index < len(self._last_tags):
                raise RuntimeError(
                    f"stream position of batch {batches} unknown ({len(self._last_tags)} "
                    f"noted after {self._offset} forgotten)"
                )
            tag = self._last_tags[index]
            # Batches before this one are never asked for again.
            del self._last_tags[:index]
            self._offset += index
            return tag + 1


_STREAM_IDS = itertools.count()


def _tagged_passes(
    source: ImageSource,
    shards: int,
    index: int,
    *,
    seed: int,
    shuffle: bool,
    shuffle_buffer: int,
    repeat: bool,
    start: int,
):
    """(tag, raw) from position ``start`` on: pass p is the shard shuffled with a seed of
    (seed, shard, p), so any position is reached by skipping raw (undecoded) elements."""
    first_pass, first_offset = divmod(int(start), PASS_STRIDE)

    def one_pass(p):
        ds = source.raw(shards, index)
        if shuffle:
            ds = _shuffle_in_windows(ds, shuffle_buffer, seed, index, p)
        skipped = tf.where(
            p == first_pass, tf.constant(first_offset, tf.int64), tf.constant(0, tf.int64)
        )
        ds = ds.enumerate().skip(skipped)
        return ds.map(lambda k, raw: (p * PASS_STRIDE + k, raw))

    last = tf.int64.max if repeat else first_pass + 1
    return tf.data.Dataset.range(first_pass, last).flat_map(one_pass)


def _shuffle_in_windows(ds, window: int, seed: int, shard: int, p) -> tf.data.Dataset:
    """Pass ``p`` of a shard in a seeded order: consecutive windows of ``window`` raw
    elements, each permuted by a stateless shuffle of seed (seed, shard, p, window index).

    Stateless ops give the same order on every machine and let a restart build pass ``p``
    directly (``Dataset.shuffle`` would have to replay every earlier pass).
    """

    def permute(w, raw):
        key = tf.stack([tf.constant(seed, tf.int64) * 7919 + shard, p * 1_000_003 + w])
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(tf.nest.flatten(raw)[0])[0]), seed=key
        )
        return tf.nest.map_structure(lambda x: tf.gather(x, order), raw)

    return ds.batch(window).enumerate().map(permute).unbatch()


def _note_attempts(ds: tf.data.Dataset, source: ImageSource, stream: int) -> tf.data.Dataset:
    """(tag, raw) unchanged, with their tags and keys noted in ``source.report``."""
    report = source.report

    def note(tags, raw):
        keys = source.key(*raw) if isinstance(raw, tuple) else source.key(raw)
        noted = tf.numpy_function(report.note_attempts, [stream, tags, keys], tf.bool)
        with tf.control_dependencies([noted]):
            return tf.identity(tags), tf.nest.map_structure(tf.identity, raw)

    return ds.batch(ATTEMPT_GROUP).map(note).unbatch()


def _note_batches(ds, source, positions, stream: int, batch_size: int, drop: bool, repeat: bool):
    """Batches carrying "_tag": note their decodes (failed decodes are resolved from the
    tags) and their last position (one Python call per batch), strip the tag, and only
    then drop a final partial batch (its images did decode)."""
    report = source.report if source.may_fail else None

    def note(batch):
        tags = batch["_tag"]
        noted = []
        if report is not None:
            noted.append(tf.numpy_function(report.note_decodes, [stream, tags], tf.bool))
        if positions is not None:
            noted.append(tf.numpy_function(positions.note, [tags[-1]], tf.bool))
        with tf.control_dependencies(noted):
            return {k: tf.identity(v) for k, v in batch.items() if k != "_tag"}

    ds = ds.map(note)
    if report is not None and not repeat:
        ds = _on_end(ds, lambda: report.end_stream(stream))
    if not drop:
        return ds
    ds = ds.filter(lambda batch: tf.shape(next(iter(batch.values())))[0] == batch_size)
    # filter() forgets the batch dimension: restore the static shapes drop_remainder gives
    return ds.map(
        lambda batch: {k: tf.ensure_shape(v, [batch_size, *v.shape[1:]]) for k, v in batch.items()}
    )


def _on_end(ds: tf.data.Dataset, callback) -> tf.data.Dataset:
    """``ds`` unchanged; ``callback()`` runs (in Python) once its last element is read."""
    spec = ds.element_spec

    def call(_):
        done = tf.numpy_function(lambda: callback() or True, [], tf.bool)
        with tf.control_dependencies([done]):
            return tf.nest.map_structure(
                lambda s: tf.zeros([d or 0 for d in s.shape], s.dtype), spec
            )

    marker = tf.data.Dataset.range(1).map(call).filter(lambda *_: tf.constant(False))
    return ds.concatenate(marker)


def build_dataset(
    source: ImageSource,
    global_batch_size: int,
    example_fn: Callable[[tf.Tensor, tf.Tensor], dict],
    *,
    seed: int = 0,
    shuffle: bool = True,
    shuffle_buffer: int | None = None,
    repeat: bool = True,
    drop_remainder: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    num_parallel_calls: int = AUTOTUNE,
    batch_fn: Callable[[dict], dict] | None = None,
    start: int = 0,
    positions: StreamPositions | None = None,
    with_labels: bool = False,
) -> tf.data.Dataset:
    """The one pipeline skeleton: shard, seeded passes, guarded decode, per-sample seed,
    ``example_fn``, batch, optional ``batch_fn``, prefetch, options.

    The stream is a deterministic function of (seed, position): raw element k of pass p
    of a shard has the tag p * 2**32 + k and the per-sample seed (seed, tag * n + i) for
    pipeline i of n, whatever failed to decode before it. A restart passes the ``start``
    tag recorded by ``positions`` and continues exactly where the stream stopped.

    Args:
        source: any :class:`ImageSource`.
        global_batch_size: batch over all replicas; with ``input_context`` each pipeline
            reads its shard and yields the per-replica size.
        example_fn: (image uint8 [H, W, 3], seed int64 [2]) -> dict of tensors (one sample).
        seed: base seed of the per-sample seeds and of each pass's shuffle.
        shuffle_buffer: raw elements shuffled together (default ``source.shuffle_window``).
        drop_remainder: keep True for static shapes (XLA, MirroredStrategy).
        batch_fn: dict of batched tensors -> dict, applied after ``batch`` (vectorised work).
        start: position tag of the first raw element (0: the stream's beginning).
        positions: receives the last tag of every batch (for checkpoints).
        with_labels: add ``label`` (int64, from ``source.label``) to every example.
    """
    if with_labels and source.label is None:
        raise ValueError(f"{source.name} has no labels")
    shards, index, batch_size = 1, 0, global_batch_size
    if input_context is not None:
        shards, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
    stream = next(_STREAM_IDS)
    shuffle_buffer = shuffle_buffer or source.shuffle_window
    ds = _tagged_passes(
        source,
        shards,
        index,
        seed=seed,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        repeat=repeat,
        start=start,
    )  # (tag, raw)

    def decode(tag, raw):
        args = raw if isinstance(raw, tuple) else (raw,)
        image = source.decode(*args)
        if not with_labels:
            return tag, (image,)
        label = tf.cast(source.label(*args), tf.int64)
        with tf.control_dependencies([tf.debugging.assert_non_negative(label)]):
            return tag, (image, tf.identity(label))  # unlabelled records fail (and are counted)

    if source.may_fail:
        ds = _note_attempts(ds, source, stream)
        ds = ds.map(decode, num_parallel_calls=num_parallel_calls)  # may raise -> dropped
        ds = ds.ignore_errors()  # the last net; failures are resolved in source.report
    else:
        ds = ds.map(decode, num_parallel_calls=num_parallel_calls)

    def example(tag, decoded):
        element_seed = tf.stack([tf.constant(seed, tf.int64), tag * shards + index])  # [2]
        labels = {"label": decoded[1]} if with_labels else {}
        return example_fn(decoded[0], element_seed) | labels | {"_tag": tag}

    ds = ds.map(example, num_parallel_calls=num_parallel_calls).batch(batch_size)
    ds = _note_batches(ds, source, positions, stream, batch_size, drop_remainder, repeat)
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
        antialias, interpolation: the resize filter. Default = method §7 (bicubic, PIL-like
            antialiasing); ``interpolation="bilinear"`` and/or ``antialias=False`` change
            the filter only (boxes and rel_pos stay exact), not the cost.
        matmul_dtype, backend: see :class:`~siameseim_tf.data.views.ViewConfig`
            (implementation choices; "auto" picks the fastest available here).
        **pipeline_kwargs: ``shuffle``, ``shuffle_buffer``, ``repeat``, ``drop_remainder``,
            ``input_context``, ``num_parallel_calls`` of :func:`build_dataset`.
    """
    config = ViewConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_masked=num_masked,
        crop_min=crop_min,
        color=color,
        antialias=antialias,
        interpolation=interpolation,
        matmul_dtype=matmul_dtype,
        backend=backend,
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
