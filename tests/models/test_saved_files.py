"""Files written by release 0.1.0 still load and compute the same outputs: a change to a
constructor, a weight name or a registered name that breaks users' saved runs fails here.
(Regenerate only on a deliberate format change, with a new version in the file name.)"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import siameseim_tf.models  # noqa: F401 - registers the classes

SAVED = Path(__file__).parent / "saved"


def test_pretraining_model_of_0_1_0_loads():
    model = keras.saving.load_model(SAVED / "siameseim_tiny_0.1.0.keras")
    reference = np.load(SAVED / "outputs_0.1.0.npz")
    pooled = model.encoder(reference["x"])["pooled"]
    np.testing.assert_allclose(pooled, reference["pooled"], atol=1e-5)
    assert model.get_config()["num_masked_patches"] == 10


def test_classifier_of_0_1_0_loads():
    model = keras.saving.load_model(SAVED / "classifier_tiny_0.1.0.keras")
    reference = np.load(SAVED / "outputs_0.1.0.npz")
    np.testing.assert_allclose(model(reference["x"]), reference["logits"], atol=1e-5)
    assert model.class_names == ["a", "b", "c"]


def _fresh_python(code: str) -> str:
    import os
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow  # a fresh interpreter / CLI process: ~7 s on a fast CPU
def test_import_siameseim_tf_after_keras_registers_the_classes():
    path = SAVED / "classifier_tiny_0.1.0.keras"
    code = (
        f"import keras, siameseim_tf; print(type(keras.saving.load_model({str(path)!r})).__name__)"
    )
    assert _fresh_python(code) == "ViTClassifier"


@pytest.mark.slow  # a fresh interpreter / CLI process: ~7 s on a fast CPU
def test_load_model_helper_registers_the_classes():
    path = SAVED / "siameseim_tiny_0.1.0.keras"
    code = f"import siameseim_tf; print(type(siameseim_tf.load_model({str(path)!r})).__name__)"
    assert _fresh_python(code) == "SiameseIM"
