"""`siameseim convert`: the authors' PyTorch checkpoint (.pth) -> Keras (.keras).

TensorFlow (and PyTorch, to read the file) are imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from siameseim_tf.cli import UserError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="official .pth file ({'model': state_dict}); needs PyTorch",
    )
    parser.add_argument("--output", required=True, help="directory for the .keras files")
    parser.add_argument(
        "--num-heads",
        type=int,
        required=True,
        help="encoder heads (12 for ViT-B, 16 for ViT-L/H): not in the file",
    )
    parser.add_argument(
        "--decoder-num-heads",
        type=int,
        default=16,
        help="projector / predictor heads (default 16, as the paper)",
    )
    parser.add_argument(
        "--num-masked-patches",
        type=int,
        default=None,
        help="M for further pretraining (118 in the ViT-B recipe)",
    )
    parser.add_argument(
        "--encoder-only",
        action="store_true",
        help="a fine-tuned (or any timm ViT) checkpoint: encoder (+ head)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from siameseim_tf.convert import (
        CheckpointError,
        encoder_from_official_state_dict,
        from_official_state_dict,
        load_pth,
    )

    output = Path(args.output)
    try:
        state_dict = load_pth(args.checkpoint)
        if args.encoder_only:
            encoder, head = encoder_from_official_state_dict(state_dict, args.num_heads)
        else:
            overrides = {}
            if args.num_masked_patches is not None:
                overrides["num_masked_patches"] = args.num_masked_patches
            model = from_official_state_dict(
                state_dict, args.num_heads, args.decoder_num_heads, **overrides
            )
            encoder, head = model.encoder, None
    except (ImportError, FileNotFoundError, CheckpointError) as error:
        raise UserError(str(error)) from None
    output.mkdir(parents=True, exist_ok=True)
    if not args.encoder_only:
        model.save(output / "model.keras")
        print(f"wrote {output / 'model.keras'} (SiameseIM: online, target, statistics)")
    encoder.save(output / "encoder.keras")
    print(f"wrote {output / 'encoder.keras'} (ViTEncoder)")
    if head is not None:
        import keras

        classifier = keras.Sequential([keras.Input((head.kernel.shape[0],)), head])
        classifier.save(output / "head.keras")
        print(f"wrote {output / 'head.keras'} (classifier on the pooled feature)")
    return 0
