"""A recipe for the user's own data when ``--config`` is omitted.

The paper's recipe (ViT-B/16 at 224 px, 1600 ImageNet epochs) is the right one only at the
paper's scale. For a few thousand to a few hundred thousand images and a budget of
minutes to hours, the choice follows what docs/small_scale.md measured: the input size
follows the images (no upsampling of small images beyond the next multiple of the patch
grid), the run is sized in steps from the budget, and the short-run settings of the
``cpu_demo`` recipe apply (a higher learning rate than the paper's, warmup over a third
of the run, crops of at least 30 % of the image); momentum stays the paper's 0.995 -> 1.
"""

from __future__ import annotations

import copy

import numpy as np


def describe_source(source, sample: int = 64) -> tuple[int, int]:
    """(number of images, median shorter side of the first ``sample`` images)."""
    ds = source.raw(1, 0).take(4 * sample).map(source.decode)
    if source.may_fail:
        ds = ds.ignore_errors()
    sides = [min(int(image.shape[0]), int(image.shape[1])) for image in ds.take(sample)]
    if not sides:
        from siameseim_tf.data import BadInputError

        raise BadInputError(f"{source.name}: no decodable image found", source.name)
    return int(source.num_images or 0), int(np.median(sides))


# Below ~1000 steps the features are no better than at random init (docs/small_scale.md).
MIN_USEFUL_STEPS = 1200

# Short-run settings shared by every automatic choice (docs/small_scale.md).
_SHORT_RUN_TRAIN = dict(
    base_lr=1e-3,
    warmup_fraction=1 / 3,
    min_steps_per_epoch=50,
    weight_decay=0.05,
    crop_min=0.3,
    precision="auto",  # bf16 where the CPU has AMX-BF16, else float32 (hardware.py)
)
_SHORT_RUN_MODEL = dict(
    mlp_ratio=4.0,
    projector_depth=1,
    predictor_depth=2,
    clip_grad_norm=1.0,
    base_momentum=0.995,
)
# (largest shorter side, input size S, patch P, width E, depth, heads, decoder D, heads)
_SIZES = (
    (40, 28, 7, 192, 4, 3, 128, 4),
    (80, 64, 8, 192, 6, 3, 128, 4),
    (10**9, 96, 12, 192, 6, 3, 128, 4),
)


def auto_recipe(
    num_images: int, typical_side: int, budget_minutes: float | None = None
) -> tuple[dict, list[str]]:
    """(recipe, reasons): a SiameseIM recipe sized for the data and budget.

    Args:
        num_images: images in the pretraining set (0 when unknown).
        typical_side: median shorter side of the images, in pixels.
        budget_minutes: the user's wall-clock budget (None: 3 epochs' worth of steps).
    """
    row = next(row for row in _SIZES if typical_side <= row[0])
    _, size, patch, width, depth, heads, dim, dec_heads = row
    grid = size // patch
    num_patches = grid * grid
    batch = 256
    if num_images and num_images < 2560:  # keep >= ~10 steps per pass over the data
        batch = max(32, 1 << ((num_images // 10).bit_length() - 1))
    config = {
        "method": "siameseim",
        "model": dict(
            image_size=size,
            patch_size=patch,
            embed_dim=width,
            depth=depth,
            num_heads=heads,
            decoder_dim=dim,
            decoder_num_heads=dec_heads,
            num_masked_patches=int(round(0.6 * num_patches)),
            **copy.deepcopy(_SHORT_RUN_MODEL),
        ),
        "train": dict(global_batch_size=batch, **copy.deepcopy(_SHORT_RUN_TRAIN)),
    }
    reasons = [
        f"images: {num_images or 'unknown count'}, typical shorter side {typical_side} px "
        f"-> input {size} px, patch {patch} ({grid}x{grid} tokens, "
        f"{config['model']['num_masked_patches']} masked)",
        f"encoder: width {width}, {depth} blocks, {heads} heads; decoder width {dim}, "
        "projector 1 block, predictor 2 blocks (short-run sizes, docs/small_scale.md)",
        f"global batch {batch}, lr {_SHORT_RUN_TRAIN['base_lr']:g} x batch/256, "
        f"warmup {_SHORT_RUN_TRAIN['warmup_fraction']:.0%} of the run, momentum "
        f"{_SHORT_RUN_MODEL['base_momentum']} -> 1, crops of >= "
        f"{_SHORT_RUN_TRAIN['crop_min']:.0%} of the image",
    ]
    if budget_minutes:
        reasons.append(f"length: the {budget_minutes:g}-minute budget, converted to steps")
    else:
        steps = max(MIN_USEFUL_STEPS, 3 * (num_images // batch))
        config["train"]["total_steps"] = steps
        reasons.append(
            f"length: {steps} steps (3 epochs, at least {MIN_USEFUL_STEPS}); pass "
            "--budget-minutes N or --steps N to choose"
        )
    return config, reasons
