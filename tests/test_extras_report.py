"""scripts/extras_report.py: one TensorFlow distribution per resolved extra, or a failure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "extras_report.py"
spec = importlib.util.spec_from_file_location("extras_report", SCRIPT)
extras_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(extras_report)


def resolved(*names: str) -> dict[str, str]:
    return {extras_report.canonical(n): "1.0" for n in names}


def test_one_tensorflow_distribution_is_ok_and_counts_cuda_wheels():
    row = extras_report.summary("gpu", resolved("tensorflow", "keras", "nvidia-cudnn-cu12"))
    assert row["ok"] and row["tensorflow"] == {"tensorflow": "1.0"}
    assert row["nvidia_wheels"] == 1 and row["packages"] == 3


def test_two_distributions_or_none_are_reported():
    # pip's report spells names as the wheel does (tensorflow_cpu): compared canonically
    assert not extras_report.summary("tf,cpu", resolved("tensorflow", "tensorflow_cpu"))["ok"]
    assert not extras_report.summary("serving", resolved("onnxruntime", "kserve"))["ok"]
    # packages named after TensorFlow that do not install it do not count
    assert extras_report.summary("cpu", resolved("tensorflow-cpu", "tensorflow-datasets"))["ok"]
