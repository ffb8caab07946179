"""Fixtures of the export tests: one tiny encoder and its exports, built once."""

from __future__ import annotations

import pytest

from tests.export.tiny import make_tiny_encoder


@pytest.fixture(scope="session")
def tiny_encoder():
    return make_tiny_encoder()


@pytest.fixture(scope="session")
def saved_model_dir(tiny_encoder, tmp_path_factory):
    from siameseim_tf.export.saved_model import export_saved_model

    base = tmp_path_factory.mktemp("saved_model")
    return export_saved_model(tiny_encoder, str(base), "tiny", version=3)


@pytest.fixture(scope="session")
def onnx_export(tiny_encoder, tmp_path_factory):
    from siameseim_tf.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    # No int8 floor here (test_int8_meets_the_accuracy_floor checks it), so that a short
    # int8 file fails one test, not every test using this export.
    return export_onnx(
        tiny_encoder, str(path), "tiny", version=3, quantize=True, int8_min_cosine={}
    )
