"""What training will run on this machine, and why, before any training starts.

The same decisions ``pretrain`` makes at start-up (:mod:`siameseim_tf.hardware` for the
precision, :func:`~siameseim_tf.training.run.xla_mode` for graph mode or XLA, the C++
kernels of graph mode), gathered in one report for the ``siameseim doctor`` command: a
user on a new CPU or GPU sees what the library picks there before launching a long run,
and each line says which measurement or rule decided it.
"""

from __future__ import annotations

import dataclasses
import os
import types


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the report: ``topic`` (short), ``value`` (what and why) and whether
    it needs the user's attention (``warning``)."""

    topic: str
    value: str
    warning: bool = False


# CPU features that change what the library runs (docs/speed.md).
RELEVANT_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name, vendor, family and model from /proc/cpuinfo, e.g. "AMD EPYC
    (AuthenticAMD family 26 model 2)": virtual machines often give only a generic name,
    and the family tells the generation ("unknown CPU" where there is no /proc/cpuinfo)."""
    from siameseim_tf.hardware import cpuinfo

    fields = cpuinfo(path)
    name = fields.get("model name", "unknown CPU")
    labels = {"vendor_id": "", "cpu family": "family ", "model": "model "}
    ids = [f"{label}{fields[key]}" for key, label in labels.items() if key in fields]
    return f"{name} ({' '.join(ids)})" if ids else name


def relevant_cpu_flags() -> list[str]:
    """Which of :data:`RELEVANT_CPU_FLAGS` this CPU has."""
    from siameseim_tf.hardware import cpu_flags

    return [f for f in RELEVANT_CPU_FLAGS if f in cpu_flags()]


def _cpu_line() -> Finding:
    from siameseim_tf.hardware import onednn_isa_cap

    present = relevant_cpu_flags()
    cap = onednn_isa_cap()
    value = (
        f"{cpu_model()}, {os.cpu_count()} logical cores; "
        f"{' '.join(present) if present else 'none of ' + ' '.join(RELEVANT_CPU_FLAGS)}"
    )
    if cap:
        value += f"; oneDNN capped at {cap} (ONEDNN_MAX_CPU_ISA)"
    return Finding("cpu", value)


def _tensorflow_line() -> Finding:
    import keras
    import tensorflow as tf

    cuda = "built with CUDA" if tf.test.is_built_with_cuda() else "CPU-only build"
    onednn, missing = _onednn_rewrites()
    value = f"{tf.__version__} ({cuda}), keras {keras.__version__}, {onednn}"
    return Finding("tensorflow", value, warning=missing)


def _install_lines() -> list[Finding]:
    """A warning when two TensorFlow distributions share this environment."""
    from siameseim_tf.install import tensorflow_collision_hint

    hint = tensorflow_collision_hint()
    return [Finding("install", hint, warning=True)] if hint else []


def _onednn_rewrites() -> tuple[str, bool]:
    """(whether TensorFlow's oneDNN graph rewrites are on and why, whether they are missing
    where siameseim_tf would have turned them on: see siameseim_tf/__init__)."""
    from tensorflow.python.util import _pywrap_util_port

    import siameseim_tf

    if _pywrap_util_port.IsMklEnabled():
        set_by = " (set by siameseim_tf)" if siameseim_tf.ONEDNN_OPTS_DEFAULTED else ""
        return f"oneDNN rewrites on{set_by}", False
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" or not siameseim_tf.ON_X86_64:
        return "oneDNN rewrites off", False
    return (
        "oneDNN rewrites off: TensorFlow was imported before siameseim_tf; import "
        "siameseim_tf first or set TF_ENABLE_ONEDNN_OPTS=1 (float32 1.09x faster on AVX2)",
        True,
    )


def _devices_lines() -> list[Finding]:
    import tensorflow as tf

    from siameseim_tf.training.strategy import gpu_hint

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    value = (
        f"{len(gpus)} GPU ({', '.join(names)}): MirroredStrategy over them"
        if len(gpus) > 1
        else f"1 GPU ({names[0]})"
        if gpus
        else "CPU only (no GPU visible to TensorFlow)"
    )
    lines = [Finding("devices", value)]
    if hint := gpu_hint():
        lines.append(Finding("gpu", hint, warning=True))
    return lines


def _kernels_line(policy: str, batch_norm: bool) -> Finding:
    from siameseim_tf.layers.fused import describe_backend

    value = describe_backend(policy, batch_norm)
    if value.startswith("XLA-compiled"):
        # Graph mode still runs, with the XLA-compiled kernels: slower, not wrong. A
        # warning when the build failed (not when switched off, nor for a GPU).
        failed = "C++ unavailable" in value and "disabled by" not in value
        return Finding("kernels", f"graph mode's kernels {value}", warning=failed)
    from siameseim_tf.native_build import build_target, cache_dir

    return Finding(
        "kernels", f"graph mode's kernels: {value} (built for {build_target()} in {cache_dir()})"
    )


def machine_report(precision: str = "auto", batch_norm: bool = True) -> list[Finding]:
    """The report, in order: TensorFlow, CPU, devices, precision, XLA on one device and on
    several replicas, and the C++ kernels graph mode would use (built here on first use).

    ``precision`` is what the run would ask for ("auto" decides from the hardware, and with
    AVX512-BF16 but no AMX times a quarter-second of matmuls to do so); ``batch_norm``:
    the model has BatchNorm blocks (SiameseIM's projector and predictor do).
    """
    from siameseim_tf.hardware import resolve_precision, xla_rule
    from siameseim_tf.training.run import xla_mode

    lines = [_tensorflow_line(), *_install_lines(), _cpu_line(), *_devices_lines()]
    policy, reason = resolve_precision(precision)
    lines.append(Finding("precision", f"{policy} ({reason})"))
    what = {"step": "on, the whole train step", "blocks": "on, each replica's blocks"}
    why, modes = xla_rule(policy)[1], []
    for replicas, topic in ((1, "xla, one device"), (2, "xla, 2+ replicas")):
        modes.append(xla_mode(None, types.SimpleNamespace(num_replicas_in_sync=replicas), policy))
        value = what.get(modes[-1], "off, graph mode")
        lines.append(Finding(topic, f"{value}: {why}"))
    if "off" in modes:
        lines.append(_kernels_line(policy, batch_norm))
    else:
        lines.append(Finding("kernels", "not used: XLA fuses the element-wise work itself"))
    return lines


def format_report(lines: list[Finding]) -> str:
    """The report as aligned ``topic  value`` lines, warnings marked."""
    width = max(len(f.topic) for f in lines)
    return "\n".join(
        f"{f.topic:<{width}}  {'WARNING ' if f.warning else ''}{f.value}" for f in lines
    )
