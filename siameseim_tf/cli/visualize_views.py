"""`siameseim visualize-views`: draw both views, their boxes, the mask and rel_pos at work.

TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import os


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="image folder, IDX file/dir, TFRecord file/glob/dir or tfds:NAME[:DATA_DIR] "
        "(default: Fashion-MNIST IDX from /usr/share/datasets or ~/.keras/datasets)",
    )
    parser.add_argument("--output", default="views.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--num-samples", type=int, default=4, help="rows (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: %(default)s)")
    parser.add_argument(
        "--image-size", type=int, default=224, help="view size S (default: %(default)s)"
    )
    parser.add_argument(
        "--patch-size", type=int, default=16, help="patch size P (default: %(default)s)"
    )
    parser.add_argument(
        "--num-masked", type=int, default=118, help="masked patches M (default: %(default)s)"
    )
    parser.add_argument("--crop-min", type=float, default=0.2, help="(default: %(default)s)")
    parser.add_argument("--no-color", action="store_true", help="skip the colour pipelines")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from siameseim_tf.cli import UserError

    if args.num_samples < 1:
        raise UserError("--num-samples must be at least 1")
    if args.patch_size < 1 or args.image_size % args.patch_size:
        raise UserError(f"--image-size {args.image_size} is not a multiple of --patch-size")
    cells = (args.image_size // args.patch_size) ** 2
    if not 0 <= args.num_masked <= cells:
        raise UserError(f"--num-masked must be in [0, {cells}]")
    if (
        args.data is not None
        and not args.data.startswith("tfds:")
        and not os.path.exists(args.data)
    ):
        if not any(c in args.data for c in "*?["):
            raise UserError(f"--data path not found: {args.data}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    from siameseim_tf.cli import UserError
    from siameseim_tf.data import BadInputError, open_source, visualize_views

    try:
        source = open_source(args.data)
    except BadInputError as error:
        raise UserError(str(error)) from error
    ds = source.raw(1, 0).map(source.decode).ignore_errors().take(args.num_samples)
    images = [image.numpy() for image in ds]
    if not images:
        raise UserError(f"no decodable image in {source.name}")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    visualize_views(
        images,
        args.output,
        seed=args.seed,
        image_size=args.image_size,
        patch_size=args.patch_size,
        num_masked=args.num_masked,
        color=not args.no_color,
        crop_min=args.crop_min,
    )
    print(f"wrote {args.output} ({len(images)} samples from {source.name})")
    return 0
