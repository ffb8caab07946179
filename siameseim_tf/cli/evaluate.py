"""`siameseim evaluate`: k-NN / linear probe / few-shot / fine-tune of an encoder checkpoint
(or of raw pixels) on a labelled dataset, results printed and optionally saved as JSON.

TensorFlow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import json
import os

from siameseim_tf.cli import UserError

DEFAULT_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "siameseim_tf", "features"
)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        help="a .keras file: a ViTEncoder, or a model with "
        "an .encoder attribute (e.g. the SiameseIM pretraining model)",
    )
    parser.add_argument(
        "--raw-pixels",
        action="store_true",
        help="evaluate resized, normalised, flattened pixels (baseline) instead of a checkpoint",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="evaluate the same architecture at its (seeded) random initialisation: the "
        "--checkpoint's, or the --config recipe's; the baseline pretraining must beat",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="with --random-init and no --checkpoint: the recipe whose encoder to build",
    )
    parser.add_argument(
        "--protocol",
        default="all",
        help="comma-separated list of knn, linear, fewshot, finetune; 'all' = "
        "knn,linear,fewshot (fine-tuning costs 100 epochs and runs only when named)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="IDX directory (MNIST layout) or image folder with class "
        "subfolders (optionally train/ and val|test/); default "
        "/usr/share/datasets/fashion-mnist",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input side S (default: the encoder's; 32 for raw pixels)",
    )
    parser.add_argument(
        "--limit-train",
        type=int,
        default=None,
        metavar="N",
        help="random subset (seeded) of N training images",
    )
    parser.add_argument(
        "--limit-test",
        type=int,
        default=None,
        metavar="N",
        help="random subset (seeded) of N test images",
    )
    parser.add_argument("--output", default=None, help="write the metrics as JSON here")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of the linear probe and fine-tuning (defaults 90 / 100)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="feature batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir",
        default=DEFAULT_CACHE,
        help=f"feature cache directory (default {DEFAULT_CACHE})",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not cache features")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _check_arguments(args: argparse.Namespace) -> None:
    from siameseim_tf.evaluation.protocols import resolve_protocols

    try:
        args.protocols = resolve_protocols(args.protocol)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.random_init and args.raw_pixels:
        raise UserError("give one of --random-init or --raw-pixels")
    random_from_config = args.random_init and args.config and not args.checkpoint
    if not random_from_config and bool(args.checkpoint) == bool(args.raw_pixels):
        raise UserError(
            "give exactly one of --checkpoint PATH, --raw-pixels or --random-init --config NAME"
        )
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise UserError(f"checkpoint not found: {args.checkpoint}")
    if args.data and not os.path.isdir(args.data):
        raise UserError(f"data directory not found: {args.data}")
    for name in ("limit_train", "limit_test", "epochs", "image_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.raw_pixels and args.protocols == ("finetune",):
        raise UserError("--protocol finetune needs --checkpoint (raw pixels cannot be tuned)")


def load_encoder(path: str):
    """The ViTEncoder of a .keras checkpoint (the model itself or its ``.encoder``)."""
    import importlib
    import pkgutil

    import keras

    import siameseim_tf.models as models
    from siameseim_tf.models import ViTEncoder

    for module in pkgutil.iter_modules(models.__path__):  # register every model class
        importlib.import_module(f"{models.__name__}.{module.name}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # any loading failure: a bad or foreign file
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise UserError(f"cannot load {path}: {message}") from error
    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, ViTEncoder):
        raise UserError(
            f"{path} holds a {type(encoder).__name__}, not a ViTEncoder "
            "(nor a model with one as .encoder)"
        )
    return encoder


def _subset(images, labels, limit, seed):
    import numpy as np

    if limit is None or limit >= len(images):
        return images, labels
    index = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
    return images[index], labels[index]


def random_init_encoder(encoder=None, config: str | None = None, seed: int = 0):
    """A ViTEncoder of ``encoder``'s architecture (or recipe ``config``'s) at a seeded
    random initialisation: the baseline that shows what pretraining bought."""
    import keras
    import numpy as np

    from siameseim_tf.models import ViTEncoder

    keras.utils.set_random_seed(seed)
    if encoder is not None:
        fresh = ViTEncoder.from_config(encoder.get_config())
    else:
        from siameseim_tf.recipes import RecipeError, load_recipe, model_arguments
        from siameseim_tf.training.pretrain import build_model

        try:
            recipe = load_recipe(config)
        except RecipeError as error:
            raise UserError(str(error)) from None
        fresh = build_model(recipe.get("method", "siameseim"), **model_arguments(recipe)).encoder
    size = fresh.image_size
    fresh(np.zeros((1, size, size, 3), np.float32), training=False)  # builds the weights
    return fresh


def run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    from siameseim_tf.evaluation.datasets import load_labelled
    from siameseim_tf.evaluation.features import resize_size
    from siameseim_tf.evaluation.protocols import evaluate

    encoder = load_encoder(args.checkpoint) if args.checkpoint else None
    if args.random_init:
        encoder = random_init_encoder(encoder, args.config, args.seed)
        print(f"[evaluate] random-init encoder (seed {args.seed}) of the same architecture")
    if encoder is not None and args.image_size not in (None, encoder.image_size):
        raise UserError(
            f"--image-size {args.image_size} differs from the encoder's "
            f"{encoder.image_size} (its position embedding is fixed)"
        )
    image_size = args.image_size or (encoder.image_size if encoder is not None else 32)
    try:
        train = load_labelled(args.data, "train", square_size=resize_size(image_size))
        test = load_labelled(args.data, "test", square_size=resize_size(image_size))
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from error
    train = _subset(*train, args.limit_train, args.seed)
    test = _subset(*test, args.limit_test, args.seed + 1)

    epochs = {} if args.epochs is None else {"epochs": args.epochs}
    try:
        results = evaluate(
            encoder,
            ",".join(args.protocols),
            train,
            test,
            image_size,
            batch_size=args.batch_size,
            cache_dir=None if args.no_cache else args.cache_dir,
            progress=not args.quiet,
            seed=args.seed,
            linear_options=dict(epochs),
            finetune_options=dict(epochs),
        )
    except ValueError as error:
        raise UserError(str(error)) from error
    results.update(
        checkpoint=args.checkpoint,
        random_init=args.random_init,
        data=args.data or "fashion-mnist (default)",
        protocol=args.protocol,
    )

    for name in ("knn", "linear", "fewshot", "finetune"):
        if name in results:
            print(f"{name:9s} top-1 {100 * results[name]['top1']:.2f} %")
    text = json.dumps(results, indent=2)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    return 0
