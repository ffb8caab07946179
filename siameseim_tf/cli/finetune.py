"""`siameseim finetune`: fine-tune a pretrained encoder on labelled images (method §7).

TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import json
import os

from siameseim_tf.cli import UserError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="encoder.keras / model.keras of a pretraining run (or a converted official "
        "checkpoint); a classifier.keras is fine-tuned again from its encoder",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="labelled data: ROOT with train/ and test/ (or val/) class folders, "
        "ROOT/CLASS/image (train only), an IDX folder with labels, TFRecords with "
        "image/class/label, or tfds:NAME[:DATA_DIR]",
    )
    parser.add_argument("--output", required=True, help="run directory (resumes if it exists)")
    parser.add_argument(
        "--config",
        default="finetune_cpu",
        help="fine-tuning recipe (configs/finetune_*.py: finetune_vit_base is the paper's, "
        "finetune_cpu the default, finetune_tiny for smoke tests) or a .py path",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=None, metavar="N")
    length.add_argument("--steps", type=int, default=None, metavar="N")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        metavar="N",
        help="train for N minutes (schedules sized to end with the budget)",
    )
    parser.add_argument("--seed", type=int, default=None, help="head init, data, augmentation")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="fine-tune the checkpoint's architecture from random weights (seeded): the "
        "baseline that shows what pretraining bought",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="train.KEY=VALUE",
        help="override a recipe value, e.g. --set train.global_batch_size=64 (repeatable)",
    )
    parser.set_defaults(func=run)


def _positive(args: argparse.Namespace) -> None:
    for name in ("epochs", "steps", "budget_minutes"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


def load_pretrained_encoder(path: str, random_init: bool = False, seed: int = 0):
    """The encoder of a ``.keras`` file; with ``random_init`` the same architecture with
    fresh (seeded) weights."""
    import keras

    from siameseim_tf.export.common import load_encoder

    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise UserError(f"--checkpoint must be an existing .keras file, got {path!r}")
    encoder = load_encoder(path)
    if not hasattr(encoder, "embed_dim"):
        raise UserError(f"{path} holds no ViT encoder (found {type(encoder).__name__})")
    if random_init:
        keras.utils.set_random_seed(seed)
        config = {k: v for k, v in encoder.get_config().items() if k != "name"}
        encoder = type(encoder).from_config(config)
    return encoder


def run(args: argparse.Namespace) -> int:
    _positive(args)
    from siameseim_tf.data import BadInputError
    from siameseim_tf.data.loaders import open_labelled_source
    from siameseim_tf.evaluation.finetune import finetune
    from siameseim_tf.recipes import RecipeError, is_finetune, load_recipe
    from siameseim_tf.training.run_length import RunPlanError

    try:
        config = load_recipe(args.config, args.overrides)
    except RecipeError as error:
        raise UserError(str(error)) from None
    if not is_finetune(config):
        raise UserError(f"{args.config} is a pretraining recipe; use a finetune_* config")
    train = dict(config.get("train", {}))
    if args.epochs is not None or args.steps is not None:
        train["epochs"], train["total_steps"] = args.epochs, args.steps
    if args.budget_minutes is not None:
        train["budget_minutes"] = args.budget_minutes
        if args.epochs is None and args.steps is None:
            train["epochs"] = None  # the budget alone sizes the run
    if args.seed is not None:
        train["seed"] = args.seed
    encoder = load_pretrained_encoder(args.checkpoint, args.random_init, train.get("seed", 0))
    try:
        train_source = open_labelled_source(args.data, "train")
        try:
            test_source = open_labelled_source(args.data, "test")
        except BadInputError as error:
            print(f"[finetune] no test split ({error}): training only")
            test_source = None
        model, metrics = finetune(
            encoder, train_source, args.output, test_source=test_source, **train
        )
    except (BadInputError, RunPlanError) as error:
        raise UserError(str(error)) from None
    if not metrics:
        print(f"stopped before the end (SIGTERM): {args.output} resumes with the same command")
        return 0
    summary = {k: metrics.get(k) for k in ("top1", "test_loss", "steps", "train_images_per_second")}
    print(json.dumps(summary))
    print(f"saved {args.output}/classifier.keras and {args.output}/metrics.json")
    return 0
