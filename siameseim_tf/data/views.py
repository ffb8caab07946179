"""Two views of one image + relative position + mask: the per-sample training example.

Seeds: a sample's seed is int64 [2] = (base_seed, element_index); it is split with
``tf.random.experimental.stateless_split`` into independent seeds for view 1's crop,
view 1's colour, view 2's crop, view 2's colour and the mask, so a sample is a pure
function of (image, base_seed, element_index) whatever the parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from siameseim_tf.data import native
from siameseim_tf.data.color import VIEW1_PROBS, VIEW2_PROBS, apply_color, finish_views
from siameseim_tf.data.color import sample_color_params as _color_params
from siameseim_tf.data.crop import original_box, relative_position, sample_crop
from siameseim_tf.data.masking import mask_from_seed, masks_from_seeds
from siameseim_tf.data.resize import crop_resize, matmul_dtype

INTERPOLATIONS = ("bicubic", "bilinear")
BACKENDS = ("auto", "fused", "tf")


@dataclass(frozen=True)
class ViewConfig:
    """Static settings of the two-view example."""

    image_size: int = 224
    patch_size: int = 16
    num_masked: int = 118
    crop_min: float = 0.2
    color: bool = True
    antialias: bool = True  # PIL-like antialiasing when downscaling
    interpolation: str = "bicubic"  # method §1; "bilinear" is the cheaper filter
    # operands of the resize / blur matrix products: "auto" = bfloat16 on CPUs with
    # AMX-BF16, else float32 (docs/data_pipeline.md)
    matmul_dtype: str = "auto"
    # "auto": the fused C++ kernel (native/) when it can be built here, else TF ops;
    # "fused" requires the kernel; "tf" forces TF ops (the reference implementation)
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} not in {INTERPOLATIONS}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not a multiple of {self.patch_size}")
        matmul_dtype(self.matmul_dtype)  # validates
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} not in {BACKENDS}")
        if not 0 <= self.num_masked <= self.grid**2:
            raise ValueError(f"num_masked {self.num_masked} not in [0, {self.grid**2}]")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


def as_seed(seed: int | tf.Tensor) -> tf.Tensor:
    """int -> int64 [2] (0, seed); a [2] tensor is cast to int64."""
    seed = tf.convert_to_tensor(seed, tf.int64)
    return tf.stack([tf.zeros([], tf.int64), seed]) if seed.shape.rank == 0 else seed


@tf.function(jit_compile=True)
def _plan(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, crop_min: float, views: tuple):
    """Every random draw of a sample, as one XLA computation (~150 scalar-sized operations
    that, run one by one, cost more CPU than the pixels): per view a crop box (flipped
    frame) int32 [4], a flip and its colour parameters; plus rel_pos and original boxes.

    ``views``: a colour-probability object per view (``None`` = geometry only). Each view
    takes its share of ``stateless_split(seed, 3)`` (the third share is the mask's).
    """
    shares = tf.random.experimental.stateless_split(seed, 3)
    boxes, flips, params = [], [], []
    for view_seed, probs in zip(tf.unstack(shares)[: len(views)], views):
        crop_seed, color_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(view_seed, 3)
        )
        flips.append(tf.random.stateless_uniform([], flip_seed) < 0.5)
        boxes.append(sample_crop(crop_seed, height, width, crop_min))
        params.append(None if probs is None else _color_params(color_seed, probs))
    plan = {"boxes": tf.stack(boxes), "flips": tf.stack(flips), "color": params}
    if len(views) == 2:
        plan["rel_pos"] = relative_position(boxes[0], boxes[1], flips[0], flips[1], width)
        plan["original_boxes"] = tf.stack(
            [original_box(b, f, width) for b, f in zip(boxes, flips)]
        )  # [2, 5]
    return plan


def _fused_kernel(config: ViewConfig):
    """The fused C++ view op, or None for the TF-op path (``config.backend``)."""
    if config.backend == "tf":
        return None
    module = tf.autograph.experimental.do_not_convert(native.load)()
    if module is None and config.backend == "fused":
        raise RuntimeError(f"backend='fused' but the kernel is unavailable: {native.status()}")
    return module


def _render(image: tf.Tensor, plan: dict, config: ViewConfig, views: tuple, finish: bool):
    """The views of a plan: crop + flip + resize, colour (+ normalise).

    Returns (views, finished): ImageNet-normalised [S, S, 3] views if ``finished``, else
    channels-first [3, S, S] in [0, 1] (:func:`finish_views` completes them). The fused
    kernel always finishes; the TF-op path only if ``finish``.
    """
    kernel = _fused_kernel(config)
    if kernel is not None:
        return _render_fused(kernel, image, plan, config, views), True
    dtype = matmul_dtype(config.matmul_dtype)
    resized = crop_resize(
        image,
        plan["boxes"],
        plan["flips"],
        config.image_size,
        config.interpolation,
        config.antialias,
        dtype,
    )  # [3, S, S] each
    out = [
        view if probs is None else apply_color(view, params, probs, dtype)
        for view, params, probs in zip(resized, plan["color"], views)
    ]
    return ([finish_views(v) for v in out] if finish else out), finish


def _render_fused(kernel, image: tf.Tensor, plan: dict, config: ViewConfig, views: tuple):
    boxes, flips = plan["boxes"], plan["flips"]  # [K, 4] in the flipped frame, [K]
    lefts = tf.where(flips, tf.shape(image)[1] - boxes[:, 1] - boxes[:, 3], boxes[:, 1])
    regions = tf.stack([boxes[:, 0], lefts, boxes[:, 2], boxes[:, 3]], axis=1)
    count = len(views)
    no_color = {"order": tf.range(4), "flags": tf.zeros([4], tf.bool), "factors": tf.ones([5])}
    specs = []
    for params in plan["color"]:
        if params is None:
            specs.append(no_color)
            continue
        factors = [params[k] for k in ("brightness", "contrast", "saturation", "hue", "sigma")]
        flags = [params[k] for k in ("jitter", "grayscale", "blur", "solarize")]
        specs.append(
            {"order": params["order"], "flags": tf.stack(flags), "factors": tf.stack(factors)}
        )
    return kernel.sim_fused_views(
        image,
        regions,
        flips,
        tf.stack([spec["factors"] for spec in specs]),
        tf.stack([spec["order"] for spec in specs]),
        tf.stack([spec["flags"] for spec in specs]),
        K=count,
        size=config.image_size,
        bicubic=config.interpolation == "bicubic",
        antialias=config.antialias,
    )  # K x [S, S, 3]: separate outputs, no copy to split them


def _checked(image: tf.Tensor) -> tf.Tensor:
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(f"image must be uint8 [H, W, 3], got {image.dtype}")
    return image


def _views(image: tf.Tensor, seed: tf.Tensor, config: ViewConfig, finish: bool = True):
    image = _checked(image)
    shape = tf.shape(image)
    views = (VIEW1_PROBS, VIEW2_PROBS) if config.color else (None, None)
    plan = _plan(as_seed(seed), shape[0], shape[1], config.crop_min, views)
    (view1, view2), finished = _render(image, plan, config, views, finish)
    return view1, view2, plan["rel_pos"], plan["original_boxes"], finished


def make_views(
    image: tf.Tensor,
    seed: int | tf.Tensor,
    color: bool = True,
    image_size: int = 224,
    crop_min: float = 0.2,
    antialias: bool = True,
    interpolation: str = "bicubic",
    matmul_dtype: str = "auto",
    backend: str = "auto",
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The two views of one image (method §1), a pure function of (image, seed).

    Args:
        image: uint8 [H, W, 3].
        seed: int, or int [2] tensor (e.g. (base_seed, element_index)).
        color: False skips the colour pipelines (flip + crop + resize + normalise only).
        antialias, interpolation, matmul_dtype, backend: the resize filter, the operand
            type of the TF path's resize / blur products and the implementation (fused
            C++ kernel or TF ops), see :class:`ViewConfig`.
    Returns:
        view1, view2: float32 [S, S, 3], ImageNet-normalised.
        rel_pos: float32 [6] = (delta_i, delta_j, delta_h, delta_w, relative_flip,
            flip_delta_j) of method §1.
        boxes: float32 [2, 5], row 0 = view 1, row 1 = view 2, columns (top, left, height,
            width, flipped) in pixels of the ORIGINAL (unflipped) image; the view shows rows
            [top, top + height) and columns [left, left + width), mirrored left-right iff
            flipped = 1 (view column fraction u <-> original x = left + (1 - u) * width).
    """
    config = view_only_config(
        image_size, crop_min, color, antialias, interpolation, matmul_dtype, backend
    )
    view1, view2, rel_pos, boxes, _ = _views(image, seed, config)
    return view1, view2, rel_pos, boxes


def view_only_config(
    image_size: int,
    crop_min: float,
    color: bool,
    antialias: bool,
    interpolation: str,
    matmul_dtype: str,
    backend: str,
) -> ViewConfig:
    """A :class:`ViewConfig` for views alone: no token grid, no mask (one patch of S)."""
    return ViewConfig(
        image_size=image_size,
        patch_size=image_size,
        num_masked=0,
        crop_min=crop_min,
        color=color,
        antialias=antialias,
        interpolation=interpolation,
        matmul_dtype=matmul_dtype,
        backend=backend,
    )


def make_single_view(
    image: tf.Tensor,
    seed: int | tf.Tensor,
    image_size: int = 224,
    crop_min: float = 0.2,
    antialias: bool = True,
    interpolation: str = "bicubic",
    matmul_dtype: str = "auto",
    backend: str = "auto",
) -> tf.Tensor:
    """One flip + random resized crop view, no colour: float32 [S, S, 3], ImageNet-normalised.

    Equals view 1 of ``make_views(image, seed, color=False, ...)`` (same seed split), so a
    single-view method (MAE) and SiameseIM see the same geometry for the same sample seed.
    """
    config = view_only_config(
        image_size, crop_min, False, antialias, interpolation, matmul_dtype, backend
    )
    image = _checked(image)
    shape = tf.shape(image)
    plan = _plan(as_seed(seed), shape[0], shape[1], crop_min, (None,))
    (view,), _ = _render(image, plan, config, (None,), finish=True)
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
    per-batch work is left to :func:`finish_batch`: "mask_seed" int64 [2] instead of
    "mask" and, on the TF-op path, "view1_planes" / "view2_planes" float32 [3, S, S] in
    [0, 1] (not normalised, channels first) instead of "view1" / "view2".
    """
    view1, view2, rel_pos, _, finished = _views(image, seed, config, finish=with_mask)
    size = config.image_size
    rel_pos = tf.ensure_shape(rel_pos, [6])
    if not with_mask:
        views = (
            {"view1": view1, "view2": view2}
            if finished
            else {"view1_planes": view1, "view2_planes": view2}
        )
        shape = [size, size, 3] if finished else [3, size, size]
        views = {k: tf.ensure_shape(v, shape) for k, v in views.items()}
        return views | {"rel_pos": rel_pos, "mask_seed": mask_seed(seed)}
    return {
        "view1": tf.ensure_shape(view1, [size, size, 3]),
        "view2": tf.ensure_shape(view2, [size, size, 3]),
        "rel_pos": rel_pos,
        "mask": example_mask(seed, config),
    }


def finish_batch(batch: dict[str, tf.Tensor], config: ViewConfig) -> dict[str, tf.Tensor]:
    """Batch of ``make_example(..., with_mask=False)`` -> the batch contract: views
    normalised and made channels last, "mask_seed" int64 [B, 2] replaced by "mask" int32
    [B, N]. Equal to per-element ``make_example``; done per batch because one operation
    on B views costs far less than B operations (TF's per-operation overhead), and the
    masks are drawn in one Python call instead of B."""
    masks = masks_from_seeds(batch["mask_seed"], config.grid, config.num_masked)
    views = {
        name: batch[name] if name in batch else finish_views(batch[f"{name}_planes"])
        for name in ("view1", "view2")
    }
    return views | {"rel_pos": batch["rel_pos"], "mask": masks}
