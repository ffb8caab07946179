"""Reuse a saved SiameseIM encoder inside your own Keras model (frozen or fine-tuned).

    python examples/keras_reuse.py                      # tiny random encoder, 1 epoch
    python examples/keras_reuse.py --checkpoint encoder.keras --trainable

The encoder is a Keras model saved as ``.keras``; ``keras.saving.load_model`` restores it
once ``siameseim_tf.models`` is imported (that registers its classes). Called on
ImageNet-normalised float32 images [B, S, S, 3] it returns a dict with ``pooled`` [B, E]
(mean of patch tokens), ``cls`` [B, E] and ``tokens`` [B, N, E].
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
import numpy as np

import siameseim_tf.models  # noqa: F401  (registers ViTEncoder & co. for load_model)


def save_tiny_encoder(path: str) -> str:
    """Writes a randomly initialised tiny encoder to ``path`` (stand-in for a trained one)."""
    from siameseim_tf.models.vit import ViTEncoder, preset_arguments

    encoder = ViTEncoder(**preset_arguments("tiny", image_size=32, patch_size=8, depth=2))
    encoder.save(path)
    return path


def build_classifier(encoder: keras.Model, num_classes: int, trainable: bool) -> keras.Model:
    """Functional model: images [B, S, S, 3] -> encoder pooled feature -> Dense logits."""
    encoder.trainable = trainable
    size = encoder.image_size
    images = keras.Input((size, size, 3), name="images")  # ImageNet-normalised float32
    # A frozen encoder also stays in inference mode (no drop-path) during fit().
    features = encoder(images) if trainable else encoder(images, training=False)
    pooled = keras.layers.LayerNormalization(name="head_norm")(features["pooled"])  # [B, E]
    logits = keras.layers.Dense(num_classes, name="head")(pooled)  # [B, num_classes]
    return keras.Model(images, logits, name="siameseim_classifier")


def main(checkpoint: str | None = None, trainable: bool = False, steps: int = 2) -> dict:
    """Loads the encoder, builds a classifier, trains a few steps on random data.

    Returns:
        {"encoder_changed": bool, "head_changed": bool, "loss": float}.
    """
    workdir = tempfile.mkdtemp()
    checkpoint = checkpoint or save_tiny_encoder(os.path.join(workdir, "encoder.keras"))
    encoder = keras.saving.load_model(checkpoint, compile=False)
    encoder = getattr(encoder, "encoder", encoder)  # a full SiameseIM model -> its encoder
    model = build_classifier(encoder, num_classes=10, trainable=trainable)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    rng = np.random.default_rng(0)
    size = encoder.image_size
    x = rng.normal(size=(8 * steps, size, size, 3)).astype("float32")  # stand-in images
    y = rng.integers(0, 10, size=(8 * steps,))
    before_encoder = [w.copy() for w in encoder.get_weights()]
    before_head = model.get_layer("head").get_weights()[0].copy()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    changed = any(not np.array_equal(a, b) for a, b in zip(before_encoder, encoder.get_weights()))

    model.save(os.path.join(workdir, "classifier.keras"))  # the whole model saves and reloads
    keras.saving.load_model(os.path.join(workdir, "classifier.keras"), compile=False)
    return {
        "encoder_changed": changed,
        "head_changed": not np.array_equal(before_head, model.get_layer("head").get_weights()[0]),
        "loss": float(history.history["loss"][-1]),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help=".keras encoder (default: a tiny random one)")
    parser.add_argument("--trainable", action="store_true", help="fine-tune the encoder too")
    print(main(**vars(parser.parse_args())))
