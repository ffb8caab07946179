"""Load on `siameseim serve`: concurrent clients, latency percentiles, with and without
micro-batching.

For each server setting (``--max-batch 1``: every request alone; ``--max-batch 32``: the
micro-batcher merges concurrent requests for up to ``--batch-timeout-ms``) a server
process is started on loopback with the exported ONNX encoder, ``--clients`` threads each
send ``--requests`` v1 predict requests (one PNG image each, keep-alive sessions) after a
warm-up, and the script records p50 / p90 / p99 latency, throughput, errors and the
server's mean images per ONNX Runtime call (its ``siameseim_batch_images`` histogram).
Settings are run one after the other, ``--rounds`` times interleaved; the JSON holds every
round and the medians.

Command (docs/export_serving.md):
    siameseim export --checkpoint runs/demo/encoder.keras --format onnx --output /tmp/exp
    python benchmarks/serving.py --model /tmp/exp/siameseim.onnx --clients 32 \\
        --output benchmarks/results_serving.json
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

SETTINGS = {"no batching": ["--max-batch", "1"], "micro-batching": ["--max-batch", "32"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_body(seed: int, size: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    payload = {"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]}
    return json.dumps(payload).encode()


def start_server(model: str, port: int, extra: list[str]) -> subprocess.Popen:
    import requests

    argv = [sys.executable, "-m", "siameseim_tf.cli", "serve", "--model", model]
    argv += ["--name", "bench", "--port", str(port), *extra]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not become ready")


def batch_mean(url: str) -> float | None:
    """Mean images per ONNX Runtime call from the Prometheus histogram."""
    import requests

    text = requests.get(f"{url}/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        for key in ("siameseim_batch_images_sum", "siameseim_batch_images_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    count = values.get("siameseim_batch_images_count")
    return values["siameseim_batch_images_sum"] / count if count else None


def load(url: str, bodies: list[bytes], clients: int, requests_each: int) -> dict:
    import requests

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        mine, failed = [], 0
        for k in range(requests_each):
            body = bodies[(index + k) % len(bodies)]
            start = time.perf_counter()
            reply = session.post(
                f"{url}/v1/models/bench:predict",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            mine.append(time.perf_counter() - start)
            failed += reply.status_code != 200
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return dict(
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p90_ms=round(float(np.percentile(ms, 90)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        requests_per_second=round(len(ms) / wall, 1),
        errors=errors[0],
        requests=len(ms),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported ONNX encoder")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--image-size", type=int, default=64, help="side of the PNGs sent")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="serving.json")
    args = parser.parse_args(argv)
    bodies = [png_body(seed, args.image_size) for seed in range(16)]
    rounds = []
    for round_index in range(args.rounds):
        for name, extra in SETTINGS.items():
            port = free_port()
            server = start_server(args.model, port, extra)
            url = f"http://127.0.0.1:{port}"
            try:
                load(url, bodies, 4, 5)  # warm-up: sessions, first ONNX Runtime calls
                result = load(url, bodies, args.clients, args.requests)
                result.update(setting=name, round=round_index, batch_images_mean=batch_mean(url))
            finally:
                server.terminate()
                server.wait(30)
            print(json.dumps(result), flush=True)
            rounds.append(result)
    medians = {
        name: {
            key: statistics.median(r[key] for r in rounds if r["setting"] == name)
            for key in ("p50_ms", "p90_ms", "p99_ms", "requests_per_second", "batch_images_mean")
        }
        for name in SETTINGS
    }
    report = dict(
        model=args.model,
        clients=args.clients,
        requests_per_client=args.requests,
        image_size=args.image_size,
        cpu_count=os.cpu_count(),
        rounds=rounds,
        medians=medians,
    )
    with open(args.output, "w") as out:
        json.dump(report, out, indent=2)
    print(json.dumps(medians, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
