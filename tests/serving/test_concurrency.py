"""8 concurrent clients x 50 requests against the live server: no errors, right answers."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from tests.serving.conftest import MODEL_NAME

CLIENTS, REQUESTS = 8, 50


def test_concurrent_clients(server, served_files, reference):
    payloads = []
    for path in served_files["images"]:
        with open(path, "rb") as handle:
            payloads.append(base64.b64encode(handle.read()).decode())

    def client(worker: int) -> list[str]:
        errors = []
        with requests.Session() as session:
            for k in range(REQUESTS):
                index = (worker + k) % len(payloads)
                if k % 2:  # alternate the protocols
                    body = {
                        "inputs": [
                            {
                                "name": "images",
                                "datatype": "BYTES",
                                "shape": [1],
                                "data": [payloads[index]],
                            }
                        ],
                        "outputs": [{"name": "embedding"}],
                    }
                    response = session.post(f"{server}/v2/models/{MODEL_NAME}/infer", json=body)
                    got = response.ok and response.json()["outputs"][0]["data"]
                else:
                    body = {"instances": [{"b64": payloads[index]}]}
                    response = session.post(f"{server}/v1/models/{MODEL_NAME}:predict", json=body)
                    got = response.ok and response.json()["predictions"][0]["embedding"]
                if not response.ok:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
                elif np.abs(np.asarray(got) - reference[index]["embedding"]).max() > 1e-4:
                    errors.append(f"wrong embedding for image {index}")
        return errors

    with ThreadPoolExecutor(CLIENTS) as pool:
        errors = [e for result in pool.map(client, range(CLIENTS)) for e in result]
    assert errors == []
