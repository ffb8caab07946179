"""What every resumable training command shares around ``model.fit``.

Pretraining (:mod:`siameseim_tf.training.pretrain`) and fine-tuning
(:mod:`siameseim_tf.evaluation.finetune`) build different models and streams; the run
around them is one: the finished-run check, the worker's directory, restoring the last
checkpoint (and cutting the log back to it), the callbacks (run length, progress, the
preemption notice, checkpoints), ``fit`` from the restored step, and the final files
written atomically before the checkpoints go.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras

from siameseim_tf.hardware import xla_suits
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
from siameseim_tf.training.progress import ProgressLogger
from siameseim_tf.training.resume import fit_resumably
from siameseim_tf.training.run_length import RunLength


def restores_dtype_policy(run: Callable) -> Callable:
    """Wraps a run that sets Keras' global dtype policy (its precision) so that the
    caller's policy is back afterwards, also after an error: a notebook that pretrains and
    then builds its own model must not get bfloat16 layers without asking."""

    @functools.wraps(run)
    def wrapper(*args, **kwargs):
        previous = keras.config.dtype_policy()
        try:
            return run(*args, **kwargs)
        finally:
            keras.config.set_dtype_policy(previous)

    return wrapper


def is_multi_worker(strategy) -> bool:
    """True under a cluster (MultiWorkerMirroredStrategy with TF_CONFIG)."""
    return bool(getattr(getattr(strategy, "cluster_resolver", None), "task_type", None))


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
    run = hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:10]
    name = f"siameseim_worker_{run}_{resolver.task_type}_{resolver.task_id}"
    return Path(tempfile.gettempdir()) / name


def xla_mode(jit_compile: bool | None, strategy, policy: str = "float32") -> str:
    """How the train step uses XLA: "step", "blocks" or "off".

    By default XLA where it is the faster mode here (:func:`~siameseim_tf.hardware.xla_suits`:
    GPUs), graph mode with the fused kernels on CPUs; ``jit_compile=True`` / ``False``
    forces it on / off. On:
    - one replica: "step", the whole train step compiled (Keras ``jit_compile``);
    - MirroredStrategy and MultiWorkerMirroredStrategy: "blocks". Keras' XLA step fails
      under tf.distribute (keras #18145, #20763), so each replica's transformer blocks are
      compiled and the all-reduces stay outside (benchmarks/replica_xla.py: 1.07-1.09x
      graph mode capped at AVX2, 0.90x with AVX-512 and AMX).
    """
    if jit_compile is False or (jit_compile is None and not xla_suits(policy)):
        return "off"
    return "step" if strategy.num_replicas_in_sync == 1 else "blocks"


def describe_xla(mode: str, policy: str = "float32", batch_norm: bool = False) -> str:
    """``mode`` for the start-up line; in graph mode also which fused kernels run under
    the dtype ``policy`` (``batch_norm``: the model has BatchNorm blocks)."""
    if mode != "off":
        return mode
    from siameseim_tf.layers.fused import describe_backend

    return f"off (graph mode, fused kernels: {describe_backend(policy, batch_norm)})"


def apply_xla(model, mode: str) -> bool:
    """Sets ``model`` up for ``mode``; returns the ``jit_compile`` to compile it with."""
    from siameseim_tf.layers.transformer import configure_blocks

    # Graph mode gets fused GELU / LayerNorm / softmax kernels; XLA fuses those itself.
    configure_blocks(model, xla_per_replica=mode == "blocks", fused_kernels=mode == "off")
    return mode == "step"


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


def make_callbacks(directory: Path, *, checkpoint, log_every_steps: int, leading: list) -> list:
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


class ResumableRun:
    """One run directory: restore, fit to the end of the plan, finish atomically.

    Usage (both drivers)::

        run = ResumableRun(output_dir, strategy, tag="finetune", log=print)
        if run.finished(output_dir / "metrics.json"): ...      # nothing to do
        ... build and compile the model under strategy.scope() ...
        restored = run.restore(model, plan.steps_per_epoch)
        history = run.fit(model, stream, plan, schedule, started, ...)
        if run.preempted: return                               # a checkpoint was written
        run.finish({run.directory / "model.keras": model.save})
    """

    def __init__(self, output_dir, strategy, *, tag: str, log: Callable = print):
        self.output_dir = Path(output_dir)
        self.strategy = strategy
        self.tag = tag
        self.log = log
        self.chief = is_chief(strategy)
        self.directory = worker_directory(self.output_dir, strategy)
        self.checkpoints = RunCheckpoints(self.directory / CHECKPOINT_DIR, log=log)
        self.restored = None
        self.preempted = False

    def finished(self, *files: Path) -> bool:
        """True when a previous run got to the end: its marker and ``files`` all exist."""
        marker = self.output_dir / FINISHED_FILE
        return marker.is_file() and all(Path(f).is_file() for f in files)

    def restore(self, model, steps_per_epoch: int):
        """Loads the newest checkpoint every worker holds; the log loses rows it lacks."""
        steps = agree_on_step(self.strategy, self.checkpoints.steps())
        self.restored = self.checkpoints.restore(model, steps)
        if self.restored is not None:
            truncate_log(self.directory / "log.csv", self.restored.step // steps_per_epoch)
        return self.restored

    def fit(
        self,
        model,
        stream: Callable,
        plan,
        schedule,
        started: float,
        *,
        monitors: list | tuple = (),
        backup_every_steps: int = 0,
        log_every_steps: int = 0,
        verbose: bool = True,
        extra_callbacks: list | None = None,
    ):
        """``model.fit`` from the restored step to the end of ``plan``, under a notice that
        turns SIGTERM into a checkpoint; ``stream(start, positions)`` builds the data."""
        length = RunLength(
            plan,
            schedule,
            started=started,
            record_dir=self.output_dir if self.chief else None,
            strategy=self.strategy,
            # workers could disagree on a clock-based stop
            time_stop=not is_multi_worker(self.strategy),
            log=self.log,
            tag=self.tag,
        )
        leading = [length, *monitors]
        if verbose:
            leading.append(ProgressLogger(plan, log=self.log, tag=self.tag))
        notice = PreemptionNotice()
        checkpoint = RunCheckpoint(
            self.checkpoints,
            None,
            every_steps=backup_every_steps,
            notice=notice,
            log=self.log,
            tag=self.tag,
        )
        callbacks = make_callbacks(
            self.directory, checkpoint=checkpoint, log_every_steps=log_every_steps, leading=leading
        )
        self.log(f"[{self.tag}] compiling the train step (the first step is slow)...")
        with notice:
            history = fit_resumably(
                model,
                stream,
                plan,
                self.restored,
                checkpoint,
                callbacks + list(extra_callbacks or []),
                self.strategy,
            )
        self.preempted = checkpoint.preempted
        return history

    def finish(self, model, worker_files: dict, chief_files: dict | None = None) -> int:
        """Writes the final files atomically (``{path: write(tmp_path)}``: every worker its
        own, then the chief's), marks the run finished, then drops the checkpoints.

        A kill at any point leaves either the checkpoints or the finished files."""
        for path, write in worker_files.items():
            write_atomically(path, write)
        steps = train_step_count(model)
        fault("final-saved", steps)
        if self.chief:
            for path, write in (chief_files or {}).items():
                write_atomically(path, write)
            write_atomically(
                self.output_dir / FINISHED_FILE,
                lambda tmp: Path(tmp).write_text(json.dumps(dict(steps=steps))),
            )
        self.checkpoints.remove()
        return steps
