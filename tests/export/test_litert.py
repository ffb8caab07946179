"""LiteRT export (Keras' exporter): dynamic batch, serving names, parity with Keras."""

from __future__ import annotations

import json

import numpy as np

from siameseim_tf.export.litert import export_litert, run_litert
from tests.export.tiny import make_tiny_encoder


def test_litert_matches_keras_on_a_batch(tmp_path):
    encoder = make_tiny_encoder()
    path = export_litert(encoder, str(tmp_path / "tiny.tflite"))
    images = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype(np.float32)
    got = run_litert(path, images)
    expected = encoder(images)
    np.testing.assert_allclose(got["embedding"], expected["pooled"], atol=1e-4)
    np.testing.assert_allclose(got["cls"], expected["cls"], atol=1e-4)
    np.testing.assert_allclose(got["patch_tokens"], expected["tokens"], atol=1e-4)
    sidecar = json.load(open(path + ".json"))
    assert sidecar["image_size"] == 32 and sidecar["max_abs_diff_vs_keras"] < 1e-4


def test_export_cli_writes_litert(tmp_path, capsys):
    from siameseim_tf.cli import main

    checkpoint = str(tmp_path / "encoder.keras")
    make_tiny_encoder().save(checkpoint)
    argv = ["export", "--checkpoint", checkpoint, "--format", "litert", "--output"]
    assert main([*argv, str(tmp_path / "out"), "--name", "tiny"]) == 0
    assert "LiteRT:" in capsys.readouterr().out
    assert (tmp_path / "out" / "tiny.tflite").is_file()
