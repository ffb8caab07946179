"""``build_mae_dataset``: any :class:`ImageSource` -> batches of the :class:`MAE` contract.

Batch dict: ``image`` float32 [B, S, S, 3] (one RandomResizedCrop(scale crop_min..1) +
horizontal flip view, no colour, ImageNet-normalised) and ``mask`` int32 [B, N] with
exactly ``num_masked`` ones (1 = masked), a uniformly random subset per sample.

Randomness is drawn here, per sample, from stateless seeds (TF-NOTES: random numbers drawn
inside ``train_step`` are identical on every replica). The seeding is the data package's:
sample k of pipeline p gets (seed, k * num_pipelines + p), split into (view, unused, mask)
seeds exactly like the two-view example, so ``image`` equals
:func:`~siameseim_tf.data.make_single_view` = view 1 of :func:`~siameseim_tf.data.make_views`
with ``color=False`` for the same seed.
"""

from __future__ import annotations

import tensorflow as tf

from siameseim_tf.data import build_dataset, make_single_view
from siameseim_tf.data.source import ImageSource
from siameseim_tf.data.views import as_seed


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


def make_mae_example(
    image: tf.Tensor,
    seed: tf.Tensor,
    *,
    image_size: int,
    patch_size: int,
    num_masked: int,
    crop_min: float = 0.2,
    antialias: bool = True,
    interpolation: str = "bicubic",
) -> dict:
    """One example before batching: {"image": float32 [S, S, 3], "mask": int32 [N]}.

    Args:
        image: uint8 [H, W, 3].
        seed: int [2] per-sample stateless seed.
        num_masked: M, the exact number of masked patches.
    """
    mask_seed = tf.random.experimental.stateless_split(as_seed(seed), 3)[2]
    grid = image_size // patch_size
    return {
        "image": make_single_view(image, seed, image_size, crop_min, antialias, interpolation),
        "mask": random_mask(mask_seed, grid * grid, num_masked),
    }


def build_mae_dataset(
    source: ImageSource,
    global_batch_size: int,
    *,
    num_masked: int,
    image_size: int = 224,
    patch_size: int = 16,
    crop_min: float = 0.2,
    seed: int = 0,
    antialias: bool = True,
    interpolation: str = "bicubic",
    **pipeline_kwargs,
) -> tf.data.Dataset:
    """One augmented view + random mask per image, batched, shuffled, prefetched.

    The skeleton (sharding with ``input_context``, shuffle, repeat, bad-input handling,
    per-sample seeds, options) is :func:`~siameseim_tf.data.build_dataset`.

    Args:
        source: any :class:`ImageSource` (image folder, TFRecord, TFDS, IDX, arrays).
        global_batch_size: batch over all replicas.
        num_masked: M, exactly this many masked patches per sample (0 < M < N), as the
            :class:`MAE` model was built with (``num_patches - num_visible``).
        image_size, patch_size: S and P of the model.
        crop_min: lower bound of the RandomResizedCrop area scale.
        antialias, interpolation: the resize filter (method §1 default: bicubic, antialiased).
        seed: base seed of the per-sample stateless seeds.
        **pipeline_kwargs: ``shuffle``, ``shuffle_buffer``, ``repeat``, ``drop_remainder``,
            ``input_context``, ``num_parallel_calls`` of :func:`~siameseim_tf.data.build_dataset`.

    Example:
    >>> import numpy as np
    >>> from siameseim_tf.data import array_source
    >>> images = np.zeros((8, 40, 40, 3), np.uint8)
    >>> ds = build_mae_dataset(array_source(images), 4, num_masked=12, image_size=32,
    ...                        patch_size=8)
    >>> batch = next(iter(ds))  # image [4, 32, 32, 3], mask [4, 16] with 12 ones per row
    """
    num_patches = (image_size // patch_size) ** 2
    if image_size % patch_size or not 0 < num_masked < num_patches:
        raise ValueError(
            f"need S % P == 0 and 0 < num_masked < N; got S={image_size}, P={patch_size}, "
            f"num_masked={num_masked}, N={num_patches}"
        )
    example_kwargs = dict(
        image_size=image_size,
        patch_size=patch_size,
        num_masked=num_masked,
        crop_min=crop_min,
        antialias=antialias,
        interpolation=interpolation,
    )
    return build_dataset(
        source,
        global_batch_size,
        lambda image, element_seed: make_mae_example(image, element_seed, **example_kwargs),
        seed=seed,
        **pipeline_kwargs,
    )


def distribute_mae_dataset(
    strategy: tf.distribute.Strategy, source: ImageSource, global_batch_size: int, **kwargs
) -> tf.distribute.DistributedDataset:
    """``strategy.distribute_datasets_from_function`` with explicit per-pipeline sharding."""
    return strategy.distribute_datasets_from_function(
        lambda ctx: build_mae_dataset(source, global_batch_size, input_context=ctx, **kwargs)
    )
