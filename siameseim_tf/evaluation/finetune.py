"""Fine-tuning (method §7) as a Keras task: :class:`ViTClassifier` trained with ``fit``.

The recipe: mean-pooled patch tokens + new LayerNorm + linear head; layer-wise lr decay
0.65 (patch embedding / CLS / positions = layer 0, block k = layer k + 1, head and norms
= L + 1; lr scale = decay^(L + 1 - layer)), drop path 0.1, AdamW (betas 0.9 / 0.999, wd
0.05, none on 1-D weights and the CLS token), warmup + cosine per step, and the
augmentations of :mod:`siameseim_tf.data.finetune_data` (random resized crop + flip,
RandAugment, random erasing, mixup / cutmix, label smoothing).

Runs like pretraining: the strategy of :func:`~siameseim_tf.training.strategy.
select_strategy` (one device, Mirrored, MultiWorker), a tf.data stream read from any
labelled source (never held in memory), atomic step checkpoints with an exact resume,
SIGTERM handling, a time budget or a step / epoch count. See docs/finetune.md.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import keras
import numpy as np

from siameseim_tf.evaluation.optim import make_optimizer, make_probe_optimizer
from siameseim_tf.models.classifier import ViTClassifier
from siameseim_tf.training.run import restores_dtype_policy
from siameseim_tf.training.schedules import WarmupCosine

CLASSIFIER_FILE = "classifier.keras"
METRICS_FILE = "metrics.json"


def build_eval_dataset(source, global_batch_size: int, *, image_size: int, num_classes: int):
    """One pass, in order, of ``(images [B, S, S, 3], one-hot targets [B, C])`` with the
    evaluation / export preprocessing; the last batch may be short."""
    import tensorflow as tf

    from siameseim_tf.data.pipeline import build_dataset
    from siameseim_tf.serving.preprocessing_tf import preprocess_uint8

    return build_dataset(
        source,
        global_batch_size,
        lambda image, element_seed: {"image": preprocess_uint8(image, image_size)[0]},
        shuffle=False,
        repeat=False,
        drop_remainder=False,
        batch_fn=lambda batch: (batch["image"], tf.one_hot(batch["label"], num_classes)),
        with_labels=True,
    )


class StepTimer(keras.callbacks.Callback):
    """Training throughput over the steps of each epoch after its first (the first
    compiles, epoch ends save checkpoints)."""

    def __init__(self):
        super().__init__()
        self.steps, self.seconds, self._mark = 0, 0.0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._mark = None  # not the epoch-end saves nor the next epoch's first batch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._mark is not None:
            self.steps, self.seconds = self.steps + 1, self.seconds + now - self._mark
        self._mark = now

    def images_per_second(self, global_batch_size: int) -> float | None:
        return self.steps * global_batch_size / self.seconds if self.seconds else None


PROTOCOLS = ("finetune", "linear")
# The linear probe of method §7 trains on random resized crops + flips only (MAE's
# main_linprobe.py): no RandAugment, erasing, mixing or smoothing.
LINEAR_PROBE_AUGMENTATION = dict(
    rand_augment=False, erase_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0
)


def augmentation_from(options: dict[str, Any] | None, protocol: str = "finetune"):
    """An :class:`~siameseim_tf.data.finetune_data.Augmentation` from keyword options (on
    top of the protocol's defaults)."""
    from siameseim_tf.data.finetune_data import Augmentation

    options = {**(LINEAR_PROBE_AUGMENTATION if protocol == "linear" else {}), **(options or {})}
    if unknown := set(options) - {f.name for f in fields(Augmentation)}:
        raise ValueError(f"unknown augmentation options {sorted(unknown)}")
    return Augmentation(**options)


@restores_dtype_policy
def finetune(
    encoder: keras.Model,
    train_source,
    output_dir: str | os.PathLike,
    *,
    test_source=None,
    epochs: float | None = 100,
    total_steps: int | None = None,
    budget_minutes: float | None = None,
    global_batch_size: int = 1024,
    base_lr: float = 2.5e-4,
    min_lr: float = 1e-6,
    warmup_epochs: float | None = None,
    weight_decay: float = 0.05,
    layer_decay: float = 0.65,
    drop_path_rate: float = 0.1,
    augmentation: dict[str, Any] | None = None,
    seed: int = 0,
    precision: str = "float32",
    backup_every_steps: int = 0,
    log_every_steps: int = 0,
    jit_compile: bool | None = None,
    eval_batch_size: int = 256,
    protocol: str = "finetune",
    accumulation_steps: int = 1,
    strategy=None,
    verbose: int = 1,
    extra_callbacks: list | None = None,
) -> tuple[ViTClassifier, dict[str, Any]]:
    """Fine-tunes a copy of ``encoder`` on ``train_source``; evaluates top-1 on ``test_source``.

    Args:
        encoder: a pretrained (or random) ViTEncoder; left untouched.
        train_source, test_source: labelled :class:`~siameseim_tf.data.ImageSource`s
            (:func:`~siameseim_tf.data.loaders.open_labelled_source`).
        output_dir: ``classifier.keras`` and ``metrics.json`` at the end, ``checkpoints/``
            while training (resume: run the same call again), ``log.csv``,
            ``tensorboard/``, ``run.json``.
        epochs, total_steps, budget_minutes: run length, as for pretraining
            (:func:`~siameseim_tf.training.run_length.plan_run`).
        global_batch_size, base_lr: lr = base_lr * global_batch_size / 256 (method §7:
            1024, 2.5e-4); min_lr: floor of the cosine.
        warmup_epochs: linear warmup, as a share of ``epochs``; default 5 % of the run
            (method §7: 5 of 100 epochs).
        weight_decay, layer_decay, drop_path_rate: 0.05 / 0.65 / 0.1.
        augmentation: fields of :class:`~siameseim_tf.data.finetune_data.Augmentation`.
        seed: head init, data order, augmentations, drop path.
        protocol: "finetune" (everything trained, AdamW with layer decay) or "linear" (the
            paper's linear probe: frozen encoder, BatchNorm + linear head, LARS; crops and
            flips only; ``layer_decay`` and ``drop_path_rate`` unused; method §7 values:
            base_lr 0.1, weight_decay 0, batch 16384, 90 epochs, 10 warmup).
        accumulation_steps: gradients of this many batches per update (effective batch
            ``global_batch_size * accumulation_steps``, the lr is scaled by it; steps and
            schedules count batches).

    Returns:
        (classifier, metrics): ``metrics`` has ``top1`` (fraction, test split; None
        without one), ``test_loss``, ``train_loss`` (per epoch), ``steps``,
        ``train_images_per_second`` and the settings.
    """
    from siameseim_tf.data.finetune_data import build_finetune_dataset, count_classes
    from siameseim_tf.training.checkpoints import train_step_count
    from siameseim_tf.training.run import (
        ResumableRun,
        apply_xla,
        describe_xla,
        require_decodable,
        xla_mode,
    )
    from siameseim_tf.training.run_length import plan_run
    from siameseim_tf.training.strategy import (
        agreed_precision,
        describe_devices,
        select_strategy,
    )

    started = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    strategy = strategy or select_strategy()  # before any TF op (MultiWorkerMirrored)
    policy, precision_reason = agreed_precision(strategy, precision)
    keras.config.set_dtype_policy(policy)
    run = ResumableRun(output_dir, strategy, tag="finetune", log=say)
    if run.finished(output_dir / METRICS_FILE):
        say(f"[finetune] {output_dir} holds a finished run: nothing to do")
        model = keras.saving.load_model(output_dir / CLASSIFIER_FILE, compile=False)
        return model, json.loads((output_dir / METRICS_FILE).read_text())
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
    aug = augmentation_from(augmentation, protocol)
    require_decodable(train_source)
    num_classes = count_classes(train_source)
    plan = plan_run(
        train_source.num_images,
        global_batch_size,
        epochs=epochs if total_steps is None else None,
        total_steps=total_steps,
        budget_minutes=budget_minutes,
        warmup_epochs=warmup_epochs,
        warmup_fraction=None if warmup_epochs else 0.05,
        name=train_source.name,
    )
    xla = xla_mode(jit_compile, strategy, policy)
    say(
        f"[finetune] {train_source.name}: {train_source.num_images} images, {num_classes} "
        f"classes; {describe_devices(strategy)}; global batch {global_batch_size}; "
        f"{plan.steps_per_epoch} steps per epoch, "
        + (f"{plan.total_steps} steps" if plan.total_steps else f"{budget_minutes:g} min")
        + f"; precision {policy} ({precision_reason}), XLA {describe_xla(xla, policy)}, seed {seed}"
    )
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        names = list(train_source.class_names or []) or None
        probe = protocol == "linear"
        model = ViTClassifier.from_encoder(encoder, num_classes, drop_path_rate, names, probe)
        peak_lr = base_lr * global_batch_size * accumulation_steps / 256
        schedule = WarmupCosine(peak_lr, warmup_steps=0, total_steps=1, min_lr=min_lr)
        if probe:
            optimizer = make_probe_optimizer(schedule, weight_decay, accumulation_steps)
        else:
            optimizer = make_optimizer(model, schedule, weight_decay, layer_decay)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.CategoricalAccuracy(name="top1")],
            jit_compile=apply_xla(model, xla),
        )
        optimizer.build(model.trainable_variables)
    restored = run.restore(model, plan.steps_per_epoch)
    if restored is not None:
        say(f"[finetune] resuming from {restored.path.name}: step {restored.step}")

    def stream(start: int, positions):
        return strategy.distribute_datasets_from_function(
            lambda context: build_finetune_dataset(
                train_source,
                global_batch_size,
                image_size=model.image_size,
                num_classes=num_classes,
                augmentation=aug,
                seed=seed,
                input_context=context,
                start=start,
                positions=positions,
            )
        )

    timer = StepTimer()
    settings = dict(
        protocol=protocol,
        epochs=epochs,
        total_steps=plan.total_steps,
        budget_minutes=budget_minutes,
        global_batch_size=global_batch_size,
        accumulation_steps=accumulation_steps,
        lr=peak_lr,
        min_lr=min_lr,
        warmup_fraction=plan.warmup_fraction,
        weight_decay=weight_decay,
        layer_decay=layer_decay,
        drop_path_rate=drop_path_rate,
        augmentation={f.name: getattr(aug, f.name) for f in fields(aug)},
        seed=seed,
        precision=policy,
        precision_reason=precision_reason,
        replicas=strategy.num_replicas_in_sync,
        source=train_source.name,
    )
    if run.chief:
        (output_dir / "run.json").write_text(json.dumps(settings, indent=2, default=str))
    history = run.fit(
        model,
        stream,
        plan,
        schedule,
        started,
        monitors=[timer],
        backup_every_steps=backup_every_steps,
        log_every_steps=log_every_steps,
        verbose=bool(verbose),
        extra_callbacks=extra_callbacks,
    )
    if run.preempted:
        return model, {}
    steps = train_step_count(model)
    metrics = dict(
        top1=None,
        test_loss=None,
        train_loss=[float(v) for v in history.history.get("loss", [])],
        steps=steps,
        train_images_per_second=timer.images_per_second(global_batch_size),
        **settings,
    )
    if test_source is not None:
        say(f"[finetune] evaluating on {test_source.name} ...")
        test = build_eval_dataset(
            test_source, eval_batch_size, image_size=model.image_size, num_classes=num_classes
        )
        with warnings.catch_warnings():  # a one-pass stream of unknown length ends
            warnings.filterwarnings("ignore", "Your input ran out of data")
            scores = model.evaluate(test, verbose=0, return_dict=True)
        metrics.update(top1=float(scores["top1"]), test_loss=float(scores["loss"]))
        say(f"[finetune] test top-1 {100 * metrics['top1']:.2f} % on {test_source.name}")
    run.finish(
        model,
        {run.directory / CLASSIFIER_FILE: model.save},
        {
            output_dir / METRICS_FILE: lambda tmp: Path(tmp).write_text(
                json.dumps(metrics, indent=2, default=str)
            )
        },
    )
    return model, metrics


@dataclass
class FineTuneResult:
    """Metrics (JSON-friendly) and the fine-tuned classifier."""

    metrics: dict[str, Any]
    model: ViTClassifier


def fine_tune(
    encoder: keras.Model,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    image_size: int | None = None,
    progress: bool = True,
    **options,
) -> FineTuneResult:
    """:func:`finetune` on in-memory arrays (the ``evaluate --protocol finetune`` path).

    images uint8 [N, H, W, C], labels int [N]; ``options`` are :func:`finetune`'s
    (``epochs``, ``base_lr``, ``augmentation``, ...). ``output_dir`` default: a temporary
    directory, removed afterwards.
    """
    import tempfile

    from siameseim_tf.data.source import array_source

    if image_size not in (None, encoder.image_size):
        raise ValueError(f"image_size {image_size} differs from the encoder's")
    classes = int(max(np.max(train_labels), np.max(test_labels)) + 1)
    names = tuple(str(k) for k in range(classes))
    train = array_source(train_images, "train", train_labels, names)
    test = array_source(test_images, "test", test_labels, names)
    with tempfile.TemporaryDirectory() as scratch:
        model, metrics = finetune(
            encoder,
            train,
            output_dir or scratch,
            test_source=test,
            global_batch_size=batch_size,
            verbose=int(progress),
            **options,
        )
    return FineTuneResult(metrics, model)
