"""`siameseim doctor`: the report says what pretrain would decide here, and why."""

import json
import os
import subprocess
import sys

import pytest

from siameseim_tf.cli import main
from siameseim_tf.hardware import xla_suits
from siameseim_tf.install import colliding_tensorflows
from siameseim_tf.training.machine import cpu_model, machine_report

TOPICS = [
    "tensorflow",
    "cpu",
    "devices",
    "precision",
    "xla, one device",
    "xla, 2+ replicas",
    "kernels",
]


def _doctor(*argv, **env):
    """`siameseim doctor --json` in a fresh process (the environment decides at import)."""
    done = subprocess.run(
        [sys.executable, "-m", "siameseim_tf.cli", "doctor", "--json", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {f["topic"]: f for f in json.loads(done.stdout)}


def test_report_follows_the_rules_pretrain_uses():
    report = {f.topic: f for f in machine_report("float32")}
    assert [t for t in TOPICS if t in report] == TOPICS
    assert report["precision"].value == "float32 (asked for)"
    xla_on = xla_suits("float32")
    assert report["xla, one device"].value.startswith("on, the whole" if xla_on else "off")
    assert report["xla, 2+ replicas"].value.startswith("on, each" if xla_on else "off")
    assert report["kernels"].value.startswith("not used" if xla_on else "graph mode's kernels")


def test_cli_prints_json_with_every_topic(capsys):
    assert main(["doctor", "--precision", "float32", "--json"]) == 0
    topics = [f["topic"] for f in json.loads(capsys.readouterr().out)]
    install = ["install"] if colliding_tensorflows() else []  # two TensorFlows installed
    assert topics == [TOPICS[0], *install, *TOPICS[1:], "onnxruntime"]


def test_capped_at_avx2_trains_float32_in_graph_mode_with_or_without_kernels():
    # The decisions of an AVX2-only CPU, on any x86-64 (the cap is what oneDNN obeys).
    for native in ("1", "0"):
        report = _doctor(ONEDNN_MAX_CPU_ISA="AVX2", SIAMESEIM_NATIVE=native)
        assert report["precision"]["value"].startswith("float32 (auto: ")
        assert report["xla, one device"]["value"].startswith("off, graph mode")
        assert report["xla, 2+ replicas"]["value"].startswith("off, graph mode")
        assert "capped at AVX2" in report["cpu"]["value"]


def test_kernels_line_says_why_there_is_no_cpp():
    # Switched off: graph mode with AVX-512, XLA without (then no kernels to report). A
    # compiler that fails is found only when building: graph mode, and a warning.
    off = _doctor("--precision", "float32", SIAMESEIM_NATIVE="0")["kernels"]
    broken = _doctor("--precision", "float32", CXX="/bin/false")["kernels"]
    if not off["value"].startswith("not used"):
        assert "disabled by SIAMESEIM_NATIVE=0" in off["value"] and not off["warning"]
    assert "C++ unavailable" in broken["value"] and broken["warning"]


def test_kernels_line_names_the_build_target(monkeypatch):
    from siameseim_tf.training.machine import _kernels_line

    monkeypatch.delenv("SIAMESEIM_MARCH", raising=False)
    here = _kernels_line("float32", batch_norm=True).value  # loads (or builds) the kernels
    if "XLA-compiled" in here:
        pytest.skip(f"no C++ kernels here: {here}")
    assert "(built for this CPU in " in here
    monkeypatch.setenv("SIAMESEIM_MARCH", "x86-64-v3")  # the report reads it (no rebuild here)
    assert (
        "(built for -march=x86-64-v3 (SIAMESEIM_MARCH) in " in _kernels_line("float32", True).value
    )


def test_cpu_model_names_vendor_family_and_model(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    first = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 106\n"
    first += "model name\t: Intel Xeon Processor (Icelake)\nflags\t\t: fpu avx2\n"
    cpuinfo.write_text(first + "\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n")
    expected = "Intel Xeon Processor (Icelake) (GenuineIntel family 6 model 106)"
    assert cpu_model(str(cpuinfo)) == expected
    assert cpu_model(str(tmp_path / "missing")) == "unknown CPU"
