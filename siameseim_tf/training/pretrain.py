"""The pretraining driver: strategy, data, model, optimizer and callbacks around ``fit``.

Plain arguments only; recipes in ``configs/`` and the CLI fill them in.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import keras

from siameseim_tf.training.callbacks import MomentumSchedule, ResumableBackup
from siameseim_tf.training.optimizer import make_optimizer
from siameseim_tf.training.strategy import select_strategy

METHODS = ("siameseim", "mae")


def is_chief(strategy) -> bool:
    """True on the worker that writes the real checkpoints (worker 0, or no cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def worker_directory(output_dir: Path, strategy) -> Path:
    """The chief writes to ``output_dir``; other workers to a private scratch directory.

    Every worker must take part in saving (it is a collective); only one may own the files.
    """
    if is_chief(strategy):
        return output_dir
    resolver = strategy.cluster_resolver
    return Path(tempfile.gettempdir()) / f"siameseim_worker_{resolver.task_type}_{resolver.task_id}"


def resolve_jit(jit_compile: bool | None, strategy) -> bool:
    """XLA by default on one replica (measured faster on CPU too: benchmarks/train_step.py).

    Under tf.distribute Keras' XLA train step fails (TF-NOTES; keras #18145, #20763).
    """
    if jit_compile is None:
        return strategy.num_replicas_in_sync == 1
    return jit_compile


def build_model(method: str, **model_args) -> keras.Model:
    """A SiameseIM or MAE model from constructor arguments."""
    if method == "siameseim":
        from siameseim_tf.models.siameseim import SiameseIM

        return SiameseIM(**model_args)
    if method == "mae":
        from siameseim_tf.models.mae import MAE

        return MAE(**model_args)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def build_dataset(
    method: str,
    source,
    global_batch_size: int,
    strategy,
    *,
    image_size: int,
    patch_size: int,
    num_masked: int,
    crop_min: float,
    seed: int,
    fast_resize: bool = False,
):
    """The distributed training stream of ``method``, sharded per input pipeline.

    ``num_masked`` must be the model's own M. ``fast_resize``: bilinear without
    antialiasing instead of SPEC's bicubic (fewer filter taps; aliasing on shrink).
    """
    if method == "siameseim":
        from siameseim_tf.data import build_pretraining_dataset as builder
    else:
        from siameseim_tf.training.mae_data import build_mae_dataset as builder
    resize = dict(interpolation="bilinear", antialias=False) if fast_resize else {}

    def dataset_fn(context):
        return builder(
            source,
            global_batch_size,
            image_size=image_size,
            patch_size=patch_size,
            num_masked=num_masked,
            crop_min=crop_min,
            seed=seed,
            input_context=context,
            **resize,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def make_callbacks(
    output_dir: Path,
    strategy,
    total_steps: int,
    *,
    method: str,
    backup_every_steps: int,
    log_every_steps: int,
) -> list:
    """Resumable checkpoints, momentum schedule, TensorBoard, CSV log, NaN guard."""
    directory = worker_directory(output_dir, strategy)
    callbacks = [
        # Per-worker backup directories: a shared one collides under MultiWorker (TF-NOTES).
        ResumableBackup(
            str(directory / "backup"),
            save_freq=backup_every_steps or "epoch",
            delete_checkpoint=True,  # a finished run leaves model.keras, not a backup
        ),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(directory / "log.csv"), append=True),
        keras.callbacks.TensorBoard(
            str(directory / "tensorboard"), update_freq=log_every_steps or "epoch"
        ),
        keras.callbacks.ModelCheckpoint(str(directory / "last.keras")),
    ]
    if method == "siameseim":
        callbacks.insert(0, MomentumSchedule(total_steps))
    return callbacks


def pretrain(
    source,
    output_dir: str | os.PathLike,
    *,
    method: str = "siameseim",
    model_args: dict,
    epochs: int,
    global_batch_size: int,
    base_lr: float = 6.25e-5,
    warmup_epochs: float = 40,
    weight_decay: float = 0.05,
    crop_min: float = 0.2,
    seed: int = 0,
    steps_per_epoch: int | None = None,
    precision: str = "float32",
    backup_every_steps: int = 0,
    log_every_steps: int = 0,
    verbose: int | str = 1,
    jit_compile: bool | None = None,
    fast_resize: bool = False,
    strategy=None,
    extra_callbacks: list | None = None,
):
    """Pretrains with ``model.fit``; resumes from ``output_dir/backup`` after preemption.

    Args:
        source: an :class:`~siameseim_tf.data.ImageSource`.
        output_dir: run directory: ``backup/`` (resume state), ``last.keras`` (every
            epoch), ``model.keras`` and ``encoder.keras`` (end), ``log.csv``,
            ``tensorboard/``, ``run.json`` (the arguments).
        method: "siameseim" or "mae".
        model_args: constructor arguments of the model (image_size, patch_size, ...).
        epochs, global_batch_size, base_lr, warmup_epochs, weight_decay: SPEC §6;
            lr = base_lr * global_batch_size / 256.
        steps_per_epoch: default: images // global_batch_size.
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        backup_every_steps: also back up mid-epoch every so many steps (0: per epoch).
        jit_compile: XLA-compile the train step; default: on with one replica only.
        fast_resize: bilinear view resizing without antialiasing (not SPEC's filter)
            instead of SPEC's bicubic.
        strategy: default :func:`select_strategy`.

    Returns:
        (model, history).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    keras.config.set_dtype_policy(precision)
    strategy = strategy or select_strategy()
    if steps_per_epoch is None:
        if not source.num_images:
            raise ValueError(f"{source.name}: number of images unknown; pass steps_per_epoch")
        steps_per_epoch = source.num_images // global_batch_size
        if steps_per_epoch == 0:
            raise ValueError(
                f"{source.name}: {source.num_images} images is less than one "
                f"global batch of {global_batch_size}"
            )
    total_steps = epochs * steps_per_epoch
    image_size, patch_size = model_args["image_size"], model_args["patch_size"]
    with strategy.scope():
        model = build_model(method, **model_args)
        optimizer = make_optimizer(
            base_lr, global_batch_size, steps_per_epoch, epochs, warmup_epochs, weight_decay
        )
        model.compile(optimizer=optimizer, jit_compile=resolve_jit(jit_compile, strategy))
        # Built before fit: avoids Keras' symbolic build under MultiWorker (keras #20585).
        model.optimizer.build(model.trainable_variables)
    # Masks must hold exactly the model's M ones: the count comes from the model.
    dataset = build_dataset(
        method,
        source,
        global_batch_size,
        strategy,
        image_size=image_size,
        patch_size=patch_size,
        num_masked=model.num_patches - model.num_visible,
        crop_min=crop_min,
        seed=seed,
        fast_resize=fast_resize,
    )
    callbacks = make_callbacks(
        output_dir,
        strategy,
        total_steps,
        method=method,
        backup_every_steps=backup_every_steps,
        log_every_steps=log_every_steps,
    )
    if is_chief(strategy):
        run = dict(
            method=method,
            model_args=model_args,
            epochs=epochs,
            global_batch_size=global_batch_size,
            base_lr=base_lr,
            warmup_epochs=warmup_epochs,
            weight_decay=weight_decay,
            crop_min=crop_min,
            seed=seed,
            steps_per_epoch=steps_per_epoch,
            precision=precision,
            replicas=strategy.num_replicas_in_sync,
            source=source.name,
        )
        (output_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks + list(extra_callbacks or []),
        verbose=verbose,
    )
    directory = worker_directory(output_dir, strategy)
    model.save(directory / "model.keras")
    model.encoder.save(directory / "encoder.keras")
    report = getattr(source, "report", None)
    if report is not None and is_chief(strategy):
        (output_dir / "skipped.txt").write_text(str(report.summary()) + "\n")
    return model, history
