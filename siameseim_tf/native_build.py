"""Builds, caches and loads the package's C++ TensorFlow op libraries (one home for both).

Each library is a TensorFlow glue file (compiled with TensorFlow's own flags) plus a maths
file compiled with ``-O3 -march=native`` for the CPU it runs on. The ``.so`` goes to
``$SIAMESEIM_CACHE`` (default ``~/.cache/siameseim_tf``), keyed by the sources, the
TensorFlow version, the compiler and the CPU's feature flags, and is built under a file
lock (several processes, e.g. MultiWorkerMirroredStrategy workers, may start at once).
``SIAMESEIM_NATIVE=0`` disables every library, ``SIAMESEIM_NATIVE_SKIP=attention`` (a
comma-separated list of names) some; callers then use their TF-op path.
``SIAMESEIM_MARCH`` replaces ``native`` in ``-march`` (e.g. ``x86-64-v3`` to build for
AVX2 machines on a newer CPU, or to emulate one).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


def cache_dir() -> Path:
    """Where built libraries are kept: ``$SIAMESEIM_CACHE`` or ``~/.cache/siameseim_tf``."""
    root = os.environ.get("SIAMESEIM_CACHE") or Path.home() / ".cache" / "siameseim_tf"
    return Path(root)


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = platform.processor()
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


def _run(*cmds: list[str]) -> None:
    """Runs the commands side by side (independent compiles: one per core) and raises with
    the first failure's compiler output."""
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in cmds
    ]
    try:
        errors = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:  # a timeout or an interrupt leaves no compiler running
            if p.poll() is None:
                p.kill()
    for cmd, proc, stderr in zip(cmds, procs, errors):
        if proc.returncode != 0:
            output = f":\n{stderr[-2000:]}" if stderr.strip() else ""
            raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}){output}")


def march() -> str:
    """The ``-march`` the maths is built for: ``$SIAMESEIM_MARCH`` or ``native``."""
    return os.environ.get("SIAMESEIM_MARCH") or "native"


def build_target() -> str:
    """What the libraries are built for, in words (start-up lines, the doctor)."""
    return "this CPU" if march() == "native" else f"-march={march()} (SIAMESEIM_MARCH)"


def unavailable_reason() -> str | None:
    """Why no library can be built here (switched off, no compiler), or None. The tests ask
    this too, so they skip exactly where the builder would not build."""
    if os.environ.get("SIAMESEIM_NATIVE", "1") == "0":
        return "disabled by SIAMESEIM_NATIVE=0"
    if _compiler() is None:
        return "no C++ compiler (g++) on PATH"
    return None


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


@functools.cache
def _no_fp16_flag(compiler: str) -> list[str]:
    """``-mno-avx512fp16`` where the compiler knows it: TensorFlow's copy of Eigen does not
    compile with AVX512-FP16 on (Sapphire Rapids' -march=native), and nothing here uses it."""
    probe = subprocess.run(
        [compiler, "-mno-avx512fp16", "-fsyntax-only", "-x", "c++", os.devnull],
        capture_output=True,
    )
    return ["-mno-avx512fp16"] if probe.returncode == 0 else []


class NativeLibrary:
    """One op library in ``folder``: ``{name}.cc`` (TF op registration), ``{name}_math.cc``
    (the maths, -march=native) and ``{name}.h`` (shared between the two); the folder's other
    headers (glue shared between libraries) are part of its cache key too.

    Args:
        folder: where the sources are.
        name: their stem; also the cache file's stem and the name printed while building.
    """

    def __init__(self, folder: Path, name: str):
        self.name = name
        self.glue, self.maths = folder / f"{name}.cc", folder / f"{name}_math.cc"
        self._lock = threading.Lock()
        self._state: dict = {}

    def _maths_flags(self, tf, compiler: str, march: str) -> list[str]:
        return [
            "-O3",
            f"-march={march}",
            # lets GCC vectorise selects and min / max (nothing here reads floating-point
            # exception flags or errno); results are unchanged
            "-fno-trapping-math",
            "-fno-math-errno",
            "-DNDEBUG",  # no Eigen range checks
            "-fPIC",
            "-std=c++17",
            *_no_fp16_flag(compiler),
            f"-I{tf.sysconfig.get_include()}",  # Eigen, for maths files that use it
        ]

    def _build(self, tf, compiler: str, march: str, target: Path) -> None:
        # The maths for this CPU (-march=native); the TF glue with TF's flags only: Eigen's
        # headers do not compile with every -m flag (AVX512-FP16) and must match TF's build.
        # The two compile at once (17 + 6 s for the attention library on a Zen 5).
        maths, glue = target.with_suffix(".math.o"), target.with_suffix(".glue.o")
        tf_flags = tf.sysconfig.get_compile_flags()
        _run(
            [
                compiler,
                *self._maths_flags(tf, compiler, march),
                "-c",
                str(self.maths),
                "-o",
                str(maths),
            ],
            # -w: TF's headers warn (deprecations) by the hundred
            [compiler, "-O2", "-w", "-fPIC", *tf_flags, "-c", str(self.glue), "-o", str(glue)],
        )
        tmp = target.with_suffix(".tmp")
        _run(
            [
                compiler,
                "-shared",
                str(glue),
                str(maths),
                "-o",
                str(tmp),
                *tf.sysconfig.get_link_flags(),
            ]
        )
        os.replace(tmp, target)
        maths.unlink()
        glue.unlink()

    def _load(self):
        import tensorflow as tf

        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        if self.name in os.environ.get("SIAMESEIM_NATIVE_SKIP", "").split(","):
            raise RuntimeError(f"disabled by SIAMESEIM_NATIVE_SKIP={self.name}")
        compiler = _compiler()
        march_flag = march()
        key = hashlib.sha256(
            self.glue.read_bytes()
            + self.maths.read_bytes()
            + b"".join(h.read_bytes() for h in sorted(self.glue.parent.glob("*.h")))
            + " ".join(self._maths_flags(tf, compiler, march_flag)).encode()
            + f"{tf.__version__}|{compiler}|{_cpu_signature()}".encode()
        ).hexdigest()[:16]
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{self.name}_{key}.so"
        with open(folder / f"{self.name}_{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build even with several processes
            if not target.exists():
                print(
                    f"siameseim_tf: building {self.name} for {build_target()} (first use, cached "
                    f"after) -> {target}",
                    file=sys.stderr,
                    flush=True,
                )
                start = time.monotonic()
                self._build(tf, compiler, march_flag, target)
                print(
                    f"siameseim_tf: built {self.name} in {time.monotonic() - start:.0f} s",
                    file=sys.stderr,
                )
        return tf.load_op_library(str(target))

    def load(self):
        """The op library, or None if it cannot be built here (the reason: :meth:`status`).

        Plain Python, safe to call while tracing: the build runs once per cache key."""
        with self._lock:
            if "module" not in self._state:
                try:
                    self._state["module"], self._state["reason"] = self._load(), "loaded"
                except Exception as error:  # noqa: BLE001 - any failure means: use TF ops
                    self._state["module"], self._state["reason"] = None, str(error)
                    print(
                        f"siameseim_tf: {self.name} kernels unavailable ({error}); using TF ops",
                        file=sys.stderr,
                    )
            return self._state["module"]

    def status(self) -> str:
        """ "loaded", or why the TF-op path is used."""
        self.load()
        return self._state["reason"]
