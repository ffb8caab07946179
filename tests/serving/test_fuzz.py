"""Seeded fuzzing over loopback: thousands of malformed or hostile requests, no 5xx, no
dropped connection, and the server still answers correctly afterwards."""

from __future__ import annotations

import base64
import json
import os
import random

import grpc
import numpy as np
import pytest
import requests
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.serving.conftest import MODEL_NAME, SERVER_PROCESS, rss_mib

HTTP_REQUESTS, GRPC_REQUESTS = 5000, 600
# Server memory between request WARM_REQUESTS and the last: bounded (measured: see
# docs/export_serving.md) while 4500 requests of up to the 1 MiB body limit go through.
WARM_REQUESTS, RSS_GROWTH_MIB = 500, 64
PATHS = [
    f"/v1/models/{MODEL_NAME}:predict",
    f"/v2/models/{MODEL_NAME}/infer",
    f"/v1/models/{MODEL_NAME}/versions/1:predict",
    f"/v1/models/{MODEL_NAME}",
    f"/v1/models/{MODEL_NAME}/metadata",
    f"/v2/models/{MODEL_NAME}",
    "/v2/repository/index",
    "/v1/models/nope:predict",
]


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.randint(-(2**40), 2**40)
    if kind == 1:
        return rng.uniform(-1e6, 1e6)
    if kind == 2:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(12)))
    if kind == 3:
        return None
    if kind == 4:
        return rng.choice([True, False])
    if kind == 5:
        return base64.b64encode(rng.randbytes(rng.randrange(64))).decode()
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["b64", "inputs", "instances", "name", "shape", "datatype", "data", "outputs"]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_v2(rng: random.Random, good: str) -> dict:
    datatype = rng.choice(["BYTES", "UINT8", "FP32", "INT64", "BOOL", "X", 7])
    shape = [rng.choice([0, 1, 2, 3, -1, 10**9, "a"]) for _ in range(rng.randrange(5))]
    data = rng.choice(
        [[good], [random_value(rng)], [rng.randrange(-5, 300) for _ in range(12)], "x", None]
    )
    tensor = {"name": rng.choice(["images", "pixels", "", 3]), "datatype": datatype}
    tensor.update(shape=shape, data=data)
    body = {"inputs": [tensor] * rng.randrange(0, 3)}
    if rng.random() < 0.3:
        body["outputs"] = [{"name": rng.choice(["embedding", "cls", "nope"])}]
    return body


def random_binary(rng: random.Random, jpeg: bytes) -> tuple[bytes, dict]:
    payload = rng.choice([jpeg, jpeg[: rng.randrange(len(jpeg))], rng.randbytes(40)])
    prefixed = len(payload).to_bytes(4, "little") + payload
    data = rng.choice([prefixed, payload, prefixed[: rng.randrange(len(prefixed) + 1)]])
    size = rng.choice([len(data), len(data) + rng.randrange(1, 99), rng.randrange(8), -1, "9"])
    header = {
        "inputs": [
            {
                "name": rng.choice(["images", "pixels"]),
                "shape": rng.choice([[1], [2], [1, 2, 2, 3], []]),
                "datatype": rng.choice(["BYTES", "UINT8", "FP32"]),
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    head = json.dumps(header).encode()
    length = rng.choice([str(len(head)), str(len(head) + 5), "abc", "1.5", "-3", "", "0"])
    return head + data, {"Inference-Header-Content-Length": length}


def one_http_request(rng: random.Random, jpeg: bytes) -> dict:
    good = base64.b64encode(jpeg).decode()
    kind = rng.randrange(6)
    path = rng.choice(PATHS[:3]) if kind < 5 else rng.choice(PATHS)
    headers = {"content-type": rng.choice(["application/json", "text/plain", "", "x/y"])}
    if kind == 0:
        body = json.dumps({"instances": random_value(rng)}).encode()
    elif kind == 1:
        body = json.dumps(random_v2(rng, good)).encode()
        path = PATHS[1]
    elif kind == 2:
        body, extra = random_binary(rng, jpeg)
        headers.update(extra)
        path = PATHS[1]
    elif kind == 3:
        body = rng.randbytes(rng.randrange(200))
    elif kind == 4:
        valid = json.dumps({"instances": [{"b64": good}]}).encode()
        body = valid[: rng.randrange(len(valid))]
    else:
        body = json.dumps(random_value(rng)).encode()
    method = "GET" if kind == 5 and rng.random() < 0.5 else "POST"
    return dict(method=method, path=path, body=body, headers=headers)


@pytest.mark.slow
def test_http_fuzz_never_5xx_and_keeps_connections(server, served_files, reference):
    jpeg = open(served_files["images"][0], "rb").read()
    rng = random.Random(20261202)
    failures, rss = [], {}
    with requests.Session() as session:  # keep-alive: a dropped connection shows up
        for k in range(HTTP_REQUESTS):
            if k in (WARM_REQUESTS, HTTP_REQUESTS - 1) and os.path.isdir("/proc"):
                rss[k] = rss_mib(SERVER_PROCESS["pid"])
            request = one_http_request(rng, jpeg)
            response = session.request(
                request["method"],
                server + request["path"],
                data=request["body"],
                headers=request["headers"],
                timeout=30,
            )
            if response.status_code >= 500:
                failures.append((k, request["path"], response.status_code, response.text[:200]))
            elif response.status_code >= 400 and "error" not in response.json():
                failures.append((k, request["path"], "no error key", response.text[:200]))
    assert not failures, failures[:10]
    if rss:  # after the warm-up the allocator's pools are sized: no growth per request
        growth = rss[HTTP_REQUESTS - 1] - rss[WARM_REQUESTS]
        print(f"server RSS {rss} MiB, growth {growth:.1f} MiB")  # shown with pytest -s
        assert growth < RSS_GROWTH_MIB, (rss, growth)
    answer = requests.post(
        server + PATHS[0], json={"instances": [{"b64": base64.b64encode(jpeg).decode()}]}
    )
    embedding = answer.json()["predictions"][0]["embedding"]
    np.testing.assert_allclose(embedding, reference[0]["embedding"], atol=1e-4)


def random_grpc_request(rng: random.Random, jpeg: bytes) -> pb.ModelInferRequest:
    datatype = rng.choice(["BYTES", "UINT8", "FP32", "INT64", "BOOL", "?"])
    shape = [rng.choice([0, 1, 2, 3, 5, 10**6]) for _ in range(rng.randrange(5))]
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=rng.choice(["images", "pixels", ""]), datatype=datatype, shape=shape
    )
    request = pb.ModelInferRequest(model_name=rng.choice([MODEL_NAME, MODEL_NAME, "nope"]))
    choice = rng.randrange(4)
    if choice == 0:
        tensor.contents.bytes_contents.extend(
            [rng.choice([jpeg, jpeg[:50], rng.randbytes(30)]) for _ in range(rng.randrange(3))]
        )
    elif choice == 1:
        tensor.contents.uint_contents.extend(
            rng.randrange(0, 300) for _ in range(rng.randrange(40))
        )
    elif choice == 2:
        tensor.contents.fp32_contents.extend(rng.random() for _ in range(rng.randrange(40)))
    else:
        request.raw_input_contents.append(rng.randbytes(rng.randrange(64)))
    for _ in range(rng.randrange(0, 3)):
        request.inputs.append(tensor)
    if rng.random() < 0.3:
        request.outputs.append(
            pb.ModelInferRequest.InferRequestedOutputTensor(name=rng.choice(["cls", "x"]))
        )
    return request


@pytest.mark.slow
def test_grpc_fuzz_never_internal(grpc_target, served_files, reference):
    jpeg = open(served_files["images"][0], "rb").read()
    rng = random.Random(7)
    bad = []
    with grpc.insecure_channel(grpc_target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        for k in range(GRPC_REQUESTS):
            try:
                stub.ModelInfer(random_grpc_request(rng, jpeg), timeout=30)
            except grpc.RpcError as error:
                if error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                    bad.append((k, error.code(), error.details()[:200]))
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="images", datatype="BYTES", shape=[1], contents={"bytes_contents": [jpeg]}
        )
        response = stub.ModelInfer(pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor]))
    assert not bad, bad[:10]
    assert response.outputs
