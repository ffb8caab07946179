"""The fused view kernel (``fused_views.cc``): built with the system C++ compiler on first
use, cached, loaded with ``tf.load_op_library``.

Why: the same computation as TF operations (resize.py, color.py) spends most of its time
in per-operation overhead and intermediate tensors; one C++ loop nest per view is ~3x
cheaper (docs/data_pipeline.md). The TF-op path stays the reference (tests compare the
two) and the fallback when no compiler is available.

Build: ``g++ -O3 -march=native`` with TensorFlow's own compile and link flags, into
``$SIAMESEIM_CACHE`` (default ``~/.cache/siameseim_tf``), keyed by the source, the
TensorFlow version, the compiler and the CPU, under a file lock (several processes, e.g.
MultiWorkerMirroredStrategy workers, may start at once). ``SIAMESEIM_NATIVE=0`` disables
it. Call :func:`status` to see whether it is in use and why not.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
from pathlib import Path

SOURCE = Path(__file__).with_name("fused_views.cc")
MATHS = Path(__file__).with_name("fused_views_math.cc")
HEADER = Path(__file__).with_name("fused_views.h")
_lock = threading.Lock()
_state: dict = {}


def _cache_dir() -> Path:
    root = os.environ.get("SIAMESEIM_CACHE") or Path.home() / ".cache" / "siameseim_tf"
    return Path(root)


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = platform.processor()
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr[-2000:]}")


def _build(tf, compiler: str, target: Path) -> None:
    # The maths for this CPU (-march=native); the TF glue with TF's flags only: Eigen's
    # headers do not compile with every -m flag (AVX512-FP16) and must match TF's build.
    maths = target.with_suffix(".math.o")
    _run(
        [
            compiler,
            "-O3",
            "-march=native",
            # lets GCC turn the hue step's selects into vector blends (nothing here reads
            # floating-point exception flags or errno); results are unchanged
            "-fno-trapping-math",
            "-fno-math-errno",
            "-fPIC",
            "-std=c++17",
            "-c",
            str(MATHS),
            "-o",
            str(maths),
        ]
    )
    tmp = target.with_suffix(".tmp")
    _run(
        [
            compiler,
            "-O2",
            "-w",  # TF's headers warn (deprecations) by the hundred
            "-shared",
            "-fPIC",
            str(SOURCE),
            str(maths),
            "-o",
            str(tmp),
            *tf.sysconfig.get_compile_flags(),
            *tf.sysconfig.get_link_flags(),
        ]
    )
    os.replace(tmp, target)
    maths.unlink()


def _load():
    import tensorflow as tf

    if os.environ.get("SIAMESEIM_NATIVE", "1") == "0":
        raise RuntimeError("disabled by SIAMESEIM_NATIVE=0")
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++) on PATH")
    key = hashlib.sha256(
        SOURCE.read_bytes()
        + MATHS.read_bytes()
        + HEADER.read_bytes()
        + f"{tf.__version__}|{compiler}|{_cpu_signature()}".encode()
    ).hexdigest()[:16]
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"fused_views_{key}.so"
    with open(folder / f"fused_views_{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build even with several processes
        if not target.exists():
            print(f"siameseim_tf: building the fused view kernel -> {target}", file=sys.stderr)
            _build(tf, compiler, target)
    return tf.load_op_library(str(target))


def load():
    """The op library (``.sim_fused_views``), or None if it cannot be built here.

    Plain Python (called while tf.data / tf.function trace the view functions; the build
    runs then, once per cache key, not per element)."""
    with _lock:
        if "module" not in _state:
            try:
                _state["module"], _state["reason"] = _load(), "loaded"
            except Exception as error:  # noqa: BLE001 - any failure means: use the TF path
                _state["module"], _state["reason"] = None, str(error)
                print(
                    f"siameseim_tf: fused view kernel unavailable ({error}); using TF ops",
                    file=sys.stderr,
                )
        return _state["module"]


def status() -> str:
    """ "loaded", or why the TF-op path is used."""
    load()
    return _state["reason"]
