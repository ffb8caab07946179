"""Every client mistake gets a 4xx with a message; the server keeps answering."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import requests

from siameseim_tf.export.common import sample_pixels
from tests.export.tiny import image_bytes, png_header_only
from tests.serving.conftest import MODEL_NAME

JPEG = image_bytes(sample_pixels(1, 48, 40)[0], "JPEG")
B64 = base64.b64encode(JPEG).decode()
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _v2(name: str, datatype: str, shape: list, data: list) -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


# (id, method, path, json body or raw bytes, expected status, expected message fragment)
CASES = [
    ("v1 malformed json", V1, b'{"instances": [', 400, "unexpected end of data"),
    ("v2 malformed json", V2, b'{"inputs": [', 400, "json"),
    ("v1 not an object", V1, [1, 2], 400, "JSON object"),
    ("v1 no instances", V1, {"foo": 1}, 400, '"instances" or "inputs"'),
    ("v1 empty instances", V1, {"instances": []}, 400, "non-empty"),
    ("v1 bad base64", V1, {"instances": [{"b64": "@@not base64@@"}]}, 400, "base64"),
    ("v1 b64 not a string", V1, {"instances": [{"b64": 17}]}, 400, "base64 string"),
    (
        "v1 non-image bytes",
        V1,
        {"instances": [{"b64": _b64(b"plain text")}]},
        400,
        "not a decodable image",
    ),
    (
        "v1 truncated jpeg",
        V1,
        {"instances": [{"b64": _b64(JPEG[: len(JPEG) // 2])}]},
        400,
        "truncated",
    ),
    (
        "v1 gif",
        V1,
        {"instances": [{"b64": _b64(image_bytes(np.zeros((8, 8, 3), np.uint8), "GIF"))}]},
        400,
        "unsupported",
    ),
    (
        "v1 decompression bomb",
        V1,
        {"instances": [{"b64": _b64(png_header_only(50000, 50000))}]},
        413,
        "pixels",
    ),
    (
        "v1 too many pixels",
        V1,
        {"instances": [{"b64": _b64(png_header_only(1001, 1000))}]},
        413,
        "1000000 pixels",
    ),
    ("v1 too many images", V1, {"instances": [{"b64": B64}] * 9}, 413, "limit is 8"),
    ("v1 wrong pixel shape", V1, {"instances": [[[1, 2], [3, 4]]]}, 400, "[H, W, 3]"),
    ("v1 float pixels", V1, {"instances": [np.full((4, 4, 3), 0.5).tolist()]}, 400, "integers"),
    ("v1 pixel out of range", V1, {"instances": [np.full((4, 4, 3), 256).tolist()]}, 400, "0..255"),
    ("v1 ragged pixels", V1, {"instances": [[[[1, 2, 3]], [[1, 2]]]]}, 400, "ragged"),
    ("v1 unknown key", V1, {"instances": [{"image": B64}]}, 400, "expected"),
    (
        "v1 unknown signature",
        V1,
        {"signature_name": "nope", "instances": [{"b64": B64}]},
        400,
        "signature_name",
    ),
    (
        "v1 unknown model",
        "/v1/models/nope:predict",
        {"instances": [{"b64": B64}]},
        404,
        "does not exist",
    ),
    (
        "v2 unknown model",
        "/v2/models/nope/infer",
        _v2("images", "BYTES", [1], [B64]),
        404,
        "does not exist",
    ),
    ("v2 wrong dtype", V2, _v2("pixels", "FP32", [1, 2, 2, 3], [0.5] * 12), 400, "datatype"),
    ("v2 wrong shape", V2, _v2("pixels", "UINT8", [1, 2, 2], [0] * 4), 400, "shape"),
    (
        "v2 data/shape mismatch",
        V2,
        _v2("pixels", "UINT8", [1, 4, 4, 3], [0] * 5),
        400,
        "does not match",
    ),
    (
        "v2 out of range",
        V2,
        _v2("pixels", "UINT8", [1, 1, 1, 3], [300, 0, 0]),
        400,
        "out of bounds",
    ),
    (
        "v2 fractional pixels",
        V2,
        _v2("pixels", "UINT8", [1, 1, 1, 3], [0.5, 1.7, 2.0]),
        400,
        "integers",
    ),
    ("v2 bad base64", V2, _v2("images", "BYTES", [1], ["%%%"]), 400, "base64"),
    (
        "v2 bomb",
        V2,
        _v2("images", "BYTES", [1], [_b64(png_header_only(50000, 50000))]),
        413,
        "pixels",
    ),
    (
        "v2 two inputs",
        V2,
        {"inputs": _v2("images", "BYTES", [1], [B64])["inputs"] * 2},
        400,
        "exactly one input",
    ),
    (
        "v2 unknown output",
        V2,
        {**_v2("images", "BYTES", [1], [B64]), "outputs": [{"name": "logits"}]},
        400,
        "unknown outputs",
    ),
    ("v2 missing fields", V2, {"inputs": [{"name": "images"}]}, 400, "invalid request"),
]


def _post(url: str, body) -> requests.Response:
    if isinstance(body, bytes):
        return requests.post(url, data=body, headers={"content-type": "application/json"})
    return requests.post(url, json=body)


def _good_request_works(server: str) -> None:
    response = requests.post(f"{server}{V1}", json={"instances": [{"b64": B64}]})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path, body, status, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_client_mistake(server, path, body, status, fragment):
    response = _post(f"{server}{path}", body)
    assert response.status_code == status, response.text
    assert fragment.lower() in response.json()["error"].lower()
    _good_request_works(server)


def test_oversized_body_with_content_length(server):
    response = requests.post(
        f"{server}{V1}", data=b" " * (1024 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds the limit of 1048576 bytes" in response.json()["error"]
    _good_request_works(server)


@pytest.mark.parametrize("path", [V1, V2])
def test_oversized_chunked_body(server, path):
    def chunks():  # no Content-Length: the server must count
        for _ in range(20):
            yield b" " * (100 * 1024)

    response = requests.post(
        f"{server}{path}", data=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "exceeds the limit" in response.json()["error"]
    _good_request_works(server)


def test_non_json_content_type_still_parsed(server):
    response = requests.post(
        f"{server}{V1}",
        data=b'{"instances": [{"b64": "%s"}]}' % B64.encode(),
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    response = requests.post(
        f"{server}{V1}", data=b"garbage", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_model_repository_control_is_refused(server):
    response = requests.post(f"{server}/v2/repository/models/{MODEL_NAME}/unload")
    assert response.status_code == 404 and "disabled" in response.json()["error"]
    assert requests.get(f"{server}/v2/health/ready").status_code == 200
    _good_request_works(server)


def test_unknown_routes_answer_with_an_error_key(server):
    response = requests.get(f"{server}/no/such/route")
    assert response.status_code == 404 and "error" in response.json()
    response = requests.get(f"{server}{V2}")  # wrong method
    assert response.status_code == 405 and "error" in response.json()


def test_v2_documented_curl_form_content_type(server):
    body = json.dumps(_v2("images", "BYTES", [1], [B64]))
    form = "application/x-www-form-urlencoded"  # what `curl -d` sends
    response = requests.post(f"{server}{V2}", data=body, headers={"content-type": form})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"][0] == 1


def _binary_request(jpeg: bytes, declared: int | None = None, prefix: bool = True):
    """A v2 binary-tensor-extension request: JSON header, then length-prefixed bytes."""
    payload = (len(jpeg).to_bytes(4, "little") if prefix else b"") + jpeg
    size = len(payload) if declared is None else declared
    header = {
        "inputs": [
            {
                "name": "images",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    head = json.dumps(header).encode()
    return head + payload, {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def test_v2_binary_extension_with_a_jpeg(server, reference):
    body, headers = _binary_request(JPEG)
    response = requests.post(f"{server}{V2}", data=body, headers=headers)
    assert response.status_code == 200, response.text[:500]
    assert response.json()["outputs"][0]["shape"][0] == 1


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b, h: (b, {**h, "Inference-Header-Content-Length": "abc"}),
        lambda b, h: (b, {**h, "Inference-Header-Content-Length": "1.5"}),
        lambda b, h: (b, {**h, "Inference-Header-Content-Length": str(len(b) + 10)}),
        lambda b, h: _binary_request(JPEG, declared=len(JPEG) + 1000),
        lambda b, h: _binary_request(JPEG, prefix=False),
    ],
    ids=["non-numeric header length", "fractional", "beyond the body", "size > body", "no prefix"],
)
def test_malformed_binary_requests_are_400_and_the_session_survives(server, mutate):
    body, headers = mutate(*_binary_request(JPEG))
    with requests.Session() as session:
        response = session.post(f"{server}{V2}", data=body, headers=headers)
        assert response.status_code == 400, response.text[:500]
        assert "error" in response.json() and len(response.text) < 2000  # no echo
        again = session.post(f"{server}{V1}", json={"instances": [{"b64": B64}]})
        assert again.status_code == 200
