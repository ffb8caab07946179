"""benchmarks/host_speed.py: the FMA loop really runs and its GFLOP/s are physical."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import host_speed
from benchmarks.host_speed import build, cpu_has_avx2_fma, gflops_per_core, main, readings

needs_the_loop = pytest.mark.skipif(
    shutil.which("gcc") is None or not cpu_has_avx2_fma(),
    reason="the FMA loop needs gcc and a CPU with AVX2 and FMA",
)

# 2 FMA ports x 8 lanes x 2 flops at 6 GHz: no core of today reaches it
PHYSICAL_LIMIT = 2 * 8 * 2 * 6.0


@needs_the_loop
def test_reading_is_below_the_physical_limit_and_scales_with_the_work(tmp_path):
    binary = build(tmp_path)
    short = gflops_per_core(binary, 2_000_000)
    long = gflops_per_core(binary, 8_000_000)  # four times the work, about four times the time
    assert 0 < short < PHYSICAL_LIMIT and 0 < long < PHYSICAL_LIMIT
    assert 0.5 < long / short < 2.0


@needs_the_loop
def test_report_holds_every_reading_and_their_median(tmp_path, capsys):
    output = tmp_path / "host.json"
    assert main(["--repeats", "3", "--iterations", "2000000", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert len(report["fma_loop_gflops_per_core"]) == 3
    assert report["median"] == sorted(report["fma_loop_gflops_per_core"])[1]
    assert json.loads(capsys.readouterr().out) == report


@needs_the_loop
def test_readings_for_a_benchmark_report():
    values = readings(repeats=2, iterations=2_000_000)
    assert len(values) == 2 and all(0 < v < PHYSICAL_LIMIT for v in values)


def test_readings_are_none_where_the_loop_cannot_run(monkeypatch):
    monkeypatch.setattr(host_speed, "cpu_has_avx2_fma", lambda: False)
    assert readings(repeats=1, iterations=1000) is None
    assert main(["--repeats", "1"]) == 2


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to fail a build")
def test_readings_are_none_when_the_loop_does_not_build(monkeypatch, capsys):
    monkeypatch.setattr(host_speed, "cpu_has_avx2_fma", lambda: True)
    monkeypatch.setattr(host_speed, "SOURCE", "this is not C")
    assert readings(repeats=1, iterations=1000) is None
    assert "the FMA loop did not run" in capsys.readouterr().err
