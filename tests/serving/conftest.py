"""A tiny exported encoder served by `siameseim serve` in a separate process on loopback."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from tests.export.tiny import make_tiny_encoder, write_test_images

# Small limits so that the limit tests stay cheap.
SERVER_LIMITS = {"--max-body-mb": "1", "--max-images": "8", "--max-pixels": "1000000"}
MODEL_NAME = "tiny"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_files(tmp_path_factory):
    """The encoder, its ONNX file and test image files."""
    from siameseim_tf.export.onnx import export_onnx

    directory = tmp_path_factory.mktemp("served")
    encoder = make_tiny_encoder()
    export_onnx(encoder, str(directory / "tiny.onnx"), MODEL_NAME, verbose=False)
    return {
        "encoder": encoder,
        "onnx": str(directory / "tiny.onnx"),
        "images": write_test_images(str(directory)),
    }


@pytest.fixture(scope="session")
def reference(served_files):
    """In-process Keras outputs on the image files (TF decode + TF preprocessing)."""
    from siameseim_tf.serving.preprocessing import preprocess_encoded

    outputs = []
    for path in served_files["images"]:
        with open(path, "rb") as handle:
            images = preprocess_encoded(handle.read(), 32)[None]  # [1, 32, 32, 3]
        features = served_files["encoder"](images)
        outputs.append(
            {
                "embedding": features["pooled"][0].numpy(),
                "cls": features["cls"][0].numpy(),
                "patch_tokens": features["tokens"][0].numpy(),
            }
        )
    return outputs


def _wait_ready(url: str, process: subprocess.Popen, log_path: str) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {open(log_path).read()[-3000:]}")
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready: {open(log_path).read()[-3000:]}")


TFSERVING_STUBS = importlib.util.find_spec("tensorflow_serving") is not None
SERVER_PROCESS: dict[str, int] = {}  # "pid" of the session's server (memory checks)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MiB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(ln for ln in status if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="session")
def server_ports():
    return {"http": free_port(), "grpc": free_port(), "tfserving": free_port()}


@pytest.fixture(scope="session")
def grpc_target(server, server_ports):
    """host:port of the same server's v2 gRPC endpoint."""
    return f"127.0.0.1:{server_ports['grpc']}"


@pytest.fixture(scope="session")
def server(served_files, tmp_path_factory, server_ports):
    """Base URL of a running `python -m siameseim_tf.cli serve` process (REST + gRPC)."""
    port = server_ports["http"]
    log_path = str(tmp_path_factory.mktemp("logs") / "server.log")
    args = [
        sys.executable,
        "-m",
        "siameseim_tf.cli",
        "serve",
        "--model",
        served_files["onnx"],
        "--name",
        MODEL_NAME,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(server_ports["grpc"]),
    ]
    if TFSERVING_STUBS:  # TF Serving's gRPC API too (its stubs import TensorFlow)
        args += ["--tfserving-grpc-port", str(server_ports["tfserving"])]
    args += [item for pair in SERVER_LIMITS.items() for item in pair]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    SERVER_PROCESS["pid"] = process.pid
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def assert_close(got, expected, atol: float = 1e-4) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float32), expected, rtol=0, atol=atol)
