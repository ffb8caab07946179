"""`siameseim demo`: pretrain a small ViT with SiameseIM on Fashion-MNIST (2 CPU cores,
~15 min; ``--quick`` < 2 min), evaluate it against its random-init self and raw pixels,
export it (SavedModel + ONNX) and write results.json + report.png.

TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from siameseim_tf.cli import UserError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="run directory (default runs/demo)")
    parser.add_argument(
        "--data",
        default=None,
        help="IDX directory (MNIST layout) or image folder with class sub-folders "
        "(optionally train/ and test/); default: Debian's Fashion-MNIST",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help="override pretraining epochs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the whole path in under 2 minutes (tiny model, subsets; for tests)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="demo recipe (default cpu_demo, or cpu_demo_quick with --quick) or a .py path",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a recipe value, e.g. --set train.base_lr=5e-4 (repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from siameseim_tf.data import BadInputError
    from siameseim_tf.demo.runner import run_demo
    from siameseim_tf.demo.settings import load_demo_recipe
    from siameseim_tf.recipes import RecipeError

    try:
        config, settings = load_demo_recipe(args.config, args.quick, args.overrides)
    except RecipeError as error:
        raise UserError(str(error)) from None
    if args.epochs is not None:
        if args.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {args.epochs}")
        config["train"]["epochs"] = args.epochs
    command = "siameseim " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        run_demo(args.output, config, settings, args.data, args.seed, command)
    except (BadInputError, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    return 0
