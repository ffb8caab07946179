"""LiteRT (TensorFlow Lite) export with Keras' own exporter, checked against the encoder.

The ``.tflite`` file takes preprocessed float32 images [B, S, S, 3] (NHWC, ImageNet
mean / std, as the ONNX model) under the signature ``serving_default`` with input
``images`` and outputs ``embedding`` / ``cls`` / ``patch_tokens``; the batch dimension is
dynamic. A JSON file beside it records the preprocessing (``<name>.tflite.json``).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from siameseim_tf.export.common import ExportVerificationError, float32_copy, sample_pixels
from siameseim_tf.serving.contract import ENCODED_INPUT_NAME, OUTPUT_SOURCES
from siameseim_tf.serving.preprocessing import IMAGENET_MEAN, IMAGENET_STD, resize_size


def interpreter(path: str):
    """A LiteRT interpreter: ``ai_edge_litert`` when installed, else TF's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its deprecation
            return tf.lite.Interpreter(model_path=path)
    return Interpreter(model_path=path)


def run_litert(path: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs the exported signature on preprocessed images [B, S, S, 3]."""
    runner = interpreter(path).get_signature_runner("serving_default")
    return runner(**{ENCODED_INPUT_NAME: np.asarray(images, np.float32)})


def export_litert(encoder: keras.Model, path: str, atol: float = 1e-4) -> str:
    """Writes ``path`` (.tflite) and checks it on sample images; returns ``path``."""
    from siameseim_tf.serving.preprocessing import preprocess_numpy

    encoder = float32_copy(encoder)
    size = encoder.image_size
    inputs = keras.Input((size, size, 3), name=ENCODED_INPUT_NAME)
    features = encoder(inputs, training=False)
    serving = keras.Model(inputs, {name: features[key] for name, key in OUTPUT_SOURCES.items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    serving.export(path, format="litert", verbose=False)
    images = np.stack([preprocess_numpy(p, size) for p in sample_pixels(2, 48, 40)])
    expected = {k: keras.ops.convert_to_numpy(v) for k, v in serving(images).items()}
    got = run_litert(path, images)
    worst = max(float(np.max(np.abs(expected[k] - got[k]))) for k in expected)
    if worst > atol:
        raise ExportVerificationError(f"LiteRT output differs from Keras by {worst:.2e} > {atol}")
    sidecar = dict(
        image_size=size,
        resize_size=resize_size(size),
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        input="images: float32 [B, S, S, 3] NHWC, resized, centre-cropped, normalised",
        outputs=list(OUTPUT_SOURCES),
        max_abs_diff_vs_keras=worst,
    )
    with open(path + ".json", "w") as handle:
        json.dump(sidecar, handle, indent=2)
    return path
