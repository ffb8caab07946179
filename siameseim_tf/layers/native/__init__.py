"""The fused transformer-block kernels (``fused_block.cc``): LayerNorm forward / backward,
exact GELU forward / backward and softmax's backward as C++ TensorFlow ops for graph-mode
training, float32 and bfloat16. Built with the system C++ compiler on first use and cached
(:mod:`siameseim_tf.native_build`); :mod:`siameseim_tf.layers.fused` falls back to its
XLA-compiled kernels when they cannot be built (``SIAMESEIM_NATIVE=0``, no compiler).
"""

from __future__ import annotations

from pathlib import Path

from siameseim_tf.native_build import NativeLibrary

_LIBRARY = NativeLibrary(Path(__file__).parent, "fused_block")

# load(): the op library, or None if it cannot be built here (plain Python, safe while
# tf.data / tf.function trace; the build runs once per cache key); status(): "loaded" or
# why the TF-op fallback is used.
load = _LIBRARY.load
status = _LIBRARY.status
