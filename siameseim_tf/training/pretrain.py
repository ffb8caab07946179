"""The pretraining driver: strategy, data, model, optimizer and callbacks around ``fit``.

Plain arguments only; recipes in ``configs/`` and the CLI fill them in.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

from siameseim_tf.training.callbacks import PreemptionNotice, RunCheckpoint
from siameseim_tf.training.checkpoints import (
    CHECKPOINT_DIR,
    FINISHED_FILE,
    RunCheckpoints,
    agree_on_step,
    fault,
    train_step_count,
    truncate_log,
    write_atomically,
)
from siameseim_tf.training.methods import METHODS as ALL_METHODS
from siameseim_tf.training.methods import get_method
from siameseim_tf.training.optimizer import make_optimizer
from siameseim_tf.training.resume import fit_resumably
from siameseim_tf.training.strategy import describe_devices, gpu_hint, select_strategy

METHODS = tuple(ALL_METHODS)


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
    import hashlib

    resolver = strategy.cluster_resolver
    run = hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:10]
    name = f"siameseim_worker_{run}_{resolver.task_type}_{resolver.task_id}"
    return Path(tempfile.gettempdir()) / name


def resolve_jit(jit_compile: bool | None, strategy) -> bool:
    """XLA by default on one replica (measured faster on CPU too: benchmarks/train_step.py).

    Under tf.distribute Keras' XLA train step fails (TF-NOTES; keras #18145, #20763).
    """
    if jit_compile is None:
        return strategy.num_replicas_in_sync == 1
    return jit_compile


def build_model(method: str, **model_args) -> keras.Model:
    """A SiameseIM or MAE model from constructor arguments."""
    return get_method(method).model_class()(**model_args)


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
    color: bool = True,
    start: int = 0,
    positions=None,
):
    """The distributed training stream of ``method``, sharded per input pipeline, from
    position tag ``start`` on (``positions`` records where each batch ends).

    ``num_masked`` must be the model's own M. ``fast_resize``: bilinear without
    antialiasing instead of the method's bicubic (fewer filter taps; aliasing on shrink).
    ``color=False``: no colour jitter / grayscale / blur / solarise (SiameseIM only).
    """
    if not color and not get_method(method).color_option:
        raise ValueError(f"color=False is a SiameseIM view option; {method} has none")
    builder = get_method(method).dataset_builder()
    resize = dict(interpolation="bilinear", antialias=False) if fast_resize else {}
    if not color:
        resize["color"] = False

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
            start=start,
            positions=positions,
            **resize,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def require_decodable(source) -> None:
    """Raises BadInputError when no image of ``source`` decodes (files that pass the header
    scan can still fail); training would otherwise wait forever for a first batch."""
    from siameseim_tf.data import BadInputError

    if not source.may_fail:
        return
    ds = source.raw(1, 0).map(source.decode).ignore_errors().take(1)
    if not any(True for _ in ds):
        raise BadInputError(
            f"{source.name}: none of its {source.num_images or ''} image(s) could be decoded "
            "(they passed the header scan but every decode failed)",
            source.name,
        )


def probe_images(source, image_size: int, count: int = 256):
    """The first ``count`` usable images of ``source``, preprocessed as for evaluation."""
    import tensorflow as tf

    from siameseim_tf.serving.preprocessing_tf import preprocess_uint8

    ds = source.raw(1, 0).take(4 * count).map(source.decode)
    if source.may_fail:
        ds = ds.ignore_errors()
    ds = ds.map(lambda image: preprocess_uint8(image, image_size)[0]).take(count)
    return tf.stack(list(ds))  # [P, S, S, 3]


def make_callbacks(
    directory: Path,
    *,
    checkpoint,
    log_every_steps: int,
    leading: list,
) -> list:
    """Run length and monitors first (they add to the logs), the epoch's log row, then
    the checkpoint (a restart drops log rows the checkpoint does not cover)."""
    return [
        *leading,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(directory / "log.csv"), append=True),
        keras.callbacks.TensorBoard(
            str(directory / "tensorboard"), update_freq=log_every_steps or "epoch"
        ),
        checkpoint,
        keras.callbacks.ModelCheckpoint(str(directory / "last.keras")),
    ]


def pretrain(
    source,
    output_dir: str | os.PathLike,
    *,
    method: str = "siameseim",
    model_args: dict,
    epochs: float | None = None,
    global_batch_size: int,
    total_steps: int | None = None,
    budget_minutes: float | None = None,
    base_lr: float = 6.25e-5,
    warmup_epochs: float = 40,
    warmup_fraction: float | None = None,
    weight_decay: float = 0.05,
    crop_min: float = 0.2,
    color: bool = True,
    seed: int = 0,
    steps_per_epoch: int | None = None,
    min_steps_per_epoch: int = 1,
    precision: str = "float32",
    backup_every_steps: int = 0,
    log_every_steps: int = 0,
    verbose: int | str = 1,
    jit_compile: bool | None = None,
    fast_resize: bool = False,
    monitors: bool = True,
    monitor_data=None,
    monitor_every_steps: int = 0,
    strategy=None,
    extra_callbacks: list | None = None,
):
    """Pretrains with ``model.fit``; resumes from ``output_dir/backup`` after preemption.

    Args:
        source: an :class:`~siameseim_tf.data.ImageSource`.
        output_dir: run directory: ``backup/`` (resume state), ``last.keras`` (every
            epoch), ``model.keras`` and ``encoder.keras`` (end), ``log.csv``,
            ``tensorboard/``, ``run.json`` (the arguments), ``run_length.json`` (the
            steps a budget run decided on).
        method: "siameseim" or "mae".
        model_args: constructor arguments of the model (image_size, patch_size, ...).
        epochs, total_steps, budget_minutes: how long to train (see
            :func:`~siameseim_tf.training.run_length.plan_run`): ``total_steps`` wins over
            ``epochs``; a budget alone sizes the run from the measured step time.
        global_batch_size, base_lr, weight_decay: lr = base_lr * global_batch_size / 256.
        warmup_epochs, warmup_fraction: linear warmup, as a share of the run.
        seed: seeds model initialisation, data order, views and masks.
        steps_per_epoch: default: images // global_batch_size (an epoch is then a pass
            over the data; logs and backups are per epoch).
        min_steps_per_epoch: with small data, an epoch of logs and backups is at least
            this many steps (checkpoints every few steps would cost more than training).
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        backup_every_steps: also back up mid-epoch every so many steps (0: per epoch).
        jit_compile: XLA-compile the train step; default: on with one replica only.
        fast_resize: bilinear view resizing without antialiasing instead of bicubic.
        color: the colour augmentations of method §1 (off: crops and flips only).
        monitors: collapse monitors (feature std, effective rank) on a probe batch.
        monitor_data: optional (images uint8 [L, H, W, C], labels [L]) for online k-NN.
        monitor_every_steps: also measure the monitors every so many steps.
        strategy: default :func:`select_strategy`.

    Returns:
        (model, history).
    """
    import time

    from siameseim_tf.training.monitors import FeatureMonitor
    from siameseim_tf.training.progress import ProgressLogger
    from siameseim_tf.training.run_length import RunLength, plan_run, read_decided_steps

    started = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    keras.config.set_dtype_policy(precision)
    strategy = strategy or select_strategy()
    directory = worker_directory(output_dir, strategy)
    if (output_dir / FINISHED_FILE).is_file() and (directory / "model.keras").is_file():
        say(
            f"[pretrain] {output_dir} holds a finished run (model.keras, encoder.keras): "
            "nothing to do; pass another --output to train again"
        )
        import siameseim_tf.models.mae  # noqa: F401 - registers the classes for loading
        import siameseim_tf.models.siameseim  # noqa: F401

        return keras.saving.load_model(directory / "model.keras"), None
    require_decodable(source)
    decided = read_decided_steps(output_dir)
    plan = plan_run(
        source.num_images,
        global_batch_size,
        epochs=epochs,
        total_steps=total_steps or decided,
        budget_minutes=budget_minutes,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=warmup_epochs,
        warmup_fraction=warmup_fraction,
        min_steps_per_epoch=min_steps_per_epoch,
        name=source.name,
    )
    image_size, patch_size = model_args["image_size"], model_args["patch_size"]
    jit = resolve_jit(jit_compile, strategy)
    if hint := gpu_hint():
        say(hint)
    say(
        f"[pretrain] {source.name}: {source.num_images} images"
        + (f" ({source.report.count} skipped)" if getattr(source, "report", None) else "")
        + f"; {describe_devices(strategy)}; global batch {global_batch_size}"
        f" ({global_batch_size // strategy.num_replicas_in_sync} per replica)"
    )
    length = (
        f"{plan.total_steps} steps"
        if plan.total_steps is not None
        else f"as many steps as fit in {budget_minutes:g} min"
    )
    say(
        f"[pretrain] {method}: {plan.steps_per_epoch} steps per epoch, {length}; "
        f"precision {precision}, XLA {'on' if jit else 'off'}, seed {seed}"
    )
    keras.utils.set_random_seed(seed)  # initialisation; the data has its own seeded stream
    with strategy.scope():
        model = build_model(method, **model_args)
        # Schedule lengths are set by RunLength when training starts (or once a budget
        # has been converted to steps).
        optimizer = make_optimizer(
            base_lr, global_batch_size, plan.steps_per_epoch, 1, 0, weight_decay
        )
        model.compile(optimizer=optimizer, jit_compile=jit)
        # Built before fit: avoids Keras' symbolic build under MultiWorker (keras #20585).
        model.optimizer.build(model.trainable_variables)
    checkpoints = RunCheckpoints(directory / CHECKPOINT_DIR, log=say)
    restored = checkpoints.restore(model, agree_on_step(strategy, checkpoints.steps()))
    if restored is not None:
        say(
            f"[pretrain] resuming from {restored.path.name}: step {restored.step}, epoch "
            f"{restored.step // plan.steps_per_epoch + 1}, data stream at the next image"
        )
        truncate_log(directory / "log.csv", restored.step // plan.steps_per_epoch)

    def stream(start: int, positions):
        # Masks must hold exactly the model's M ones: the count comes from the model.
        return build_dataset(
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
            color=color,
            start=start,
            positions=positions,
        )

    multi_worker = getattr(getattr(strategy, "cluster_resolver", None), "task_type", None)
    leading = [
        RunLength(
            plan,
            optimizer._learning_rate,  # the WarmupCosine schedule (Keras keeps it there)
            started=started,
            record_dir=output_dir if is_chief(strategy) else None,
            strategy=strategy,
            time_stop=not multi_worker,
            log=say,
        )
    ]
    if monitors:
        labelled = None
        if monitor_data is not None:
            from siameseim_tf.evaluation.features import preprocess_uint8

            images, labels = monitor_data
            labelled = (preprocess_uint8(images, image_size), np.asarray(labels))
        leading.append(
            FeatureMonitor(probe_images(source, image_size), labelled, monitor_every_steps, log=say)
        )
    if verbose:
        leading.append(ProgressLogger(plan, log=say))
    notice = PreemptionNotice()
    checkpoint = RunCheckpoint(
        checkpoints, None, every_steps=backup_every_steps, notice=notice, log=say
    )
    callbacks = make_callbacks(
        directory, checkpoint=checkpoint, log_every_steps=log_every_steps, leading=leading
    )
    if is_chief(strategy):
        run = dict(
            method=method,
            model_args=model_args,
            epochs=epochs,
            total_steps=plan.total_steps,
            budget_minutes=budget_minutes,
            global_batch_size=global_batch_size,
            base_lr=base_lr,
            warmup_fraction=plan.warmup_fraction,
            weight_decay=weight_decay,
            crop_min=crop_min,
            color=color,
            seed=seed,
            steps_per_epoch=plan.steps_per_epoch,
            precision=precision,
            replicas=strategy.num_replicas_in_sync,
            source=source.name,
        )
        (output_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    if plan.total_steps is not None and plan.total_steps < get_method(method).warn_below_steps:
        say(
            f"WARNING [pretrain] only {plan.total_steps} optimizer steps: at small scale "
            "SiameseIM's features stay at random-init quality for the first few hundred "
            "steps (docs/small_scale.md); pass --budget-minutes N or --steps N"
        )
    say("[pretrain] compiling the train step (the first step is slow)...")
    with notice:
        history = fit_resumably(
            model,
            stream,
            plan,
            restored,
            checkpoint,
            callbacks + list(extra_callbacks or []),
            strategy,
        )
    if checkpoint.preempted:
        return model, history
    # Final files first, atomically; only then the checkpoints go.
    write_atomically(directory / "model.keras", model.save)
    write_atomically(directory / "encoder.keras", model.encoder.save)
    fault("final-saved", train_step_count(model))
    if is_chief(strategy):
        steps = train_step_count(model)
        write_atomically(
            output_dir / FINISHED_FILE,
            lambda tmp: Path(tmp).write_text(json.dumps(dict(steps=steps))),
        )
    checkpoints.remove()
    report = getattr(source, "report", None)
    if report is not None and is_chief(strategy):
        (output_dir / "skipped.txt").write_text(report.listing() + "\n", errors="backslashreplace")
    return model, history
