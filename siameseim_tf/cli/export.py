"""`siameseim export`: a trained encoder to a TF Serving SavedModel and / or ONNX."""

from __future__ import annotations

import argparse
import os

from siameseim_tf.cli import UserError

FORMATS = ("saved_model", "onnx", "litert", "both")  # both = saved_model + onnx


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Registers the arguments of `siameseim export`."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        help=".keras file holding a ViTEncoder or a model with an .encoder",
    )
    parser.add_argument("--format", choices=FORMATS, default="both")
    parser.add_argument(
        "--output",
        required=True,
        help="output directory: SavedModel in <output>/<name>/<version>/, "
        "ONNX in <output>/<name>.onnx, LiteRT in <output>/<name>.tflite",
    )
    parser.add_argument("--name", default="siameseim", help="model name (default: siameseim)")
    parser.add_argument("--version", type=int, default=1, help="model version (default: 1)")
    parser.add_argument(
        "--quantize",
        action="store_true",
        help="also write <name>.int8.onnx (dynamic int8, per-channel, reduced range) and "
        "report its agreement; refused (fp32 kept) below --int8-min-cosine",
    )
    parser.add_argument(
        "--int8-min-cosine",
        default=None,
        metavar="EMB,CLS",
        help="the int8 file's minimum cosine to fp32 for embedding and cls (default 0.995,0.99)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="max |diff| allowed between export and Keras encoder",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing SavedModel version directory"
    )
    parser.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    if not os.path.isfile(args.checkpoint):
        raise UserError(f"checkpoint {args.checkpoint!r} does not exist")
    if not args.checkpoint.endswith(".keras"):
        raise UserError(f"checkpoint must be a .keras file, got {args.checkpoint!r}")
    if args.version < 1:
        raise UserError(f"--version must be a positive integer, got {args.version}")
    if args.quantize and args.format in ("saved_model", "litert"):
        raise UserError("--quantize applies to ONNX: use --format onnx or both")
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise UserError(f"--name must be a plain name, got {args.name!r}")


def run(args: argparse.Namespace) -> int:
    """Loads the checkpoint, exports, and prints where the files went."""
    _check_args(args)
    from siameseim_tf.export.common import is_classifier, load_exportable
    from siameseim_tf.serving.contract import ONNX_OPSET

    # A fine-tuned classifier.keras exports with class probabilities; anything else as
    # its encoder.
    encoder = load_exportable(args.checkpoint)
    if is_classifier(encoder) and args.format == "litert":
        encoder = encoder.encoder  # LiteRT: the embedding outputs only
    if not hasattr(encoder, "image_size"):
        raise UserError(f"{args.checkpoint} holds no ViTEncoder (found {type(encoder).__name__})")
    if args.format in ("saved_model", "both"):
        from siameseim_tf.export.saved_model import export_saved_model

        try:
            path = export_saved_model(
                encoder,
                args.output,
                args.name,
                args.version,
                overwrite=args.overwrite,
                atol=args.atol,
            )
        except FileExistsError as error:
            raise UserError(f"{error} (use --overwrite or another --version)") from error
        print(f"SavedModel: {path}")
    if args.format in ("onnx", "both"):
        from siameseim_tf.export.onnx import Int8AccuracyError, export_onnx

        floors = None
        if args.int8_min_cosine:
            try:
                embedding, cls = (float(v) for v in args.int8_min_cosine.split(","))
            except ValueError:
                raise UserError("--int8-min-cosine takes two numbers: EMB,CLS") from None
            floors = {"embedding": embedding, "cls": cls}
        # Raises ExportVerificationError (with a traceback) if ONNX Runtime disagrees.
        try:
            result = export_onnx(
                encoder,
                os.path.join(args.output, f"{args.name}.onnx"),
                args.name,
                args.version,
                opset=args.opset or ONNX_OPSET,
                quantize=args.quantize,
                int8_min_cosine=floors,
                atol=args.atol,
            )
        except Int8AccuracyError as error:
            raise UserError(str(error)) from None
        print(f"ONNX: {result.path}")
        if result.int8_path:
            print(f"ONNX int8: {result.int8_path}")
    if args.format == "litert":
        from siameseim_tf.export.litert import export_litert

        path = export_litert(encoder, os.path.join(args.output, f"{args.name}.tflite"), args.atol)
        print(f"LiteRT: {path}")
    return 0
