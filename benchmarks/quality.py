"""Representation quality at a fixed wall-clock budget: SiameseIM vs MAE (same encoder) vs
the random-init encoder vs raw pixels, on Fashion-MNIST (or any labelled IDX / folder).

Each method trains with ``budget_minutes``: pretrain() measures its step time after
compilation and sizes the learning-rate / momentum schedules to end when the budget is
spent (siameseim_tf/training/run_length.py). Steps actually done are recorded.

Command (the run in docs/quality.md):
    python benchmarks/quality.py --budget-minutes 10 --output quality.json \\
        --markdown docs/quality.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import tempfile
import time

METHOD_NAMES = {"siameseim": "SiameseIM", "mae": "MAE"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="per method")
    parser.add_argument("--methods", default="siameseim,mae", help="comma-separated")
    parser.add_argument("--config", default="cpu_demo", help="SiameseIM recipe (the encoder)")
    parser.add_argument(
        "--mae-set",
        action="append",
        default=["model.decoder_depth=3", "model.mask_ratio=0.75"],
        metavar="SECTION.KEY=VALUE",
        help="overrides of the MAE recipe (default: decoder depth 3 = SiameseIM's projector "
        "+ predictor, mask ratio 0.75 as MAE)",
    )
    parser.add_argument("--data", default=None, help="labelled IDX dir / folder (Fashion-MNIST)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--linear-epochs", type=int, default=30)
    parser.add_argument("--eval-train-limit", type=int, default=None)
    parser.add_argument("--eval-test-limit", type=int, default=None)
    parser.add_argument("--work-dir", default=None, help="runs and feature cache (default tmp)")
    parser.add_argument("--output", default="quality.json", help="JSON results")
    parser.add_argument("--markdown", default=None, help="write the table here (docs/quality.md)")
    return parser.parse_args(argv)


def method_recipe(base: dict, method: str, mae_overrides: list[str]) -> dict:
    """The SiameseIM recipe, or the same encoder trained with MAE (plus MAE overrides)."""
    from siameseim_tf.recipes import apply_override, switch_method, validate

    if method == "siameseim":
        return copy.deepcopy(base)
    config = switch_method(base, method)
    for item in mae_overrides:
        apply_override(config, item)
    validate(config, f"{method} recipe")
    return config


def train_method(config: dict, images, work_dir: str, args) -> tuple:
    """Pretrains for the budget (pretrain() sizes the schedules from the measured step
    time); returns (encoder, summary)."""
    from siameseim_tf.demo.runner import pretrain_encoder
    from siameseim_tf.demo.settings import DemoSettings

    config = copy.deepcopy(config)
    train = config["train"]
    if "epochs" in train and "warmup_fraction" not in train:
        train["warmup_fraction"] = train.get("warmup_epochs", 0) / max(train["epochs"], 1)
    train.pop("epochs", None)
    train.update(budget_minutes=args.budget_minutes, verbose=2)
    settings = DemoSettings(budget_minutes=args.budget_minutes * 1.05)  # safety net only
    encoder, summary, losses = pretrain_encoder(
        config, images, os.path.join(work_dir, config["method"]), settings, args.seed
    )
    summary.update(config=config)
    summary["loss_first_last"] = [losses[0], losses[-1]] if losses else []
    return encoder, summary


def markdown(results: dict) -> str:
    """docs/quality.md: the table, the command and the run's facts."""
    from siameseim_tf.demo.compare import results_table

    lines = [
        "# Representation quality at a fixed compute budget",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Budget: **{results['budget_minutes']:g} min wall clock per method** on 2 shared "
        f"CPU cores; pretraining on {results['num_pretrain']} images, evaluation on "
        f"{results['num_train']} train / {results['num_test']} test images (top-1 %).",
        "",
        results_table(results["top1"]),
        "",
        "| method | steps done | training time (s) | median s/step | epochs of the data | "
        "final loss |",
        "|---|---|---|---|---|---|",
    ]
    for method, run in results["pretraining"].items():
        seen = run["steps"] * run["config"]["train"]["global_batch_size"] / run["images"]
        lines.append(
            f"| {METHOD_NAMES[method]} | {run['steps']} | {run['seconds']:.0f} | "
            f"{run['seconds_per_step']:.3f} | {seen:.2f} | {run['final_epoch_loss']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from siameseim_tf.demo.compare import evaluate_features, results_table, top1_table
    from siameseim_tf.demo.runner import load_splits, random_encoder
    from siameseim_tf.demo.settings import DemoSettings, load_demo_recipe
    from siameseim_tf.recipes import model_arguments

    start = time.perf_counter()
    base, _ = load_demo_recipe(args.config)
    image_size = model_arguments(base)["image_size"]
    limits = DemoSettings(
        eval_train_limit=args.eval_train_limit, eval_test_limit=args.eval_test_limit
    )
    images, train, test = load_splits(args.data, image_size, limits, args.seed)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="quality_")
    extractors, pretraining = {}, {}
    for method in args.methods.split(","):
        config = method_recipe(base, method, args.mae_set)
        encoder, pretraining[method] = train_method(config, images, work_dir, args)
        extractors[METHOD_NAMES[method]] = encoder
    extractors["random init"] = random_encoder(base, args.seed)
    extractors["raw pixels"] = None
    details = evaluate_features(
        extractors,
        train,
        test,
        image_size,
        cache_dir=os.path.join(work_dir, "features"),
        seed=args.seed,
        linear_options={"epochs": args.linear_epochs, "batch_size": 1024},
    )
    command = " ".join(map(shlex.quote, argv if argv is not None else sys.argv[1:]))
    results = {
        "command": f"python benchmarks/quality.py {command}",
        "budget_minutes": args.budget_minutes,
        "num_pretrain": int(len(images)),
        "num_train": int(len(train[0])),
        "num_test": int(len(test[0])),
        "top1": top1_table(details),
        "details": details,
        "pretraining": pretraining,
        "seconds": round(time.perf_counter() - start, 1),
    }
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2, default=str)
    print("\n" + results_table(results["top1"]))
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
