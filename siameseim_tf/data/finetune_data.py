"""The labelled training stream of fine-tuning (method §7): augmented, mixed batches.

Training example (timm's ``create_transform(is_training=True)`` order, all stateless):
random resized crop (scale [crop_min, 1], ratio [3/4, 4/3], bicubic) + horizontal flip ->
RandAugment (uint8) -> ImageNet normalisation -> random erasing; then per batch label
smoothing and mixup / cutmix. Batches are ``(images [B, S, S, 3], targets [B, C])`` with
soft targets, so a plain ``CategoricalCrossentropy`` trains on them.

Evaluation batches (the export preprocessing) are built by
:mod:`siameseim_tf.evaluation.finetune`.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from siameseim_tf.data.color import IMAGENET_MEAN, IMAGENET_STD
from siameseim_tf.data.crop import flipped_crop_resize, sample_crop
from siameseim_tf.data.mixing import mix_batch, smooth_one_hot
from siameseim_tf.data.pipeline import build_dataset
from siameseim_tf.data.source import ImageSource

CROPS = ("random_resized", "resize_then_crop")


@dataclass(frozen=True)
class Augmentation:
    """The fine-tuning augmentations; defaults are method §7's (MAE's fine-tuning recipe).

    ``crop``: "random_resized" (the paper's: scale [crop_min, 1], ratio [3/4, 4/3]) or
    "resize_then_crop": the evaluation geometry (shorter side to round(S * 256 / 224),
    bilinear) then a random S x S window — train and test objects at the same scale, which
    matters for small images (docs/finetune.md measures it).
    """

    crop: str = "random_resized"
    crop_min: float = 0.08
    rand_augment: bool = True
    rand_augment_magnitude: float = 9.0
    rand_augment_std: float = 0.5
    rand_augment_ops: int = 2
    erase_prob: float = 0.25
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.1
    interpolation: str = "bicubic"  # of the crop resize; "bilinear" = the export's filter
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.crop not in CROPS:  # at construction: before any data is read
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")


def normalise(images: tf.Tensor) -> tf.Tensor:
    """float in [0, 1] [..., 3] -> ImageNet-normalised."""
    return (images - IMAGENET_MEAN) / IMAGENET_STD


def eval_resized_shape(height: tf.Tensor, width: tf.Tensor, size: int) -> tf.Tensor:
    """int32 [2]: the evaluation resize, shorter side to round(S * 256 / 224) with the
    export's integer rounding (tests check it against the serving preprocessing)."""
    target = (size * 256 * 2 + 224) // (2 * 224)
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    short = tf.minimum(height, width)
    new = tf.stack(
        [(2 * height * target + short) // (2 * short), (2 * width * target + short) // (2 * short)]
    )
    return tf.cast(new, tf.int32)


def resize_then_crop(image: tf.Tensor, seed: tf.Tensor, flip: tf.Tensor, size: int) -> tf.Tensor:
    """The evaluation resize, then a uniformly placed S x S window, flipped iff ``flip``:
    float32 [S, S, 3] in [0, 1]."""
    shape = tf.shape(image)
    new = eval_resized_shape(shape[0], shape[1], size)  # [2]
    resized = tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear", antialias=False)
    top = tf.random.stateless_uniform([], seed, 0, new[0] - size + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seed + [0, 1], 0, new[1] - size + 1, dtype=tf.int32)
    view = resized[top : top + size, left : left + size]  # [S, S, 3]
    view = tf.cond(flip, lambda: tf.reverse(view, axis=[1]), lambda: view)
    return tf.clip_by_value(view / 255.0, 0.0, 1.0)


def augment_image(image: tf.Tensor, seed: tf.Tensor, size: int, aug: Augmentation) -> tf.Tensor:
    """uint8 [H, W, 3] + seed [2] -> float32 [S, S, 3], ImageNet-normalised."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)  # [4, 2]
    flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    if aug.crop == "resize_then_crop":
        view = resize_then_crop(image, seeds[0], flip, size)
    else:
        shape = tf.shape(image)
        box = sample_crop(seeds[0], shape[0], shape[1], aug.crop_min)  # [4]
        view = flipped_crop_resize(image, box, flip, size, aug.antialias, aug.interpolation)
    if aug.rand_augment:
        from siameseim_tf.data.randaugment import rand_augment

        pixels = tf.cast(tf.round(view * 255.0), tf.uint8)
        pixels = rand_augment(
            pixels,
            seeds[2],
            num_ops=aug.rand_augment_ops,
            magnitude=aug.rand_augment_magnitude,
            magnitude_std=aug.rand_augment_std,
        )
        view = tf.cast(pixels, tf.float32) / 255.0
    view = normalise(view)
    if aug.erase_prob > 0:
        from siameseim_tf.data.erasing import random_erasing

        view = random_erasing(view, seeds[3], probability=aug.erase_prob)
    return tf.ensure_shape(view, [size, size, 3])


def build_finetune_dataset(
    source: ImageSource,
    global_batch_size: int,
    *,
    image_size: int,
    num_classes: int,
    augmentation: Augmentation = Augmentation(),
    seed: int = 0,
    **pipeline_kwargs,
) -> tf.data.Dataset:
    """Repeated, shuffled, augmented ``(images, soft targets)`` batches of a labelled source.

    ``**pipeline_kwargs``: ``input_context``, ``start``, ``positions``, ... of
    :func:`~siameseim_tf.data.pipeline.build_dataset` (resumable like pretraining).
    """
    aug = augmentation

    def example(image, element_seed):
        return {"image": augment_image(image, element_seed, image_size, aug), "seed": element_seed}

    def finish(batch):
        targets = smooth_one_hot(batch["label"], num_classes, aug.label_smoothing)
        # One mixing seed per batch, from its first image's seed: the same on every run.
        mix_seed = batch["seed"][0] + tf.constant([0, 7], tf.int64)
        return mix_batch(
            batch["image"], targets, mix_seed, aug.mixup_alpha, aug.cutmix_alpha, aug.switch_prob
        )

    return build_dataset(
        source,
        global_batch_size,
        example,
        seed=seed,
        batch_fn=finish,
        with_labels=True,
        **pipeline_kwargs,
    )


def count_classes(source: ImageSource) -> int:
    """C = the number of class names, or max label + 1 (one pass over the raw labels)."""
    if source.num_classes:
        return source.num_classes

    def label(*raw):
        return tf.cast(source.label(*raw), tf.int64)

    ds = source.raw(1, 0).map(label, num_parallel_calls=tf.data.AUTOTUNE)
    top = ds.reduce(tf.constant(-1, tf.int64), tf.maximum)
    return int(top) + 1
