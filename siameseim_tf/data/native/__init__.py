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

from pathlib import Path

from siameseim_tf.native_build import NativeLibrary

_LIBRARY = NativeLibrary(Path(__file__).parent, "fused_views")

# load(): the op library, or None if it cannot be built here (plain Python, safe while
# tf.data / tf.function trace; the build runs once per cache key); status(): "loaded" or
# why the TF-op fallback is used.
load = _LIBRARY.load
status = _LIBRARY.status
