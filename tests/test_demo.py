"""End to end: `siameseim demo --quick` as a subprocess (pretrain, evaluate, export, report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

VARIANTS = ("pretrained", "random init", "raw pixels")
PROTOCOLS = ("linear", "knn", "fewshot")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo") / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, "-m", "siameseim_tf.cli", "demo", "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return output, completed.stdout


@pytest.mark.slow  # > 10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_results_have_every_row(quick_run):
    output, stdout = quick_run
    results = json.loads((output / "results.json").read_text())
    for variant in VARIANTS:
        for protocol in PROTOCOLS:
            value = results["top1"][variant][protocol]
            assert 0.0 <= value <= 100.0, (variant, protocol, value)
    assert results["pretraining"]["steps"] > 0
    assert len(results["losses"]) == results["pretraining"]["steps"]
    assert "| pretrained |" in stdout  # the printed table


@pytest.mark.slow  # shares the quick demo run (~30 s on a fast CPU)
def test_report_is_a_png(quick_run):
    from PIL import Image

    output, _ = quick_run
    with Image.open(output / "report.png") as image:
        image.verify()
        assert image.format == "PNG"
    with Image.open(output / "report.png") as image:
        assert min(image.size) > 200


@pytest.mark.slow  # shares the quick demo run (~30 s on a fast CPU)
def test_exports_exist(quick_run):
    output, _ = quick_run
    saved = output / "export" / "saved_model" / "siameseim" / "1"
    assert (saved / "saved_model.pb").is_file()
    assert (output / "export" / "siameseim.onnx").stat().st_size > 0
    results = json.loads((output / "results.json").read_text())
    assert set(results["exports"]["onnx_parity"]) >= {"embedding", "cls"}


@pytest.mark.slow  # 5-10 s on a fast CPU: the default run stays under 10 min on slow ones
def test_bad_data_is_one_line_error(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "siameseim_tf.cli",
            "demo",
            "--quick",
            "--data",
            str(tmp_path / "missing"),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "siameseim demo: error:" in completed.stderr
