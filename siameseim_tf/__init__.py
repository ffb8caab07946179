"""siameseim-tf: Siamese Image Modeling (Tao et al., CVPR 2023) for Keras 3 / TensorFlow.

Heavy imports are lazy so that ``siameseim_tf.serving`` works without TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "SiameseIM": "siameseim_tf.models.siameseim",
    "ViTEncoder": "siameseim_tf.models.vit",
    "unigrad_loss": "siameseim_tf.losses.unigrad",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'siameseim_tf' has no attribute {name!r}")


__all__ = list(_LAZY) + ["__version__"]
