"""`siameseim doctor`: what this machine will run, and why, before a long run starts.

Prints the decisions ``pretrain`` takes at start-up (precision, XLA or graph mode, the C++
kernels, devices; :mod:`siameseim_tf.training.machine`) and what ``serve --device auto``
would use. TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import json
import os


def add_parser(parser: argparse.ArgumentParser) -> None:
    from siameseim_tf.hardware import PRECISIONS

    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the precision a run would ask for (default: %(default)s, decided here)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def _onnxruntime_line():
    from siameseim_tf.training.machine import Finding

    try:
        import onnxruntime
    except ImportError:
        return Finding("onnxruntime", "not installed (pip install 'siameseim-tf[serving]')")
    from siameseim_tf.serving.runtime import providers_for

    available = onnxruntime.get_available_providers()
    chosen = providers_for("auto", available)[0]
    return Finding(
        "onnxruntime",
        f"{onnxruntime.__version__}; serve --device auto uses {chosen} "
        f"(available: {', '.join(available)})",
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from siameseim_tf.training.machine import format_report, machine_report

    lines = [*machine_report(args.precision), _onnxruntime_line()]
    if args.json:
        print(json.dumps([vars(f) for f in lines], indent=1))
    else:
        print(format_report(lines))
    return 0
