"""serving/client.py (the TF Serving REST client) works against our server as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.serving.conftest import MODEL_NAME

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_client_against_server(server, served_files, reference, tmp_path):
    output = tmp_path / "embeddings.json"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "serving", "client.py"),
            "--url",
            server,
            "--model",
            MODEL_NAME,
            "--output",
            str(output),
            *served_files["images"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["dim"] for line in lines] == [192] * len(served_files["images"])
    saved = json.loads(output.read_text())
    for path, expected in zip(served_files["images"], reference):
        np.testing.assert_allclose(saved[path], expected["embedding"], atol=1e-4)


def test_client_reports_http_errors(server, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "serving", "client.py"),
            "--url",
            server,
            "--model",
            MODEL_NAME,
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "HTTP 400" in result.stderr
