"""Both protocols on a live server: the same embeddings as the in-process encoder (1e-4)."""

from __future__ import annotations

import base64

import numpy as np
import requests
from PIL import Image

from tests.serving.conftest import MODEL_NAME, assert_close


def _b64(path: str) -> str:
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode()


def test_status_health_and_metadata(server):
    assert requests.get(f"{server}/v1/models/{MODEL_NAME}").json()["ready"] is True
    assert requests.get(f"{server}/v2/health/live").json() == {"live": True}
    assert requests.get(f"{server}/v2/health/ready").json() == {"ready": True}
    assert requests.get(f"{server}/v2/models/{MODEL_NAME}/ready").json()["ready"] is True
    meta = requests.get(f"{server}/v2/models/{MODEL_NAME}").json()
    assert meta["name"] == MODEL_NAME
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "images": "BYTES",
        "pixels": "UINT8",
    }
    outputs = {o["name"]: o["shape"] for o in meta["outputs"]}
    assert outputs == {"embedding": [-1, 192], "cls": [-1, 192], "patch_tokens": [-1, 16, 192]}


def test_v1_row_format_b64(server, served_files, reference):
    body = {"instances": [{"b64": _b64(p)} for p in served_files["images"]]}
    response = requests.post(f"{server}/v1/models/{MODEL_NAME}:predict", json=body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(reference)
    for got, expected in zip(predictions, reference):
        for name in ("embedding", "cls", "patch_tokens"):
            assert_close(got[name], expected[name])


def test_v1_columnar_named_input(server, served_files, reference):
    body = {"inputs": {"images": [{"b64": _b64(p)} for p in served_files["images"][:2]]}}
    response = requests.post(f"{server}/v1/models/{MODEL_NAME}:predict", json=body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert_close(outputs["embedding"], np.stack([r["embedding"] for r in reference[:2]]))


def test_v1_pixel_arrays(server, served_files, reference):
    pixels = [np.asarray(Image.open(p).convert("RGB")).tolist() for p in served_files["images"]]
    body = {"signature_name": "embed_pixels", "instances": pixels}
    response = requests.post(f"{server}/v1/models/{MODEL_NAME}:predict", json=body)
    assert response.status_code == 200, response.text
    for got, expected in zip(response.json()["predictions"], reference):
        assert_close(got["embedding"], expected["embedding"])


def test_v2_bytes_input(server, served_files, reference):
    body = {
        "id": "req-1",
        "inputs": [
            {
                "name": "images",
                "datatype": "BYTES",
                "shape": [4],
                "data": [_b64(p) for p in served_files["images"]],
            }
        ],
    }
    response = requests.post(f"{server}/v2/models/{MODEL_NAME}/infer", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"] == "req-1" and result["model_name"] == MODEL_NAME
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["patch_tokens"]["shape"] == [4, 16, 192]
    for name in ("embedding", "cls", "patch_tokens"):
        got = np.asarray(outputs[name]["data"], np.float32).reshape(outputs[name]["shape"])
        assert_close(got, np.stack([r[name] for r in reference]))


def test_v2_uint8_pixels_and_requested_outputs(server, served_files, reference):
    image = np.asarray(Image.open(served_files["images"][0]).convert("RGB"))  # [H, W, 3]
    body = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "UINT8",
                "shape": [1, *image.shape],
                "data": image.reshape(-1).tolist(),
            }
        ],
        "outputs": [{"name": "embedding"}],
    }
    response = requests.post(f"{server}/v2/models/{MODEL_NAME}/infer", json=body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["name"] == "embedding" and output["shape"] == [1, 192]
    assert_close(output["data"], reference[0]["embedding"])


def test_tf_serving_status_metadata_and_version_routes(server, served_files, reference):
    base = f"{server}/v1/models/{MODEL_NAME}"
    status = requests.get(base).json()["model_version_status"]
    assert status == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    assert requests.get(f"{base}/versions/1").json()["model_version_status"][0]["version"] == "1"
    missing = requests.get(f"{base}/versions/2")
    assert missing.status_code == 404 and "Servable not found" in missing.json()["error"]
    assert requests.get(f"{server}/v1/models/other").status_code == 404
    signature = requests.get(f"{base}/metadata").json()["metadata"]["signature_def"]
    outputs = signature["signature_def"]["serving_default"]["outputs"]
    dims = [int(d["size"]) for d in outputs["embedding"]["tensor_shape"]["dim"]]
    assert dims == [-1, 192] and outputs["embedding"]["dtype"] == "DT_FLOAT"
    body = {"instances": [{"b64": _b64(served_files["images"][0])}]}
    for route in (f"{base}/versions/1:predict", f"{base}/labels/stable:predict"):
        response = requests.post(route, json=body)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(
            response.json()["predictions"][0]["embedding"], reference[0]["embedding"], atol=1e-4
        )
    assert requests.post(f"{base}/versions/2:predict", json=body).status_code == 404


def test_prometheus_metrics_show_batches_and_latency(server, served_files):
    body = {"instances": [{"b64": _b64(served_files["images"][0])}]}
    assert requests.post(f"{server}/v1/models/{MODEL_NAME}:predict", json=body).ok
    text = requests.get(f"{server}/metrics").text
    assert "siameseim_batch_images_count" in text
    assert "siameseim_model_seconds_bucket" in text
    count = [line for line in text.splitlines() if line.startswith("siameseim_batch_images_count")]
    assert float(count[0].split()[-1]) >= 1
