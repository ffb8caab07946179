"""ONNX Runtime on another x86-64 CPU, emulated: QEMU's user-mode emulator (Debian package
qemu-user) runs a Python child whose CPUID says that CPU, so ONNX Runtime picks the
kernels it would pick there (its int8 GEMMs are chosen by CPUID: VNNI, AVX2 u8s8, SSE /
AVX). Correct results, not timings (QEMU translates every instruction). QEMU emulates
x86-64 up to AVX2, not AVX-512: "Haswell-v4" is an AVX2 CPU without VNNI,
"SandyBridge" one with AVX only.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

QEMU = shutil.which("qemu-x86_64")

# The child: the CPU features numpy reads from CPUID, then every model's outputs.
_CHILD = r"""
import json, sys, numpy as np, onnxruntime as ort
try:
    from numpy._core._multiarray_umath import __cpu_features__ as cpu
except ImportError:  # numpy 1.x
    from numpy.core._multiarray_umath import __cpu_features__ as cpu
features = {k: bool(cpu.get(k)) for k in ("AVX", "AVX2", "FMA3", "AVX512F", "AVX512_ICL")}
images = np.load(sys.argv[1])
outputs = []
for path in sys.argv[2:]:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: images})
    outputs.append({n: v.tolist() for n, v in zip(names, values)})
print(json.dumps({"cpu": features, "outputs": outputs}))
"""


def qemu_skip_reason() -> str | None:
    """Why ONNX Runtime cannot run under an emulated CPU here (None when it can)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"QEMU's x86-64 user-mode emulation is for x86-64 hosts, not {platform.machine()}"
    if QEMU is None:
        return "qemu-x86_64 not found (Debian package qemu-user; scripts/setup.sh installs it)"
    return None


@functools.cache
def python_fails_on(cpu: str) -> str | None:
    """Why this Python with ONNX Runtime cannot start under ``-cpu <cpu>`` (None when it
    can): e.g. an interpreter built for newer instructions than that CPU has."""
    command = [QEMU, "-cpu", cpu, sys.executable, "-c", "import numpy, onnxruntime"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return f"python under qemu -cpu {cpu} did not start within 300 s"
    if result.returncode != 0:
        return f"python under qemu -cpu {cpu} exited {result.returncode}: {result.stderr[-300:]}"
    return None


def onnx_outputs_on(cpu: str, paths: list[str], images: np.ndarray, timeout: float = 600):
    """Runs every ONNX model of ``paths`` on ``images`` under ``qemu-x86_64 -cpu <cpu>``.

    Returns ``(features, outputs)``: the CPUID features the child saw ({"AVX2": bool, ...})
    and, per path, {output name: array}.
    """
    with tempfile.TemporaryDirectory() as tmp:
        images_path = os.path.join(tmp, "images.npy")
        np.save(images_path, images)
        command = [QEMU, "-cpu", cpu, sys.executable, "-c", _CHILD, images_path, *paths]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"qemu -cpu {cpu} exited {result.returncode}: {result.stderr[-800:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    outputs = [{k: np.asarray(v, np.float32) for k, v in o.items()} for o in report["outputs"]]
    return report["cpu"], outputs
