"""Small-scale ablations of the pretraining recipe (docs/small_scale.md).

Each variant is a list of recipe overrides applied to a base recipe; each (variant, seed)
pretrains on the first ``--pretrain-limit`` training images for ``--steps`` optimizer
steps (or ``--budget-minutes`` of wall time), then the pooled features of the encoder are
scored with the linear probe and k-NN on a held-out split. The random-init encoder of the
same architecture and seed is scored alongside. One JSON line per run is appended to
``--output`` so that a long sweep keeps what it has measured.

Splits: ``--holdout val`` scores on training images the pretraining never saw
(tuning; ``--val-size`` images taken from the end of the train split), ``--holdout
test`` on the collection's test split (reporting only).

Command (one row of docs/small_scale.md):
    python benchmarks/small_scale.py --steps 400 --seeds 0,1 \\
        --variant "base:" --variant "m0.99:model.base_momentum=0.99" --output ablation.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="cpu_demo")
    parser.add_argument("--data", default=None, help="labelled IDX dir / folder (Fashion-MNIST)")
    parser.add_argument("--pretrain-limit", type=int, default=10000)
    parser.add_argument("--holdout", choices=("val", "test"), default="val")
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--eval-train-limit", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,KEY=VALUE",
        help="a named list of recipe overrides (repeatable); 'base:' for none",
    )
    parser.add_argument("--linear-epochs", type=int, default=30)
    parser.add_argument("--no-random-init", action="store_true")
    parser.add_argument(
        "--curve-every", type=int, default=0, help="online k-NN on the holdout every N steps"
    )
    parser.add_argument("--output", default="small_scale.jsonl")
    return parser.parse_args(argv)


def load_data(args, image_size):
    """(pretraining images, eval train (x, y), eval holdout (x, y))."""
    from siameseim_tf.data import load_labelled_split

    train_x, train_y = load_labelled_split(args.data, "train", image_size)
    if args.holdout == "val":
        held = (train_x[-args.val_size :], train_y[-args.val_size :])
        train_x, train_y = train_x[: -args.val_size], train_y[: -args.val_size]
    else:
        held = load_labelled_split(args.data, "test", image_size)
    pretrain_x = train_x[: args.pretrain_limit]
    limit = args.eval_train_limit
    return pretrain_x, (train_x[:limit], train_y[:limit]), held


def score(encoder, train, held, image_size, args, seed, cache_dir):
    from siameseim_tf.evaluation import evaluate

    out = {}
    for protocol in ("linear", "knn"):
        result = evaluate(
            encoder,
            protocol,
            train,
            held,
            image_size,
            batch_size=1024,
            cache_dir=cache_dir,
            progress=False,
            seed=seed,
            linear_options={"epochs": args.linear_epochs, "batch_size": 1024},
        )
        out[protocol] = round(100.0 * result[protocol]["top1"], 2)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from siameseim_tf.demo.runner import random_encoder
    from siameseim_tf.recipes import apply_override, load_recipe, model_arguments, validate
    from siameseim_tf.training.pretrain import pretrain

    base = load_recipe(args.config)
    work = tempfile.mkdtemp(prefix="small_scale_")
    variants = args.variant or ["base:"]
    for spec in variants:
        name, _, items = spec.partition(":")
        config = copy.deepcopy(base)
        for item in filter(None, items.split(",")):
            apply_override(config, item)
        validate(config, name)
        image_size = model_arguments(config)["image_size"]
        pretrain_x, train, held = load_data(args, image_size)
        for seed in map(int, args.seeds.split(",")):
            import keras

            from siameseim_tf.data import array_source

            train_args = dict(config["train"])
            train_args.pop("epochs", None)
            train_args.pop("budget_minutes", None)
            train_args.update(seed=seed, verbose=0)
            if args.steps:
                train_args["total_steps"] = args.steps
            if args.budget_minutes:
                train_args["budget_minutes"] = args.budget_minutes
            run_dir = os.path.join(work, f"{name}_{seed}")
            source = array_source(pretrain_x, name="ablation")
            curve, extra = None, []
            if args.curve_every:
                from siameseim_tf.evaluation.features import preprocess_uint8
                from siameseim_tf.training.monitors import FeatureMonitor
                from siameseim_tf.training.pretrain import probe_images

                n = min(len(held[0]), 4000)
                labelled = (preprocess_uint8(held[0][:n], image_size), held[1][:n])
                probe = probe_images(source, image_size)
                curve = FeatureMonitor(probe, labelled, args.curve_every, log=lambda *a: None)
                extra = [curve]
            start = time.perf_counter()
            model, history = pretrain(
                source,
                run_dir,
                method=config.get("method", "siameseim"),
                model_args=model_arguments(config),
                monitors=False,
                extra_callbacks=extra,
                **train_args,
            )
            seconds = time.perf_counter() - start
            losses = history.history.get("loss", [])
            row = {
                "variant": name,
                "overrides": items,
                "seed": seed,
                "steps": int(model.optimizer.iterations.numpy()),
                "pretrain_seconds": round(seconds, 1),
                "loss_last": round(float(losses[-1]), 4) if losses else None,
                "pretrained": score(model.encoder, train, held, image_size, args, seed, None),
            }
            if not args.no_random_init:
                encoder = random_encoder(config, seed)
                row["random_init"] = score(encoder, train, held, image_size, args, seed, None)
            if curve is not None:
                row["curve"] = [
                    {k: round(float(v), 4) for k, v in point.items()} for point in curve.history
                ]
            row["data"] = args.data or "fashion-mnist"
            row["holdout"] = args.holdout
            print(json.dumps(row), flush=True)
            with open(args.output, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
