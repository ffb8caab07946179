"""Picks the tf.distribute strategy in one place."""

from __future__ import annotations

import json
import os

import tensorflow as tf


def select_strategy(tpu: str | None = None, devices: list[str] | None = None):
    """The strategy for this process.

    - ``tpu`` given (address or "local"): TPUStrategy;
    - ``TF_CONFIG`` set with a cluster: MultiWorkerMirroredStrategy;
    - ``devices`` given, or more than one local GPU: MirroredStrategy over them;
    - otherwise the default strategy (one device).
    """
    if tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="" if tpu == "local" else tpu
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config and json.loads(tf_config).get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()


def split_cpu(count: int) -> list[str]:
    """Splits the CPU into ``count`` logical devices (before TF initialises); for tests."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def gpu_hint() -> str | None:
    """A warning with the fix when an NVIDIA GPU is present but TensorFlow sees none."""
    import shutil

    import tensorflow as tf

    has_nvidia = os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi")
    if not has_nvidia or tf.config.list_physical_devices("GPU"):
        return None
    built = tf.test.is_built_with_cuda()
    fix = (
        "this TensorFlow has no CUDA support (tensorflow-cpu?): pip uninstall -y "
        "tensorflow-cpu tensorflow && pip install 'siameseim-tf[gpu]'"
        if not built
        else "TensorFlow has CUDA but finds no usable GPU: check the driver and CUDA "
        "libraries (pip install 'siameseim-tf[gpu]' brings CUDA/cuDNN from pip)"
    )
    return f"an NVIDIA GPU is present but TensorFlow sees none: {fix}"


def describe_devices(strategy) -> str:
    """One line: replicas, device kinds and the strategy's class."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    kind = f"{len(gpus)} GPU" if gpus else "CPU"
    name = type(strategy).__name__
    if name.startswith("_Default"):
        return f"one device ({kind}, no tf.distribute strategy)"
    return f"{name}, {strategy.num_replicas_in_sync} replica(s) on {kind}"


def agreed_precision(strategy, precision: str) -> tuple[str, str]:
    """:func:`~siameseim_tf.hardware.resolve_precision`, the same on every worker.

    "auto" decides per machine (and with AVX512-BF16 but no AMX, by timing matmuls), so the
    workers of a MultiWorkerMirroredStrategy cluster on different CPUs or GPUs may choose
    differently; their all-reduces need one dtype. They vote: a policy every replica chose
    is kept, otherwise all train in float32 and say why. Call it after the strategy exists
    (the vote is a collective; the timing runs TensorFlow ops, which must not precede a
    MultiWorkerMirroredStrategy's creation).
    """
    import tensorflow as tf

    from siameseim_tf.hardware import PRECISIONS, resolve_precision

    policy, reason = resolve_precision(precision)
    if precision != "auto" or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return policy, reason
    choice = PRECISIONS.index(policy)
    votes = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.one_hot(choice, len(PRECISIONS))),
        axis=None,
    )
    counts = {name: int(n) for name, n in zip(PRECISIONS, votes.numpy()) if n > 0}
    if len(counts) == 1:
        return policy, reason
    chosen = ", ".join(f"{n} replica(s) {name}" for name, n in counts.items())
    return "float32", f"auto: the workers chose differently ({chosen}); float32 on all"
