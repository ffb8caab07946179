"""`siameseim pretrain`: self-supervised pretraining from a recipe in configs/.

TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse

from siameseim_tf.cli import UserError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="tiny",
        help="recipe name (see configs/: vit_base_1600ep, vit_large_1600ep, "
        "vit_base_1gpu, cpu_demo, tiny) or a path to a .py recipe",
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
    from siameseim_tf.recipes import RecipeError, load_recipe, switch_method

    try:
        config = load_recipe(args.config, args.overrides)
        if args.method and args.method != config.get("method", "siameseim"):
            config = switch_method(config, args.method)
    except RecipeError as error:
        raise UserError(str(error)) from None
    pretrain_from_recipe(config, args.data, args.output, limit=args.limit, tpu=args.tpu)
    return 0


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
    data: str | None,
    output: str,
    limit: int | None = None,
    verbose: int | str = 1,
    tpu: str | None = None,
):
    """Runs :func:`~siameseim_tf.training.pretrain.pretrain` for a validated recipe."""
    from siameseim_tf.recipes import model_arguments
    from siameseim_tf.training.pretrain import pretrain
    from siameseim_tf.training.strategy import select_strategy

    source = open_training_source(data, limit)
    train = dict(config.get("train", {}))
    train.setdefault("verbose", verbose)
    model, history = pretrain(
        source,
        output,
        method=config.get("method", "siameseim"),
        model_args=model_arguments(config),
        strategy=select_strategy(tpu=tpu),
        **train,
    )
    print(f"saved {output}/model.keras and {output}/encoder.keras")
    skipped = getattr(source, "report", None)
    if skipped is not None and skipped.count:
        print(skipped.summary())
    return model, history
