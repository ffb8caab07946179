"""TF Serving's own REST answers, so that TF Serving clients and scripts work unchanged.

KServe's v1 routes cover ``POST /v1/models/<name>:predict``; TF Serving also answers
``GET /v1/models/<name>`` (``model_version_status``), ``GET .../metadata`` (the
signature) and every route with ``/versions/<n>`` (or ``/labels/<l>``). The served model
has exactly one version, 1 (what TF Serving reports for a model directory ``<name>/1``).
"""

from __future__ import annotations

import json
import re

from siameseim_tf.serving.contract import ENCODED_INPUT_NAME, OUTPUT_NAMES, SIGNATURE_ENCODED

VERSION = "1"
_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:predict|:classify|:regress)?$"
)


async def send_json(send, status: int, content: dict, close: bool = False) -> None:
    """A complete JSON response on a raw ASGI ``send`` (for middleware answering alone)."""
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def version_status(name: str) -> dict:
    status = {"error_code": "OK", "error_message": ""}
    # "ready" too: what KServe's v1 answer holds, for clients written against it.
    return {
        "model_version_status": [{"version": VERSION, "state": "AVAILABLE", "status": status}],
        "name": name,
        "ready": True,
    }


def _tensor_info(name: str, dtype: str, shape: list[int]) -> dict:
    dims = [{"size": str(d), "name": ""} for d in shape]
    return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}


def metadata(name: str, output_shapes: dict[str, list[int]]) -> dict:
    """TF Serving's GetModelMetadata answer for the ``serving_default`` signature."""
    signature = {
        "inputs": {ENCODED_INPUT_NAME: _tensor_info(f"{ENCODED_INPUT_NAME}:0", "DT_STRING", [-1])},
        "outputs": {
            out: _tensor_info(f"{out}:0", "DT_FLOAT", output_shapes[out]) for out in OUTPUT_NAMES
        },
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": VERSION},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE_ENCODED: signature}}},
    }


class TFServingRoutes:
    """ASGI middleware answering TF Serving's status / metadata routes and mapping
    ``/versions/1`` (and ``/labels/...``) predict routes onto KServe's v1 route."""

    def __init__(self, app, name: str, output_shapes):
        self.app, self.name, self.output_shapes = app, name, output_shapes

    async def __call__(self, scope, receive, send):
        match = _ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            return await self.app(scope, receive, send)
        name, version, label, rest = match.group("name", "version", "label", "rest")
        if name != self.name or (version is not None and version != VERSION):
            wanted = f"Specific({name}, {version})" if version else f"Latest({name})"
            message = (
                f"model {name} version {version or 'latest'} does not exist "
                f"(Servable not found for request: {wanted})"
            )
            return await send_json(send, 404, {"error": message})
        method = scope.get("method")
        if rest is None and method == "GET":
            return await send_json(send, 200, version_status(name))
        if rest == "/metadata" and method == "GET":
            return await send_json(send, 200, metadata(name, self.output_shapes()))
        if rest == ":predict" and (version is not None or label is not None):
            scope = dict(scope, path=f"/v1/models/{name}:predict", raw_path=None)
        elif rest in (":classify", ":regress"):
            message = f"{rest[1:]} is not supported: the encoder has the predict API only"
            return await send_json(send, 400, {"error": message})
        await self.app(scope, receive, send)
