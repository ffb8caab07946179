"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train the same model."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_train_identically(tmp_path):
    ports = [str(free_port()), str(free_port())]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.training.multiworker_run",
                *ports,
                str(i),
                str(tmp_path / "run"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["replicas"] == 2 for r in reports)
    assert reports[0]["checksum"] == pytest.approx(reports[1]["checksum"], rel=1e-6)
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], rel=1e-6)
    # Only the chief (worker 0) writes into the run directory.
    assert (tmp_path / "run" / "encoder.keras").is_file()
    assert (tmp_path / "run" / "run.json").is_file()
