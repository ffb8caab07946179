"""SavedModel export: TF Serving layout, both signatures, parity after reloading."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from siameseim_tf.export.common import ExportVerificationError, check_parity, sample_pixels
from siameseim_tf.export.saved_model import export_saved_model, verify_saved_model
from siameseim_tf.serving.preprocessing import decode_image, preprocess_numpy
from tests.export.tiny import image_bytes


def test_layout_and_signatures(saved_model_dir):
    assert saved_model_dir.endswith(os.path.join("tiny", "3"))
    assert os.path.isfile(os.path.join(saved_model_dir, "saved_model.pb"))
    loaded = tf.saved_model.load(saved_model_dir)
    assert {"serving_default", "embed_pixels"} <= set(loaded.signatures)
    outputs = loaded.signatures["embed_pixels"](pixels=tf.constant(sample_pixels(2, 50, 70)))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "embedding": (2, 192),
        "cls": (2, 192),
        "patch_tokens": (2, 16, 192),
    }


def test_reloaded_outputs_match_encoder(saved_model_dir, tiny_encoder):
    results = verify_saved_model(saved_model_dir, tiny_encoder, atol=1e-4, verbose=False)
    for per_output in results.values():
        for value in per_output.values():
            assert value.max_abs_diff < 1e-4 and value.min_cosine > 0.99999


def test_jpeg_bytes_match_server_preprocessing(saved_model_dir, tiny_encoder):
    """serving_default on JPEG bytes == encoder on the numpy (server) preprocessing."""
    pixels = sample_pixels(2, 77, 51, seed=5)
    encoded = [image_bytes(image, "JPEG", quality=80) for image in pixels]
    loaded = tf.saved_model.load(saved_model_dir)
    got = loaded.signatures["serving_default"](images=tf.constant(encoded))
    batch = np.stack([preprocess_numpy(decode_image(data, 10**6), 32) for data in encoded])
    expected = tiny_encoder(batch)
    np.testing.assert_allclose(got["embedding"], expected["pooled"], atol=1e-4)
    np.testing.assert_allclose(got["patch_tokens"], expected["tokens"], atol=1e-4)


@pytest.mark.slow  # a fresh interpreter / CLI process: ~7 s on a fast CPU
def test_saved_model_cli_show_all(saved_model_dir):
    result = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", saved_model_dir],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for needle in (
        "signature_def['serving_default']",
        "signature_def['embed_pixels']",
        "DT_STRING",
        "DT_UINT8",
        "outputs['patch_tokens']",
        "(-1, 16, 192)",
    ):
        assert needle in result.stdout


def test_refuses_to_overwrite(saved_model_dir, tiny_encoder):
    base = os.path.dirname(os.path.dirname(saved_model_dir))
    with pytest.raises(FileExistsError):
        export_saved_model(tiny_encoder, base, "tiny", version=3)
    with pytest.raises(ValueError):
        export_saved_model(tiny_encoder, base, "tiny", version=0)


def test_parity_check_can_fail():
    reference = {"embedding": np.ones((2, 4), np.float32)}
    with pytest.raises(ExportVerificationError, match="embedding"):
        check_parity("test", reference, {"embedding": reference["embedding"] + 1e-3}, 1e-4)
    with pytest.raises(ExportVerificationError):
        check_parity("test", reference, {"embedding": reference["embedding"] * np.nan}, 1e-4)
