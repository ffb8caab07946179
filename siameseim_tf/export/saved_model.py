"""SavedModel export for TF Serving: ``<base>/<model_name>/<version>/``.

Signatures (see :mod:`siameseim_tf.serving.contract`):

- ``serving_default(images: tf.string [B])``: JPEG / PNG bytes, decoded and preprocessed
  inside the graph (method §7);
- ``embed_pixels(pixels: uint8 [B, H, W, 3])``: raw RGB pixels of any size.

Both return ``embedding`` [B, E], ``cls`` [B, E] and ``patch_tokens`` [B, N, E] (float32).
"""

from __future__ import annotations

import io
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from siameseim_tf.export.common import (
    ExportVerificationError,
    check_parity,
    float32_copy,
    sample_pixels,
    serving_outputs,
)
from siameseim_tf.serving.contract import (
    ENCODED_INPUT_NAME,
    PIXELS_INPUT_NAME,
    SIGNATURE_ENCODED,
    SIGNATURE_PIXELS,
)
from siameseim_tf.serving.preprocessing_tf import decode_and_preprocess, preprocess_uint8


def _build_archive(encoder: keras.Model) -> keras.export.ExportArchive:
    """An ExportArchive tracking ``encoder`` with the two serving endpoints."""
    size = encoder.image_size
    archive = keras.export.ExportArchive()
    archive.track(encoder)

    def serve_encoded(images):  # tf.string [B] -> outputs
        return serving_outputs(encoder, decode_and_preprocess(images, size))

    def serve_pixels(pixels):  # uint8 [B, H, W, 3] -> outputs
        return serving_outputs(encoder, preprocess_uint8(pixels, size))

    archive.add_endpoint(
        name=SIGNATURE_ENCODED,
        fn=serve_encoded,
        input_signature=[tf.TensorSpec([None], tf.string, name=ENCODED_INPUT_NAME)],
    )
    archive.add_endpoint(
        name=SIGNATURE_PIXELS,
        fn=serve_pixels,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=PIXELS_INPUT_NAME)],
    )
    return archive


def export_saved_model(
    encoder: keras.Model,
    base_dir: str,
    model_name: str = "siameseim",
    version: int = 1,
    *,
    overwrite: bool = False,
    verify: bool = True,
    atol: float = 1e-4,
    verbose: bool = True,
) -> str:
    """Writes the encoder as a TF Serving SavedModel and checks it after reloading.

    Args:
        encoder: a ViTEncoder (mixed precision is exported from a float32 copy).
        base_dir: TF Serving model base directory's parent.
        model_name: directory name under ``base_dir`` (the model name in TF Serving).
        version: positive integer version directory.
        overwrite: replace an existing version directory.
        verify: reload with ``tf.saved_model.load`` and compare both signatures with the
            in-process encoder (prints max |diff| and cosine; raises above ``atol``).
        atol: tolerance of the verification.
        verbose: print the verification figures.

    Returns:
        The version directory ``<base_dir>/<model_name>/<version>``.
    """
    if int(version) < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    path = os.path.join(base_dir, model_name, str(int(version)))
    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True or a new version")
        shutil.rmtree(path)
    encoder = float32_copy(encoder)
    _build_archive(encoder).write_out(path, verbose=False)
    if verify:
        verify_saved_model(path, encoder, atol=atol, verbose=verbose)
    return path


def _png_bytes(images: np.ndarray) -> list[bytes]:
    """PNG-encodes uint8 [B, H, W, 3] images (lossless, so pixels round-trip exactly)."""
    from PIL import Image

    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def verify_saved_model(
    path: str, encoder: keras.Model, atol: float = 1e-4, verbose: bool = True
) -> dict:
    """Reloads ``path`` and compares both signatures with ``encoder`` on test images.

    Returns:
        {signature: {output: Parity}}; raises ExportVerificationError above ``atol``.
    """
    loaded = tf.saved_model.load(path)
    missing = {SIGNATURE_ENCODED, SIGNATURE_PIXELS} - set(loaded.signatures)
    if missing:
        raise ExportVerificationError(f"{path} lacks signatures {sorted(missing)}")
    size = encoder.image_size
    pixels = sample_pixels(3, size + 13, size + 29)  # [3, H, W, 3], H != W != S
    reference = {
        name: value.numpy()
        for name, value in serving_outputs(encoder, preprocess_uint8(pixels, size)).items()
    }
    by_pixels = loaded.signatures[SIGNATURE_PIXELS](**{PIXELS_INPUT_NAME: tf.constant(pixels)})
    by_bytes = loaded.signatures[SIGNATURE_ENCODED](
        **{ENCODED_INPUT_NAME: tf.constant(_png_bytes(pixels))}
    )
    return {
        SIGNATURE_PIXELS: check_parity(
            f"SavedModel {SIGNATURE_PIXELS}",
            reference,
            {k: v.numpy() for k, v in by_pixels.items()},
            atol,
            verbose,
        ),
        SIGNATURE_ENCODED: check_parity(
            f"SavedModel {SIGNATURE_ENCODED}",
            reference,
            {k: v.numpy() for k, v in by_bytes.items()},
            atol,
            verbose,
        ),
    }
