"""What this machine's processor can do fast, and the precision that follows from it.

Imports nothing else of the package (data, layers and training all use it). The rules are
measurements, written down in docs/speed.md:

- a CPU that multiplies bfloat16 natively (AMX-BF16 or AVX512-BF16) runs oneDNN's bfloat16
  matmuls 4-5x faster than float32 (1354 vs 336 GFLOP/s, 2048^2, Xeon with AMX), so
  ``precision="auto"`` trains in ``mixed_bfloat16`` there; elsewhere bfloat16 is emulated
  (slower than float32) and "auto" means ``float32``;
- XLA's CPU backend does not hand bfloat16 dots to oneDNN (272 GFLOP/s in bfloat16 under
  XLA vs 1354 in graph mode), so bfloat16 on a CPU trains in graph mode;
- GPUs: bfloat16 from compute capability 8.0 (Ampere), float16 with loss scaling before.
"""

from __future__ import annotations

import functools
import os

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# oneDNN's ISA levels (``ONEDNN_MAX_CPU_ISA``) at which its bfloat16 matmuls are native.
_ONEDNN_BF16_ISAS = frozenset(
    {
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "ALL",
    }
)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def onednn_isa_cap() -> str | None:
    """The ISA level oneDNN is capped at (``ONEDNN_MAX_CPU_ISA``), None when uncapped."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap and cap.strip() else None


def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16) and
    oneDNN is allowed to use it (``ONEDNN_MAX_CPU_ISA=AVX2`` makes it emulate bfloat16)."""
    cap = onednn_isa_cap()
    if cap is not None and cap not in _ONEDNN_BF16_ISAS:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Compute capability of every GPU TensorFlow sees ([] on a CPU-only machine)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


def resolve_precision(precision: str) -> tuple[str, str]:
    """(Keras dtype policy, why) for ``precision``; "auto" decides from the hardware."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision, "asked for"
    gpus = gpu_compute_capabilities()
    if gpus:
        if min(gpus) >= (8, 0):
            return "mixed_bfloat16", "auto: GPUs of compute capability 8.0+ (bfloat16)"
        return "mixed_float16", "auto: GPUs older than compute capability 8.0 (float16)"
    if cpu_has_native_bf16():
        flag = "amx_bf16" if "amx_bf16" in cpu_flags() else "avx512_bf16"
        return "mixed_bfloat16", f"auto: the CPU multiplies bfloat16 natively ({flag})"
    if onednn_isa_cap() is not None and {"amx_bf16", "avx512_bf16"} & cpu_flags():
        return "float32", f"auto: oneDNN is capped at {onednn_isa_cap()} (no native bfloat16)"
    return "float32", "auto: the CPU has no native bfloat16 (AMX / AVX512-BF16)"


def xla_suits(policy: str) -> bool:
    """False for bfloat16 on a CPU: XLA's CPU backend would not use oneDNN's bfloat16
    matmuls (graph mode is then the fast path)."""
    if "bfloat16" not in policy:
        return True
    return bool(gpu_compute_capabilities())
