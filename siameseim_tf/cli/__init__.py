"""The `siameseim` command.

Each sub-command lives in its own module of this package exposing
``add_parser(subparsers)`` (registers its arguments, sets ``func``) and is listed in
``SUBCOMMANDS``. Modules are imported lazily so that `siameseim serve` never imports
TensorFlow. User mistakes raise :class:`UserError` and are printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("siameseim_tf.cli.pretrain", "pretrain an encoder with SiameseIM (or MAE)"),
    "evaluate": ("siameseim_tf.cli.evaluate", "linear probe / k-NN / few-shot / fine-tune"),
    "finetune": ("siameseim_tf.cli.finetune", "fine-tune an encoder on labelled images"),
    "export": ("siameseim_tf.cli.export", "export the encoder to SavedModel or ONNX"),
    "serve": ("siameseim_tf.cli.serve", "serve an exported ONNX encoder over HTTP"),
    "convert": ("siameseim_tf.cli.convert", "import an official PyTorch checkpoint"),
    "visualize-views": ("siameseim_tf.cli.visualize_views", "draw the two views and masks"),
    "demo": ("siameseim_tf.cli.demo", "pretrain, evaluate and export on Fashion-MNIST"),
    "doctor": ("siameseim_tf.cli.doctor", "what this machine will run (precision, XLA, kernels)"),
}


# Top-level module -> the extra of setup.py that installs it.
_EXTRA_OF = {
    "tensorflow": "tf",
    "keras": "tf",
    "keras_cv": "tf",
    "sklearn": "tf",
    "matplotlib": "tf",
    "tf2onnx": "export",
    "onnx": "export",
    "onnxruntime": "serving",
    "kserve": "serving",
    "torch": "torch",
}


class UserError(Exception):
    """A mistake of the user's (bad path, bad config key, ...): printed without traceback."""


def build_parser() -> argparse.ArgumentParser:
    from siameseim_tf import __version__

    parser = argparse.ArgumentParser(
        prog="siameseim", description="Siamese Image Modeling for Keras / TensorFlow."
    )
    parser.add_argument("--version", action="version", version=f"siameseim-tf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"siameseim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # an optional extra that is not installed
        extra = _EXTRA_OF.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"siameseim {args.command}: error: {error.name} is not installed: "
            f"pip install 'siameseim-tf[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"siameseim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
