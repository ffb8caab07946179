"""The demo from end to end: data -> SiameseIM pretraining -> evaluation of the pretrained
encoder, its random-init self and raw pixels -> SavedModel + ONNX export -> report."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from siameseim_tf.demo.settings import DemoSettings

PROJECTION_NAMES = {"tsne": "t-SNE", "pca": "PCA"}


def load_splits(data: str | None, image_size: int, settings: DemoSettings, seed: int):
    """(pretraining images, (train x, y), (test x, y)); evaluation subsets are seeded."""
    from siameseim_tf.data import load_labelled_split

    train_x, train_y = load_labelled_split(data, "train", image_size)
    test_x, test_y = load_labelled_split(data, "test", image_size)
    pretrain_x = train_x[: settings.pretrain_limit]
    rng = np.random.default_rng(seed)

    def subset(x, y, limit):
        if limit is None or limit >= len(x):
            return x, y
        keep = np.sort(rng.choice(len(x), limit, replace=False))
        return x[keep], y[keep]

    return (
        pretrain_x,
        subset(train_x, train_y, settings.eval_train_limit),
        subset(test_x, test_y, settings.eval_test_limit),
    )


def random_encoder(config: dict, seed: int):
    """The recipe's encoder at initialisation (seeded as the pretraining run)."""
    import keras

    from siameseim_tf.recipes import model_arguments
    from siameseim_tf.training.pretrain import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(config.get("method", "siameseim"), **model_arguments(config))
    encoder = model.encoder
    size = encoder.image_size
    encoder(np.zeros((1, size, size, 3), np.float32), training=False)  # builds the weights
    return encoder


def pretrain_encoder(config: dict, images: np.ndarray, output: str, settings, seed: int):
    """Pretrains on ``images``; returns (encoder, summary dict, per-step losses)."""
    import shutil

    import keras

    from siameseim_tf.data import array_source
    from siameseim_tf.demo.callbacks import LossRecorder, TimeBudget
    from siameseim_tf.recipes import model_arguments
    from siameseim_tf.training.pretrain import pretrain

    if os.path.isdir(output):  # a fresh run: pretrain() would resume from output/checkpoints
        shutil.rmtree(output)
    budget_seconds = settings.budget_minutes and 60.0 * settings.budget_minutes
    budget, recorder = TimeBudget(budget_seconds), LossRecorder()
    train = dict(config.get("train", {}), seed=seed)
    keras.utils.set_random_seed(seed)
    model, history = pretrain(
        array_source(images, name=f"demo[{len(images)}]"),
        output,
        method=config.get("method", "siameseim"),
        model_args=model_arguments(config),
        extra_callbacks=[budget, recorder],
        **train,
    )
    summary = {
        "images": int(len(images)),
        "epochs_planned": train.get("epochs"),
        "budget_minutes": train.get("budget_minutes"),
        "epochs_done": len(history.history.get("loss", [])),
        "steps": budget.steps,
        "seconds": round(budget.elapsed, 1),
        "seconds_per_step": round(budget.seconds_per_step(), 4),
        "budget_exhausted": budget.exhausted,
        "final_epoch_loss": float(history.history["loss"][-1]),
    }
    return model.encoder, summary, recorder.losses


def export_encoder(encoder, directory: str) -> dict[str, Any]:
    """SavedModel and ONNX exports, each verified against the Keras encoder."""
    from siameseim_tf.export.onnx import export_onnx
    from siameseim_tf.export.saved_model import export_saved_model

    saved = export_saved_model(encoder, os.path.join(directory, "saved_model"), overwrite=True)
    onnx = export_onnx(encoder, os.path.join(directory, "siameseim.onnx"))
    return {
        "saved_model": saved,
        "onnx": onnx.path,
        "onnx_parity": {name: str(value) for name, value in onnx.parity.items()},
    }


def report_inputs(encoder, train, test, image_size, cache_dir, settings, seed):
    """Embedding projection and retrieval-grid inputs from the pretrained encoder."""
    from siameseim_tf.demo.report import nearest_neighbours, project_2d
    from siameseim_tf.evaluation import extract_features

    train_f, test_f = (
        extract_features(encoder, x, image_size, 1024, cache_dir)["pooled"]
        for x in (train[0], test[0])
    )
    rng = np.random.default_rng(seed)
    shown = rng.choice(len(test_f), min(settings.embedding_points, len(test_f)), replace=False)
    print(f"[demo] {settings.projection} of {len(shown)} test embeddings", flush=True)
    embedding = {
        "points": project_2d(test_f[shown], settings.projection, seed),
        "labels": test[1][shown],
        "title": f"{PROJECTION_NAMES[settings.projection]} of pretrained test embeddings (pooled)",
    }
    queries = rng.choice(len(test_f), settings.retrieval_queries, replace=False)
    retrieval = {
        "query_images": test[0][queries],
        "query_labels": test[1][queries],
        "bank_images": train[0],
        "bank_labels": train[1],
        "indices": nearest_neighbours(test_f[queries], train_f, settings.retrieval_neighbours),
    }
    return embedding, retrieval


def run_demo(
    output: str,
    config: dict,
    settings: DemoSettings,
    data: str | None = None,
    seed: int = 0,
    command: str = "",
) -> dict[str, Any]:
    """Runs the demo into ``output`` and returns what ``results.json`` holds."""
    from siameseim_tf.demo.compare import evaluate_features, results_table, top1_table
    from siameseim_tf.demo.report import draw_report
    from siameseim_tf.recipes import model_arguments

    start, seconds = time.perf_counter(), {}
    os.makedirs(output, exist_ok=True)
    image_size = model_arguments(config)["image_size"]
    pretrain_x, train, test = load_splits(data, image_size, settings, seed)
    print(
        f"[demo] pretraining on {len(pretrain_x)} images; evaluation on "
        f"{len(train[0])} train / {len(test[0])} test images",
        flush=True,
    )
    untrained = random_encoder(config, seed)
    mark = time.perf_counter()
    encoder, pretraining, losses = pretrain_encoder(
        config, pretrain_x, os.path.join(output, "pretrain"), settings, seed
    )
    seconds["pretrain"] = time.perf_counter() - mark

    mark, cache_dir = time.perf_counter(), os.path.join(output, "features")
    details = evaluate_features(
        {"pretrained": encoder, "random init": untrained, "raw pixels": None},
        train,
        test,
        image_size,
        cache_dir=cache_dir,
        seed=seed,
        linear_options={
            "epochs": settings.linear_epochs,
            "batch_size": settings.linear_batch_size,
        },
    )
    top1 = top1_table(details)
    seconds["evaluate"] = time.perf_counter() - mark

    mark = time.perf_counter()
    exports = export_encoder(encoder, os.path.join(output, "export")) if settings.export else {}
    seconds["export"] = time.perf_counter() - mark

    mark = time.perf_counter()
    embedding, retrieval = report_inputs(
        encoder, train, test, image_size, cache_dir, settings, seed
    )
    report = draw_report(os.path.join(output, "report.png"), losses, top1, embedding, retrieval)
    seconds["report"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - start

    results = {
        "command": command,
        "config": config,
        "settings": vars(settings),
        "data": data or "fashion-mnist (Debian)",
        "seed": seed,
        "num_pretrain": int(len(pretrain_x)),
        "num_train": int(len(train[0])),
        "num_test": int(len(test[0])),
        "top1": top1,
        "details": details,
        "pretraining": pretraining,
        "losses": [round(v, 6) for v in losses],
        "exports": exports,
        "report": report,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    with open(os.path.join(output, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2, default=str)
    print("\n" + results_table(top1))
    print(f"\n[demo] {seconds['total'] / 60:.1f} min; results in {output}/results.json, {report}")
    return results
