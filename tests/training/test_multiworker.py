"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train the same model."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_ports

ROOT = Path(__file__).parents[2]


def wait_all(workers, timeout: float) -> list[str]:
    """Standard outputs of all workers; the first failure (or the timeout) stops them all.

    A worker that dies leaves its peers blocked in a collective forever.
    """
    deadline = time.monotonic() + timeout
    try:
        while any(w.poll() is None for w in workers):
            failed = [w for w in workers if w.returncode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                culprit = failed[0] if failed else workers[0]
                pytest.fail(f"worker failed or timed out: {culprit.log.read_text()[-3000:]}")
            time.sleep(0.5)
        assert all(w.returncode == 0 for w in workers), [w.log.read_text()[-2000:] for w in workers]
        return [w.out.read_text() for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()


def start_workers(tmp_path, *extra: str, tag: str = "", module: str = "multiworker_run",
                  per_worker: tuple[str, str] = ()) -> list:  # fmt: skip
    """Two processes of ``tests.training.<module> PORT0 PORT1 INDEX [per_worker[INDEX]]
    *extra`` (multiworker_run takes the run directory as its first extra argument)."""
    ports = free_ports(2)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    workers = []
    for i in range(2):  # output to files: a full pipe would block a worker
        out, log = tmp_path / f"worker{i}{tag}.out", tmp_path / f"worker{i}{tag}.log"
        own = [per_worker[i]] if per_worker else []
        command = [sys.executable, "-m", f"tests.training.{module}", *ports, str(i), *own,
                   *map(str, extra)]  # fmt: skip
        with open(out, "w") as stdout, open(log, "w") as stderr:
            worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        worker.out, worker.log = out, log
        workers.append(worker)
    return workers


def reports_of(workers, timeout: float = 600) -> list[dict]:
    return [json.loads(out.strip().splitlines()[-1]) for out in wait_all(workers, timeout)]


@pytest.mark.slow
def test_two_workers_train_identically(tmp_path):
    reports = reports_of(start_workers(tmp_path, tmp_path / "run"))
    assert all(r["replicas"] == 2 for r in reports)
    assert reports[0]["checksum"] == pytest.approx(reports[1]["checksum"], rel=1e-6)
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], rel=1e-6)
    # Only the chief (worker 0) writes into the run directory.
    assert (tmp_path / "run" / "encoder.keras").is_file()
    assert (tmp_path / "run" / "run.json").is_file()


@pytest.mark.slow
def test_killing_one_worker_and_restarting_both_resumes_exactly(tmp_path):
    reference = reports_of(start_workers(tmp_path, tmp_path / "reference", "kill-test"))
    run_dir = tmp_path / "killed"
    for attempt, after_step in enumerate((3, 9)):
        workers = start_workers(tmp_path, run_dir, "kill-test", tag=f"k{attempt}")
        deadline = time.monotonic() + 300
        while not any(
            int(p.name.split("-")[1]) >= after_step for p in run_dir.glob("checkpoints/step-*")
        ):
            assert time.monotonic() < deadline and workers[0].poll() is None
            time.sleep(0.1)
        workers[1].kill()  # one worker dies; the other is left blocked in a collective
        time.sleep(1.0)
        workers[0].kill()
        for w in workers:
            w.wait(30)
    resumed = reports_of(start_workers(tmp_path, run_dir, "kill-test", tag="end"))
    assert [r["steps"] for r in resumed] == [r["steps"] for r in reference] == [16, 16]
    assert resumed[0]["checksum"] == pytest.approx(reference[0]["checksum"], rel=1e-6, abs=1e-6)
    assert resumed[0]["checksum"] == pytest.approx(resumed[1]["checksum"], rel=1e-7)


def vote(tmp_path, speedups: tuple[float, float], tag: str) -> list[dict]:
    workers = start_workers(
        tmp_path, tag=tag, module="precision_vote_run", per_worker=tuple(map(str, speedups))
    )
    return reports_of(workers, timeout=180)


@pytest.mark.slow  # two worker processes, 12 s
def test_workers_agree_on_automatic_precision(tmp_path):
    # Both measured bf16 fast: both keep it.
    for report in vote(tmp_path, (2.0, 2.1), tag="agree"):
        assert report["auto"][0] == "mixed_bfloat16"
        assert report["float32"] == ["float32", "asked for"]
    # One worker's CPU measured bf16 slow: all train in float32 and say why.
    for report in vote(tmp_path, (2.0, 0.6), tag="differ"):
        policy, reason = report["auto"]
        assert policy == "float32"
        assert "(1 replica(s) float32, 1 replica(s) mixed_bfloat16)" in reason
