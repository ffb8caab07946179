"""benchmarks/torch_wait_policy.py compares the baseline's environment with and without
OMP_WAIT_POLICY, all else equal."""

from __future__ import annotations

from benchmarks.torch_wait_policy import policies
from benchmarks.train_step import torch_worker_base_env


def test_policies_differ_only_in_the_wait_policy():
    both = policies({"PATH": "/bin", "OMP_WAIT_POLICY": "ACTIVE"})
    assert both["PASSIVE"] == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    assert both["unset"] == {"PATH": "/bin"}


def test_the_passive_policy_is_train_steps_worker_environment():
    assert policies({"A": "1"})["PASSIVE"] == torch_worker_base_env({"A": "1"})
