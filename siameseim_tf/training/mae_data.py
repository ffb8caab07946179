"""``build_mae_dataset``: any :class:`ImageSource` -> batches of the :class:`MAE` contract.

Batch dict: ``image`` float32 [B, S, S, 3] (one RandomResizedCrop(scale crop_min..1) +
horizontal flip view, no colour, ImageNet-normalised) and ``mask`` int32 [B, N] with
exactly round(mask_ratio * N) ones (1 = masked), a uniformly random subset per sample.

Randomness is drawn here, per sample, from stateless seeds (TF-NOTES: random numbers drawn
inside ``train_step`` are identical on every replica). The seeding is the data package's:
sample k of pipeline p gets (seed, k * num_pipelines + p), split into (view, unused, mask)
seeds exactly like the two-view example, so ``image`` equals view 1 of
:func:`~siameseim_tf.data.make_views` with ``color=False`` for the same seed.
"""

from __future__ import annotations

import tensorflow as tf

from siameseim_tf.data.color import normalize
from siameseim_tf.data.pipeline import AUTOTUNE, _guarded_decode
from siameseim_tf.data.source import ImageSource
from siameseim_tf.data.views import ViewConfig, _one_view, as_seed
from siameseim_tf.models.mae import num_masked_patches


def random_mask(seed: tf.Tensor, num_patches: int, num_masked: int) -> tf.Tensor:
    """Uniformly random set of exactly ``num_masked`` cells: int32 [N], 1 = masked.

    MAE's per-sample shuffle: the ``num_masked`` cells with the largest noise are masked.

    Args:
        seed: int [2] stateless seed.
        num_patches: N.
        num_masked: M.

    Example:
    >>> int(tf.reduce_sum(random_mask(tf.constant([0, 3]), 16, 12)))
    12
    """
    noise = tf.random.stateless_uniform([num_patches], seed)  # [N]
    rank = tf.argsort(tf.argsort(noise))  # [N], 0 = smallest noise
    return tf.cast(rank >= num_patches - num_masked, tf.int32)


def make_mae_example(image: tf.Tensor, seed: tf.Tensor, config: ViewConfig) -> dict:
    """One example before batching: {"image": float32 [S, S, 3], "mask": int32 [N]}.

    Args:
        image: uint8 [H, W, 3].
        seed: int [2] per-sample stateless seed.
        config: view settings; ``color`` must be False, ``num_masked`` is M.
    """
    view_seed, _, mask_seed = tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), 3))
    view, _, _ = _one_view(tf.convert_to_tensor(image), view_seed, config, probs=None)
    size = config.image_size
    return {
        "image": tf.ensure_shape(normalize(view), [size, size, 3]),
        "mask": random_mask(mask_seed, config.grid**2, config.num_masked),
    }


def build_mae_dataset(
    source: ImageSource,
    global_batch_size: int,
    image_size: int = 224,
    patch_size: int = 16,
    mask_ratio: float = 0.75,
    crop_min: float = 0.2,
    seed: int = 0,
    *,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    repeat: bool = True,
    drop_remainder: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    num_parallel_calls: int = AUTOTUNE,
    antialias: bool = True,
) -> tf.data.Dataset:
    """One augmented view + random mask per image, batched, shuffled, prefetched.

    Sharding, shuffling, repetition, bad-input handling and options follow
    :func:`~siameseim_tf.data.build_pretraining_dataset` (see there for ``input_context``:
    each pipeline reads its shard and yields the per-replica batch size).

    Args:
        source: any :class:`ImageSource` (image folder, TFRecord, TFDS, IDX, arrays).
        global_batch_size: batch over all replicas.
        image_size, patch_size: S and P of the model.
        mask_ratio: masked fraction; M = round(mask_ratio * N), as :class:`MAE` expects.
        crop_min: lower bound of the RandomResizedCrop area scale.
        seed: base seed of the per-sample stateless seeds.

    Example:
    >>> import numpy as np
    >>> from siameseim_tf.data import array_source
    >>> images = np.zeros((8, 40, 40, 3), np.uint8)
    >>> ds = build_mae_dataset(array_source(images), 4, image_size=32, patch_size=8)
    >>> batch = next(iter(ds))  # image [4, 32, 32, 3], mask [4, 16] with 12 ones per row
    """
    grid = image_size // patch_size
    num_masked = num_masked_patches(grid * grid, mask_ratio)
    config = ViewConfig(image_size, patch_size, num_masked, crop_min, False, antialias)
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
        ds = ds.map(_guarded_decode(source), num_parallel_calls=num_parallel_calls)
        ds = ds.ignore_errors()  # failures are counted in source.report
    else:
        ds = ds.map(source.decode, num_parallel_calls=num_parallel_calls)

    def example(k, image):
        element_seed = tf.stack([tf.constant(seed, tf.int64), k * shards + index])  # [2]
        return make_mae_example(image, element_seed, config)

    ds = ds.enumerate().map(example, num_parallel_calls=num_parallel_calls)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
        if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA
    )
    options.deterministic = True
    return ds.with_options(options)


def distribute_mae_dataset(
    strategy: tf.distribute.Strategy, source: ImageSource, global_batch_size: int, **kwargs
) -> tf.distribute.DistributedDataset:
    """``strategy.distribute_datasets_from_function`` with explicit per-pipeline sharding."""
    return strategy.distribute_datasets_from_function(
        lambda ctx: build_mae_dataset(source, global_batch_size, input_context=ctx, **kwargs)
    )
