"""benchmarks/torch_wait_policy.py compares the baseline's environment with and without
OMP_WAIT_POLICY, all else equal."""

from __future__ import annotations

from benchmarks.torch_wait_policy import policies
from benchmarks.train_step import torch_worker_env


def test_policies_differ_only_in_the_wait_policy():
    both = policies({"PATH": "/bin", "OMP_WAIT_POLICY": "ACTIVE"})
    assert both["PASSIVE"] == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    assert both["unset"] == {"PATH": "/bin"}


def test_the_baseline_runs_in_the_environment_as_given():
    """The authors' code runs in the user's environment as it is: no OpenMP wait policy
    added (PASSIVE slowed small steps 1.35x), only the vendor shim where asked for."""
    assert torch_worker_env("torch", {"A": "1"}) == {"A": "1"}
    assert torch_worker_env("torch_lean", {"A": "1"}) == {"A": "1"}
