"""The pretraining driver: strategy, data, model, optimizer and callbacks around ``fit``.

Plain arguments only; recipes in ``configs/`` and the CLI fill them in.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import keras
import numpy as np

from siameseim_tf.install import tensorflow_collision_hint
from siameseim_tf.training.methods import METHODS as ALL_METHODS
from siameseim_tf.training.methods import get_method
from siameseim_tf.training.optimizer import make_optimizer
from siameseim_tf.training.run import (
    ResumableRun,
    apply_xla,
    describe_xla,
    require_decodable,
    restores_dtype_policy,
    xla_mode,
)
from siameseim_tf.training.strategy import (
    agreed_precision,
    describe_devices,
    gpu_hint,
    select_strategy,
)

METHODS = tuple(ALL_METHODS)


def uses_batch_norm(method: str, model_args: dict) -> bool:
    """Whether ``method``'s model, built from ``model_args``, has BatchNorm blocks (its
    ``norm`` argument, given or default, is "batch")."""
    norm = inspect.signature(get_method(method).model_class()).parameters.get("norm")
    return norm is not None and model_args.get("norm", norm.default) == "batch"


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


def probe_images(source, image_size: int, count: int = 256):
    """The first ``count`` usable images of ``source``, preprocessed as for evaluation."""
    import tensorflow as tf

    from siameseim_tf.serving.preprocessing_tf import preprocess_uint8

    ds = source.raw(1, 0).take(4 * count).map(source.decode)
    if source.may_fail:
        ds = ds.ignore_errors()
    ds = ds.map(lambda image: preprocess_uint8(image, image_size)[0]).take(count)
    return tf.stack(list(ds))  # [P, S, S, 3]


@restores_dtype_policy
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
        precision: "float32", "mixed_bfloat16", "mixed_float16", or "auto" (from the
            hardware: :func:`~siameseim_tf.hardware.resolve_precision`, agreed between
            workers).
        backup_every_steps: also back up mid-epoch every so many steps (0: per epoch).
        jit_compile: XLA; default (None): the whole step on one replica, the per-replica
            transformer blocks under MirroredStrategy, off under MultiWorker (see
            :func:`~siameseim_tf.training.run.xla_mode`); False: graph mode.
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
    from siameseim_tf.training.run_length import plan_run, read_decided_steps

    started = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    strategy = strategy or select_strategy()  # before any TF op (MultiWorkerMirrored)
    policy, precision_reason = agreed_precision(strategy, precision)
    keras.config.set_dtype_policy(policy)
    run = ResumableRun(output_dir, strategy, tag="pretrain", log=say)
    if run.finished(run.directory / "model.keras"):
        say(
            f"[pretrain] {output_dir} holds a finished run (model.keras, encoder.keras): "
            "nothing to do; pass another --output to train again"
        )
        import siameseim_tf.models.mae  # noqa: F401 - registers the classes for loading
        import siameseim_tf.models.siameseim  # noqa: F401

        return keras.saving.load_model(run.directory / "model.keras"), None
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
    xla = xla_mode(jit_compile, strategy, policy)
    batch_norm = uses_batch_norm(method, model_args)  # for the start-up line below
    for hint in (tensorflow_collision_hint(), gpu_hint()):
        if hint:
            say(f"WARNING [pretrain] {hint}")
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
        f"precision {policy} ({precision_reason}), "
        f"XLA {describe_xla(xla, policy, batch_norm)}, seed {seed}"
    )
    keras.utils.set_random_seed(seed)  # initialisation; the data has its own seeded stream
    with strategy.scope():
        model = build_model(method, **model_args)
        # Schedule lengths are set by RunLength when training starts (or once a budget
        # has been converted to steps).
        optimizer = make_optimizer(
            base_lr, global_batch_size, plan.steps_per_epoch, 1, 0, weight_decay
        )
        model.compile(optimizer=optimizer, jit_compile=apply_xla(model, xla))
        # Built before fit: avoids Keras' symbolic build under MultiWorker (keras #20585).
        model.optimizer.build(model.trainable_variables)
    restored = run.restore(model, plan.steps_per_epoch)
    if restored is not None:
        say(
            f"[pretrain] resuming from {restored.path.name}: step {restored.step}, epoch "
            f"{restored.step // plan.steps_per_epoch + 1}, data stream at the next image"
        )

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

    monitor_callbacks = []
    if monitors:
        labelled = None
        if monitor_data is not None:
            from siameseim_tf.evaluation.features import preprocess_uint8

            images, labels = monitor_data
            labelled = (preprocess_uint8(images, image_size), np.asarray(labels))
        monitor_callbacks.append(
            FeatureMonitor(probe_images(source, image_size), labelled, monitor_every_steps, log=say)
        )
    if run.chief:
        settings = dict(
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
            precision=policy,
            precision_reason=precision_reason,
            replicas=strategy.num_replicas_in_sync,
            source=source.name,
        )
        (output_dir / "run.json").write_text(json.dumps(settings, indent=2, default=str))
    if plan.total_steps is not None and plan.total_steps < get_method(method).warn_below_steps:
        say(
            f"WARNING [pretrain] only {plan.total_steps} optimizer steps: at small scale "
            "SiameseIM's features stay at random-init quality for the first few hundred "
            "steps (docs/small_scale.md); pass --budget-minutes N or --steps N"
        )
    history = run.fit(
        model,
        stream,
        plan,
        optimizer._learning_rate,  # the WarmupCosine schedule (Keras keeps it there)
        started,
        monitors=monitor_callbacks,
        backup_every_steps=backup_every_steps,
        log_every_steps=log_every_steps,
        verbose=bool(verbose),
        extra_callbacks=extra_callbacks,
    )
    if run.preempted:
        return model, history
    run.finish(
        model,
        {
            run.directory / "model.keras": model.save,
            run.directory / "encoder.keras": model.encoder.save,
        },
    )
    report = getattr(source, "report", None)
    if report is not None and run.chief:
        (output_dir / "skipped.txt").write_text(report.listing() + "\n", errors="backslashreplace")
    return model, history
