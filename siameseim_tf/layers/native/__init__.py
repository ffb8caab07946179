"""The C++ kernels of graph-mode training, each library built with the system C++ compiler
on first use and cached (:mod:`siameseim_tf.native_build`):

- ``fused_block.cc``: LayerNorm forward / backward, exact GELU forward / backward, softmax's
  backward, bias add and its gradient; float32 and bfloat16;
- ``attention.cc``: multi-head self-attention from the qkv projection (its bias added
  inside), forward and backward; float32;
- ``batch_norm.cc``: TokenBatchNorm's passes (channel moments, the gradient's channel sums,
  per-channel affine maps); float32.

:mod:`siameseim_tf.layers.fused` falls back to XLA-compiled kernels or TF ops when they
cannot be built (``SIAMESEIM_NATIVE=0``, no compiler).
"""

from __future__ import annotations

from pathlib import Path

from siameseim_tf.native_build import NativeLibrary

_BLOCK = NativeLibrary(Path(__file__).parent, "fused_block")
_ATTENTION = NativeLibrary(Path(__file__).parent, "attention")
_BATCH_NORM = NativeLibrary(Path(__file__).parent, "batch_norm")

# load(): the op library, or None if it cannot be built here (plain Python, safe while
# tf.data / tf.function trace; the build runs once per cache key); status(): "loaded" or
# why the TF-op fallback is used.
load, status = _BLOCK.load, _BLOCK.status
load_attention, attention_status = _ATTENTION.load, _ATTENTION.status
load_batch_norm, batch_norm_status = _BATCH_NORM.load, _BATCH_NORM.status
