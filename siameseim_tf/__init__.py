"""siameseim-tf: Siamese Image Modeling (Tao et al., CVPR 2023) for Keras 3 / TensorFlow.

Heavy imports are lazy so that ``siameseim_tf.serving`` works without TensorFlow. The
Keras classes are registered for ``keras.saving.load_model`` when Keras is already
imported (``import keras`` then ``import siameseim_tf``), on first use of any of the
names below, or by ``siameseim_tf.load_model(path)``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys

__version__ = "0.1.0"

# TensorFlow turns its oneDNN graph rewrites (a MatMul as one oneDNN GEMM, ...) on by
# default only on x86 CPUs with AVX512-VNNI, AVX512-BF16 or AMX; on older ones (AVX2,
# Skylake servers) a MatMul runs as Eigen's blocked contraction calling oneDNN per block,
# packing twice. With them on the float32 train step ran 1.09x faster on an AVX2 CPU
# (docs/speed.md "oneDNN's rewrites on every x86-64"). TensorFlow reads the variable once,
# when it loads, so it is set before that; a value the user set wins.
ON_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
ONEDNN_OPTS_DEFAULTED = (
    ON_X86_64 and "tensorflow" not in sys.modules and "TF_ENABLE_ONEDNN_OPTS" not in os.environ
)
if ONEDNN_OPTS_DEFAULTED:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"

_LAZY = {
    "SiameseIM": "siameseim_tf.models.siameseim",
    "MAE": "siameseim_tf.models.mae",
    "ViTEncoder": "siameseim_tf.models.vit",
    "ViTClassifier": "siameseim_tf.models.classifier",
    "unigrad_loss": "siameseim_tf.losses.unigrad",
}


def load_model(path, **kwargs):
    """``keras.saving.load_model`` with this package's classes registered (a run's
    ``model.keras`` / ``encoder.keras``, a ``classifier.keras``)."""
    import keras

    importlib.import_module("siameseim_tf.models")  # registers every serializable class
    return keras.saving.load_model(path, **kwargs)


if sys.modules.get("keras") is not None:  # Keras is loaded anyway: register the classes
    importlib.import_module("siameseim_tf.models")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'siameseim_tf' has no attribute {name!r}")


__all__ = list(_LAZY) + ["__version__", "load_model"]
