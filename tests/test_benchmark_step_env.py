"""benchmarks/step_env.py builds each variant's environment from "NAME=VALUE ..."."""

from __future__ import annotations

from benchmarks.step_env import variant_env


def test_sets_variables_and_appends_xla_flags():
    base = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "PATH": "/bin"}
    env = variant_env("TF_NUM_INTRAOP_THREADS=3 XLA_FLAGS=--xla_cpu_use_xnnpack=false", base)
    assert env["TF_NUM_INTRAOP_THREADS"] == "3"
    assert env["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2 --xla_cpu_use_xnnpack=false"
    assert env["PATH"] == "/bin" and base["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2"


def test_empty_variant_is_the_base_environment():
    assert variant_env("", {"A": "1"}) == {"A": "1"}
    assert variant_env("XLA_FLAGS=--f", {})["XLA_FLAGS"] == "--f"
