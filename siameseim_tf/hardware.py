"""What this machine's processor can do fast, and the precision that follows from it.

Imports nothing else of the package (data, layers and training all use it). The rules are
measurements, written down in docs/speed.md:

- a CPU with AMX-BF16 runs oneDNN's bfloat16 matmuls ~4x faster than float32 (1251 vs
  319 GFLOP/s, 2048^2, Xeon with AMX), so ``precision="auto"`` trains in
  ``mixed_bfloat16`` there;
- AVX512-BF16 without AMX goes both ways: on a Xeon with oneDNN capped below AMX bfloat16
  matmuls were slower than float32 (203 vs 312 GFLOP/s; the step 11.6 vs 15.7 img/s), on
  an AMD EPYC Zen 5 faster (891 vs 469 GFLOP/s; the step 37.5 vs 30.0 img/s). No flag
  tells the two apart, so "auto" measures: a quarter-second of matmuls in both dtypes
  (:func:`bf16_matmul_speedup`), bfloat16 when it is at least ``BF16_MIN_SPEEDUP`` times
  float32;
- without AVX512-BF16 or AMX bfloat16 is emulated: "auto" is ``float32``;
- XLA's CPU backend does not hand bfloat16 dots to oneDNN (272 GFLOP/s in bfloat16 under
  XLA vs 1354 in graph mode; Zen 5: the bf16 step 21.7 img/s under XLA vs 39.1 in graph
  mode), so bfloat16 on a CPU trains in graph mode;
- float32: graph mode beats XLA on every CPU measured, with the package's C++ kernels
  (AVX2 with CPUID masked: 1.20x the XLA step; XLA blocks on 2 replicas / workers 0.86x /
  0.87x graph; AVX-512: graph 1.02-1.14x) and without them (AVX2 masked: 1.09x), so XLA
  only on GPUs. (Earlier AVX2 figures that favoured XLA were capped by environment
  variables only, under which XLA's dots still ran YNNPACK's AVX-512 kernels, and ran
  without oneDNN's rewrites.)
- GPUs: bfloat16 from compute capability 8.0 (Ampere), float16 with loss scaling before.
"""

from __future__ import annotations

import functools
import os

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# bfloat16 over float32 matmul throughput from which "auto" trains in bfloat16 on a CPU
# with AVX512-BF16 but no AMX. Measured steps: matmul ratio 0.65 -> step 0.74x float32
# (capped Xeon), 1.90 -> 1.25x (Zen 5); the break-even lies near 1.3, 1.5 leaves a margin
# so that timing noise cannot flip the choice between the workers of one cluster.
BF16_MIN_SPEEDUP = 1.5


def cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({"model name": ..., "flags": ...};
    empty where there is none)."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():
                    break  # the first processor's block ends
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    return frozenset(cpuinfo().get("flags", "").split())


def onednn_isa_cap() -> str | None:
    """The ISA level oneDNN is capped at (``ONEDNN_MAX_CPU_ISA``), None when uncapped."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap and cap.strip() else None


def onednn_allows(*names: str) -> bool:
    """True unless ``ONEDNN_MAX_CPU_ISA`` caps oneDNN at a level whose name contains none
    of ``names`` (oneDNN's level names say what they include: AVX512_CORE_AMX, ALL, ...)."""
    cap = onednn_isa_cap()
    return cap is None or any(name in cap for name in names)


def cpu_has_fast_bf16() -> bool:
    """True when bfloat16 matmuls beat float32 here: the CPU has AMX-BF16 and oneDNN may
    use it (``ONEDNN_MAX_CPU_ISA=AVX2`` or ``AVX512_CORE_BF16`` caps it below AMX)."""
    return onednn_allows("AMX", "ALL") and "amx_bf16" in cpu_flags()


def onednn_capped_below_native_bf16() -> bool:
    """True on a CPU with native bfloat16 whose oneDNN is capped below its bf16 levels (an
    emulated older CPU): TensorFlow still sees the bf16 units and asks the capped oneDNN
    for bf16 kernels it cannot create, and the process aborts."""
    native = bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    return native and not onednn_allows("BF16", "FP16", "AMX", "AVX10", "ALL")


@functools.lru_cache(maxsize=1)
def bf16_matmul_speedup(shape: tuple[int, int, int] = (4096, 384, 1536), rounds: int = 5) -> float:
    """bfloat16 over float32 matmul throughput on this CPU, measured once per process.

    Graph-mode (oneDNN) matmuls of ``[m, k] x [k, n]`` (default: a ViT-S MLP on a batch of
    tokens), both dtypes interleaved ``rounds`` times, each dtype's fastest round; 0.25-0.28
    s on a Zen 5 (native bfloat16). It runs TensorFlow ops: under
    MultiWorkerMirroredStrategy create the strategy first (collective ops must be configured
    before any op runs), as ``training.strategy.agreed_precision`` does.
    """
    import time

    import tensorflow as tf

    if onednn_capped_below_native_bf16():  # TF would abort in the bf16 matmul
        raise RuntimeError(f"no bfloat16 matmuls under ONEDNN_MAX_CPU_ISA={onednn_isa_cap()}")
    m, k, n = shape
    with tf.device("/CPU:0"):
        operands = {
            dtype: (
                tf.cast(tf.random.normal((m, k)), dtype),
                tf.cast(tf.random.normal((k, n)), dtype),
            )
            for dtype in (tf.float32, tf.bfloat16)
        }
        matmul = tf.function(lambda a, b: tf.matmul(a, b))
        for a, b in operands.values():  # first calls build oneDNN's primitives
            matmul(a, b).numpy()
        best = {dtype: float("inf") for dtype in operands}
        for _ in range(rounds):
            for dtype, (a, b) in operands.items():
                start = time.perf_counter()
                matmul(a, b).numpy()
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[tf.float32] / best[tf.bfloat16]


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
    if cpu_has_fast_bf16():
        return "mixed_bfloat16", "auto: the CPU multiplies bfloat16 with AMX (amx_bf16)"
    if onednn_capped_below_native_bf16():
        return "float32", f"auto: oneDNN is capped at {onednn_isa_cap()} (no native bfloat16)"
    if "avx512_bf16" in cpu_flags():
        speedup = bf16_matmul_speedup()
        measured = f"bfloat16 matmuls ran {speedup:.2f}x float32 here (AVX512-BF16, no AMX)"
        if speedup >= BF16_MIN_SPEEDUP:
            return "mixed_bfloat16", f"auto: {measured}"
        return "float32", f"auto: {measured}, below {BF16_MIN_SPEEDUP}x"
    return "float32", "auto: the CPU has no AMX-BF16 or AVX512-BF16 (bfloat16 would be emulated)"


def xla_rule(policy: str) -> tuple[bool, str]:
    """(whether XLA beats graph mode (with its fused kernels) here, why), as measured on one
    device (whole-step XLA) and on 2 replicas / 2 workers (XLA-compiled blocks):

    - GPUs: XLA (not run here);
    - bfloat16 on a CPU: graph mode (XLA's CPU backend does not use oneDNN's bf16 matmuls);
    - float32 on a CPU: graph mode, with oneDNN's rewrites (siameseim_tf/__init__) and the
      C++ kernels. AVX2 with CPUID masked: graph 1.20x the XLA step, XLA blocks 0.86x graph
      on 2 replicas and 0.87x on 2 workers; without the C++ kernels graph 1.09x XLA;
      AVX-512: graph 1.02-1.14x.

    Other policies on a CPU (float16) follow the float32 rule, not measured for them.
    """
    if gpu_compute_capabilities():
        return True, "GPU: XLA"
    if "bfloat16" in policy:
        return False, "bfloat16 on a CPU: XLA's CPU backend does not use oneDNN's bf16 matmuls"
    rule = "on a CPU: graph mode with oneDNN's matmuls and the fused kernels measured faster"
    if policy != "float32":
        return False, f"float32's rule {rule} (not measured in {policy})"
    return False, f"float32 {rule}"


def xla_suits(policy: str) -> bool:
    """Whether XLA beats graph mode here (:func:`xla_rule`, without the reason)."""
    return xla_rule(policy)[0]
