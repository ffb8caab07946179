"""`siameseim pretrain`: self-supervised pretraining from a recipe in configs/.

TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import os

from siameseim_tf.cli import UserError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="recipe name (see configs/: vit_base_1600ep, vit_large_1600ep, "
        "vit_base_1gpu, cpu_demo, tiny) or a path to a .py recipe; default: a recipe "
        "chosen for your data and budget (printed with the reasons)",
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        metavar="N",
        help="train for N minutes of wall time: the step time is measured after "
        "compilation and the lr / momentum schedules are sized to end with the budget",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="train for exactly N optimizer steps (overrides the recipe's epochs)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seeds init, data, views, masks")
    parser.add_argument(
        "--monitor-data",
        default=None,
        metavar="DIR",
        help="labelled folder (class subfolders) or IDX dir: online k-NN accuracy on up "
        "to 2000 of its images is logged every epoch",
    )
    parser.add_argument(
        "--no-monitors",
        action="store_true",
        help="skip the collapse monitors (feature std, effective rank)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="image folder (recursive), IDX file/folder, *.tfrecord files, or "
        "tfds:NAME[:DATA_DIR]; default: Debian's Fashion-MNIST",
    )
    parser.add_argument("--output", required=True, help="run directory (resumes if it exists)")
    parser.add_argument(
        "--method",
        choices=("siameseim", "mae"),
        default=None,
        help="override the recipe's method (same encoder, same budget)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a recipe value, e.g. --set train.epochs=10 --set model.depth=6 (repeatable)",
    )
    parser.add_argument(
        "--tpu",
        default=None,
        metavar="ADDRESS",
        help="train on a TPU ('local' or its address) with TPUStrategy",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N images (arrays/IDX sources)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from siameseim_tf.recipes import RecipeError, apply_override, load_recipe, switch_method

    for name in ("budget_minutes", "steps"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    data = training_folder(args.data)
    source = open_training_source(data, args.limit)
    try:
        if args.config is None:
            from siameseim_tf.recipes_auto import auto_recipe, describe_source

            config, reasons = auto_recipe(
                *describe_source(source), budget_minutes=args.budget_minutes
            )
            print("[pretrain] no --config: chose a recipe for this data and budget")
            for reason in reasons:
                print(f"[pretrain]   {reason}")
            for item in args.overrides:
                apply_override(config, item)
        else:
            config = load_recipe(args.config, args.overrides)
        if args.method and args.method != config.get("method", "siameseim"):
            config = switch_method(config, args.method)
    except RecipeError as error:
        raise UserError(str(error)) from None
    train = config.setdefault("train", {})
    if args.steps is not None:
        train["total_steps"] = args.steps
    if args.budget_minutes is not None:
        train["budget_minutes"] = args.budget_minutes
    if args.seed is not None:
        train["seed"] = args.seed
    if args.no_monitors:
        train["monitors"] = False
    if args.monitor_data:
        train["monitor_data"] = monitor_holdout(args.monitor_data, config)
    pretrain_from_recipe(config, source, args.output, tpu=args.tpu)
    return 0


def training_folder(data: str | None) -> str | None:
    """``ROOT`` with ``train/`` and ``test/`` inside -> ``ROOT/train``; never test images.

    A ROOT holding only ``test/`` or ``val/`` beside other folders is refused: training on
    it would mix the evaluation images into pretraining.
    """
    import os

    if data is None or not os.path.isdir(data):
        return data
    held_out = [name for name in ("test", "val") if os.path.isdir(os.path.join(data, name))]
    if os.path.isdir(os.path.join(data, "train")):
        if held_out:
            print(
                f"[pretrain] using {os.path.join(data, 'train')} ({'/'.join(held_out)}/ "
                "left for evaluation)"
            )
        return os.path.join(data, "train")
    if held_out:
        raise UserError(
            f"{data} holds {held_out[0]}/ but no train/: pass the folder of training images "
            "(pretraining never reads test images)"
        )
    return data


def monitor_holdout(path: str, config: dict, limit: int = 2000):
    """(uint8 images, labels) of up to ``limit`` labelled images for the online k-NN."""
    import numpy as np

    from siameseim_tf.evaluation.datasets import load_labelled
    from siameseim_tf.evaluation.features import resize_size
    from siameseim_tf.recipes import model_arguments

    size = model_arguments(config)["image_size"]
    try:
        images, labels = load_labelled(path, "test", square_size=resize_size(size))
    except (FileNotFoundError, ValueError) as error:
        raise UserError(f"--monitor-data: {error}") from None
    keep = np.random.default_rng(0).permutation(len(images))[:limit]
    return images[keep], labels[keep]


def open_training_source(data: str | None, limit: int | None = None):
    """The pretraining source for ``--data`` (bad paths become one-line errors)."""
    from siameseim_tf.data import BadInputError, array_source, load_idx_split, open_source

    try:
        if limit is not None and (data is None or "idx" in str(data)):
            images, _ = load_idx_split(data, "train")
            return array_source(images[:limit], name=f"{data or 'fashion-mnist'}[:{limit}]")
        return open_source(data)
    except (BadInputError, FileNotFoundError) as error:
        raise UserError(str(error)) from None


def pretrain_from_recipe(
    config: dict,
    data,
    output: str,
    limit: int | None = None,
    verbose: int | str = 1,
    tpu: str | None = None,
):
    """Runs :func:`~siameseim_tf.training.pretrain.pretrain` for a validated recipe.

    ``data``: an ImageSource, or what ``--data`` accepts.
    """
    from siameseim_tf.data import BadInputError, ImageSource
    from siameseim_tf.recipes import model_arguments
    from siameseim_tf.training.pretrain import pretrain
    from siameseim_tf.training.run_length import RunPlanError
    from siameseim_tf.training.strategy import select_strategy

    source = data if isinstance(data, ImageSource) else open_training_source(data, limit)
    train = dict(config.get("train", {}))
    train.setdefault("verbose", verbose)
    try:
        model, history = pretrain(
            source,
            output,
            method=config.get("method", "siameseim"),
            model_args=model_arguments(config),
            strategy=select_strategy(tpu=tpu),
            **train,
        )
    except (RunPlanError, BadInputError) as error:  # e.g. fewer images than one batch
        raise UserError(str(error)) from None
    if history is None:  # a finished run: nothing was trained
        return model, history
    if not os.path.isfile(os.path.join(output, "finished.json")):
        print(f"stopped before the end (SIGTERM): {output} resumes with the same command")
        return model, history
    print(f"saved {output}/model.keras and {output}/encoder.keras")
    skipped = getattr(source, "report", None)
    if skipped is not None and skipped.count:
        print(skipped.summary())
    return model, history
