"""benchmarks/torch_wait_policy.py compares the baseline's environment with and without
OMP_WAIT_POLICY, all else equal."""

from __future__ import annotations

from benchmarks.torch_wait_policy import policies, worker_command


def test_policies_differ_only_in_the_wait_policy():
    both = policies({"PATH": "/bin", "OMP_WAIT_POLICY": "ACTIVE"})
    assert both["PASSIVE"] == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    assert both["unset"] == {"PATH": "/bin"}


def test_worker_is_train_steps_float32_torch_worker():
    command = worker_command("tiny", 224, 32)
    assert command[1].endswith("train_step.py") and "--torch-worker" in command
    assert command[command.index("--torch-precision") + 1] == "float32"
