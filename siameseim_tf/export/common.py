"""Helpers shared by the SavedModel and ONNX exporters: float32 copies, outputs, parity."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from siameseim_tf.serving.contract import OUTPUT_NAMES, OUTPUT_SOURCES, PROBABILITIES


class ExportVerificationError(RuntimeError):
    """An exported model disagrees with the in-process encoder beyond tolerance."""


def is_float32(model: keras.Model) -> bool:
    """True when every layer computes in float32 (no mixed precision)."""
    return all(layer.dtype_policy.compute_dtype == "float32" for layer in model._flatten_layers())


def float32_copy(encoder: keras.Model) -> keras.Model:
    """The encoder itself if it is float32, else a float32 clone with the same weights
    (every sub-layer receives the parent's dtype policy, so the clone is float32 through).

    Mixed-precision encoders (``mixed_bfloat16`` / ``mixed_float16``) keep float32
    variables, so the clone's weights are exact copies.
    """
    if is_float32(encoder):
        return encoder
    config = encoder.get_config()
    config["dtype"] = "float32"  # sub-layers take the parent's policy
    if isinstance(config.get("encoder"), dict):  # a classifier: its encoder too
        config["encoder"]["config"]["dtype"] = "float32"
    clone = encoder.__class__.from_config(config)
    clone.set_weights(encoder.get_weights())
    return clone


def is_classifier(model: keras.Model) -> bool:
    """A fine-tuned classifier (an encoder with a ``head``), not a bare encoder."""
    return hasattr(model, "head") and hasattr(model, "encoder")


def output_names(model: keras.Model) -> tuple[str, ...]:
    """The exported outputs: the encoder's three, plus ``probabilities`` for a classifier."""
    return OUTPUT_NAMES + ((PROBABILITIES,) if is_classifier(model) else ())


def serving_outputs(model: keras.Model, images) -> dict:
    """Serving outputs of an encoder or a classifier on preprocessed float32 images
    [B, S, S, 3].

    Returns:
        {"embedding": [B, E], "cls": [B, E], "patch_tokens": [B, N, E]}, float32 tensors,
        and for a classifier "probabilities" [B, C] (softmax of the head's logits).
    """
    encoder = model.encoder if is_classifier(model) else model
    features = encoder(images, training=False)
    outputs = {
        name: keras.ops.cast(features[key], "float32") for name, key in OUTPUT_SOURCES.items()
    }
    if is_classifier(model):
        logits = model.head(features["pooled"])  # [B, C]
        outputs[PROBABILITIES] = keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)
    return outputs


def load_exportable(path: str) -> keras.Model:
    """Loads a ``.keras`` file for export: a classifier as it is, else its encoder."""
    import siameseim_tf.models  # noqa: F401  (registers the serializable classes)
    import siameseim_tf.models.classifier  # noqa: F401

    model = keras.saving.load_model(path, compile=False)
    return model if is_classifier(model) else getattr(model, "encoder", model)


def load_encoder(path: str) -> keras.Model:
    """Loads a ``.keras`` file holding a ViTEncoder or a model with an ``.encoder``."""
    import siameseim_tf.models  # noqa: F401  (registers the serializable classes)

    model = keras.saving.load_model(path, compile=False)
    return getattr(model, "encoder", model)


@dataclass
class Parity:
    """Agreement of one output with its reference."""

    max_abs_diff: float
    min_cosine: float

    def __str__(self) -> str:
        return f"max|diff|={self.max_abs_diff:.2e} min cosine={self.min_cosine:.8f}"


def parity(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Max absolute difference and the smallest per-sample cosine similarity."""
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)  # [B, D]
    candidate = np.asarray(candidate, np.float64).reshape(len(candidate), -1)
    if reference.shape != candidate.shape:
        raise ExportVerificationError(f"shape {candidate.shape} != expected {reference.shape}")
    dots = np.sum(reference * candidate, axis=1)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = dots / np.maximum(norms, 1e-30)
    return Parity(float(np.max(np.abs(reference - candidate))), float(np.min(cosine)))


def check_parity(
    label: str, reference: dict, candidate: dict, atol: float, verbose: bool = True
) -> dict[str, Parity]:
    """Compares every output; prints the figures and raises above ``atol``."""
    results = {name: parity(reference[name], candidate[name]) for name in reference}
    for name, result in results.items():
        if verbose:
            print(f"[{label}] {name}: {result}")
        if not result.max_abs_diff <= atol:  # also catches NaN
            raise ExportVerificationError(
                f"{label}: output {name!r} differs from the Keras encoder: {result} "
                f"(tolerance {atol:g})"
            )
    return results


def sample_pixels(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 test images [B, H, W, 3] (gradients + noise; deterministic)."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[None, :, None, None]
    cols = np.linspace(0, 1, width)[None, None, :, None]
    phase = rng.uniform(0, 2 * np.pi, (batch, 1, 1, 3))
    base = 127.5 + 100 * np.sin(6 * rows + 4 * cols + phase)
    noise = rng.normal(0, 10, (batch, height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)
