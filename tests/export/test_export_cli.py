"""`siameseim export` end to end, and its user errors."""

from __future__ import annotations

import os
import subprocess
import sys

import onnx
import pytest


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "siameseim_tf.cli", "export", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_export_both_formats(tiny_encoder, tmp_path):
    checkpoint = str(tmp_path / "encoder.keras")
    tiny_encoder.save(checkpoint)
    out = tmp_path / "out"
    result = _cli(
        "--checkpoint",
        checkpoint,
        "--format",
        "both",
        "--output",
        str(out),
        "--name",
        "enc",
        "--version",
        "2",
        "--quantize",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(out / "enc" / "2" / "saved_model.pb")
    onnx.checker.check_model(onnx.load(str(out / "enc.onnx")))
    assert os.path.isfile(out / "enc.int8.onnx")
    assert "[ONNX fp32] embedding: max|diff|=" in result.stdout
    assert "[SavedModel serving_default] embedding" in result.stdout
    assert "[ONNX int8 vs fp32] embedding" in result.stdout
    again = _cli(
        "--checkpoint",
        checkpoint,
        "--format",
        "saved_model",
        "--output",
        str(out),
        "--name",
        "enc",
        "--version",
        "2",
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_user_errors_are_one_line(tmp_path):
    result = _cli("--checkpoint", str(tmp_path / "missing.keras"), "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"siameseim export: error: checkpoint {str(tmp_path / 'missing.keras')!r} does not exist"
    ]
