"""Two views of one image + relative position + mask: the per-sample training example.

Seeds: a sample's seed is int64 [2] = (base_seed, element_index); it is split with
``tf.random.experimental.stateless_split`` into independent seeds for view 1's crop,
view 1's colour, view 2's crop, view 2's colour and the mask, so a sample is a pure
function of (image, base_seed, element_index) whatever the parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from siameseim_tf.data.color import VIEW1_PROBS, VIEW2_PROBS, apply_color, to_model_input
from siameseim_tf.data.color import sample_color_params as _color_params
from siameseim_tf.data.crop import original_box, relative_position, sample_crop
from siameseim_tf.data.masking import mask_from_seed, masks_from_seeds
from siameseim_tf.data.resize import crop_resize, matmul_dtype

INTERPOLATIONS = ("bicubic", "bilinear")


@dataclass(frozen=True)
class ViewConfig:
    """Static settings of the two-view example."""

    image_size: int = 224
    patch_size: int = 16
    num_masked: int = 118
    crop_min: float = 0.2
    color: bool = True
    antialias: bool = True  # PIL-like antialiasing when downscaling
    interpolation: str = "bicubic"  # SPEC; "bilinear" is the cheaper filter
    # operands of the resize / blur matrix products: "auto" = bfloat16 on CPUs with native
    # bfloat16 (AMX / AVX512-BF16), else float32 (docs/data_pipeline.md)
    matmul_dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} not in {INTERPOLATIONS}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not a multiple of {self.patch_size}")
        matmul_dtype(self.matmul_dtype)  # validates
        if not 0 <= self.num_masked <= self.grid**2:
            raise ValueError(f"num_masked {self.num_masked} not in [0, {self.grid**2}]")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


def as_seed(seed: int | tf.Tensor) -> tf.Tensor:
    """int -> int64 [2] (0, seed); a [2] tensor is cast to int64."""
    seed = tf.convert_to_tensor(seed, tf.int64)
    return tf.stack([tf.zeros([], tf.int64), seed]) if seed.shape.rank == 0 else seed


def _one_view(image, seed, config, probs):
    """uint8 [H, W, 3] -> (float32 [S, S, 3] normalised, box int32 [4], flip bool [])."""
    crop_seed, color_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    shape = tf.shape(image)
    box = sample_crop(crop_seed, shape[0], shape[1], config.crop_min)
    dtype = matmul_dtype(config.matmul_dtype)
    view = crop_resize(
        image, box, flip, config.image_size, config.interpolation, config.antialias, dtype
    )  # [3, S, S]
    if config.color:
        view = apply_color(view, _color_params(color_seed, probs), probs, dtype)
    return to_model_input(view), box, flip  # [S, S, 3], normalised


def _views(image: tf.Tensor, seed: tf.Tensor, config: ViewConfig):
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(f"image must be uint8 [H, W, 3], got {image.dtype}")
    s1, s2, _ = tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), 3))
    view1, box1, flip1 = _one_view(image, s1, config, VIEW1_PROBS)
    view2, box2, flip2 = _one_view(image, s2, config, VIEW2_PROBS)
    width = tf.shape(image)[1]
    rel_pos = relative_position(box1, box2, flip1, flip2, width)  # [6]
    boxes = tf.stack([original_box(box1, flip1, width), original_box(box2, flip2, width)])
    return view1, view2, rel_pos, boxes


def make_views(
    image: tf.Tensor,
    seed: int | tf.Tensor,
    color: bool = True,
    image_size: int = 224,
    crop_min: float = 0.2,
    antialias: bool = True,
    interpolation: str = "bicubic",
    matmul_dtype: str = "auto",
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The two views of one image (SPEC §1), a pure function of (image, seed).

    Args:
        image: uint8 [H, W, 3].
        seed: int, or int [2] tensor (e.g. (base_seed, element_index)).
        color: False skips the colour pipelines (flip + crop + resize + normalise only).
        antialias, interpolation, matmul_dtype: the resize filter and the operand type of
            the resize / blur products (see :class:`ViewConfig`).
    Returns:
        view1, view2: float32 [S, S, 3], ImageNet-normalised.
        rel_pos: float32 [6] = (delta_i, delta_j, delta_h, delta_w, relative_flip,
            flip_delta_j) of SPEC §1.
        boxes: float32 [2, 5], row 0 = view 1, row 1 = view 2, columns (top, left, height,
            width, flipped) in pixels of the ORIGINAL (unflipped) image; the view shows rows
            [top, top + height) and columns [left, left + width), mirrored left-right iff
            flipped = 1 (view column fraction u <-> original x = left + (1 - u) * width).
    """
    # patch size / mask count are unused by the views
    config = ViewConfig(
        image_size, image_size, 0, crop_min, color, antialias, interpolation, matmul_dtype
    )
    return _views(image, seed, config)


def make_single_view(
    image: tf.Tensor,
    seed: int | tf.Tensor,
    image_size: int = 224,
    crop_min: float = 0.2,
    antialias: bool = True,
    interpolation: str = "bicubic",
    matmul_dtype: str = "auto",
) -> tf.Tensor:
    """One flip + random resized crop view, no colour: float32 [S, S, 3], ImageNet-normalised.

    Equals view 1 of ``make_views(image, seed, color=False, ...)`` (same seed split), so a
    single-view method (MAE) and SiameseIM see the same geometry for the same sample seed.
    """
    config = ViewConfig(
        image_size, image_size, 0, crop_min, False, antialias, interpolation, matmul_dtype
    )
    view_seed = tf.random.experimental.stateless_split(as_seed(seed), 3)[0]
    view, _, _ = _one_view(tf.convert_to_tensor(image), view_seed, config, None)
    return tf.ensure_shape(view, [image_size, image_size, 3])


def mask_seed(seed: int | tf.Tensor) -> tf.Tensor:
    """The mask's share of a sample seed: int64 [2]."""
    return tf.random.experimental.stateless_split(as_seed(seed), 3)[2]


def example_mask(seed: int | tf.Tensor, config: ViewConfig) -> tf.Tensor:
    """The mask of the sample with this seed: int32 [N], ``num_masked`` ones."""
    return mask_from_seed(mask_seed(seed), config.grid, config.num_masked)


def make_example(
    image: tf.Tensor, seed: tf.Tensor, config: ViewConfig, with_mask: bool = True
) -> dict[str, tf.Tensor]:
    """One training example of the batch contract (before batching).

    Returns {"view1", "view2": float32 [S, S, 3], "rel_pos": float32 [6],
    "mask": int32 [N] with exactly ``num_masked`` ones}. With ``with_mask=False`` the
    mask is left to :func:`add_masks` after batching: "mask_seed" int64 [2] instead.
    """
    view1, view2, rel_pos, _ = _views(image, seed, config)
    size = config.image_size
    example = {
        "view1": tf.ensure_shape(view1, [size, size, 3]),
        "view2": tf.ensure_shape(view2, [size, size, 3]),
        "rel_pos": tf.ensure_shape(rel_pos, [6]),
    }
    if with_mask:
        return example | {"mask": example_mask(seed, config)}
    return example | {"mask_seed": mask_seed(seed)}


def add_masks(batch: dict[str, tf.Tensor], config: ViewConfig) -> dict[str, tf.Tensor]:
    """Batch of ``make_example(..., with_mask=False)`` -> the batch contract: "mask_seed"
    int64 [B, 2] replaced by "mask" int32 [B, N] (same masks as per-element, one call)."""
    masks = masks_from_seeds(batch["mask_seed"], config.grid, config.num_masked)
    return {k: v for k, v in batch.items() if k != "mask_seed"} | {"mask": masks}
