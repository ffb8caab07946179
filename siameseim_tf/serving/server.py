"""The ONNX encoder behind KServe's Python model server (no TensorFlow).

KServe provides the HTTP layer and both protocols: TF Serving-compatible REST v1
(``/v1/models/<name>[:predict]``) and the Open Inference Protocol v2 (``/v2/...``). This
module adds the model (decode -> shared preprocessing -> ONNX Runtime, micro-batched),
request limits, loopback binding and 4xx answers for every client mistake.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field

import numpy as np

from siameseim_tf.serving import codec
from siameseim_tf.serving.contract import ENCODED_INPUT_NAME, OUTPUT_NAMES, PIXELS_INPUT_NAME
from siameseim_tf.serving.preprocessing import (
    ImageError,
    ImageTooLarge,
    decode_image,
    preprocess_numpy,
)
from siameseim_tf.serving.runtime import EncoderRuntime, MicroBatcher


def _import_kserve():
    """Imports kserve; its model_server parses sys.argv at import, so hide our arguments."""
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve
        import kserve.model_server
    finally:
        sys.argv = saved
    return kserve


kserve = _import_kserve()
from fastapi import HTTPException  # noqa: E402  (kserve must be imported first, see above)
from kserve.errors import InvalidInput  # noqa: E402
from kserve.protocol.infer_type import (  # noqa: E402
    InferOutput,
    InferRequest,
    InferResponse,
)

logger = logging.getLogger("siameseim.serve")


@dataclass
class ServeConfig:
    """Everything `siameseim serve` configures."""

    model_path: str
    name: str = "siameseim"
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = None
    tfserving_grpc_port: int | None = None  # TF Serving's PredictionService (optional)
    limits: codec.Limits = field(default_factory=codec.Limits)
    max_batch: int = 32
    batch_timeout_ms: float = 2.0
    threads: int = 0
    spinning: bool = False
    device: str = "cpu"
    outputs: tuple[str, ...] = OUTPUT_NAMES


class RequestTooLarge(HTTPException):
    """HTTP 413 (an HTTPException so that FastAPI's body parsing lets it through)."""

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)


def _client_error(error: codec.BadRequest | ImageError) -> Exception:
    """Maps our client-error types to what the HTTP layer turns into 400 / 413."""
    if isinstance(error, (codec.TooLarge, ImageTooLarge)):
        return RequestTooLarge(str(error))
    return InvalidInput(str(error))


class EncoderModel(kserve.Model):
    """KServe model: images -> embeddings, for REST v1 and Open Inference v2 requests."""

    def __init__(self, config: ServeConfig):
        super().__init__(config.name)
        self.config = config
        self.runtime = EncoderRuntime(
            config.model_path, config.threads, config.spinning, config.device
        )
        self.batcher = MicroBatcher(self.runtime.run, config.max_batch, config.batch_timeout_ms)
        self.ready = True

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def _prepare(self, images: list[codec.Image]) -> np.ndarray:
        """Decodes and preprocesses the images (runs in a worker thread): [n, S, S, 3]."""
        size, max_pixels = self.runtime.image_size, self.config.limits.max_pixels
        arrays = [
            preprocess_numpy(decode_image(x, max_pixels) if isinstance(x, bytes) else x, size)
            for x in images
        ]
        return np.stack(arrays)

    async def preprocess(self, payload, headers=None):
        """Parses the body (v1 dict or v2 InferRequest); returns (request, float32 batch)."""
        try:
            if isinstance(payload, InferRequest):
                request = codec.parse_v2(payload, self.config.limits)
            else:
                request = codec.parse_v1(self._json(payload), self.config.limits)
                request.outputs = self.config.outputs
            batch = await asyncio.to_thread(self._prepare, request.images)
        except (codec.BadRequest, ImageError) as error:
            raise _client_error(error) from error
        request.images = []  # free the decoded bytes early
        return request, batch

    @staticmethod
    def _json(payload):
        """v1 bodies sent without a JSON content type arrive as bytes: parse them here."""
        if isinstance(payload, (bytes, str)):
            import orjson

            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError as error:
                raise codec.BadRequest(f"request body is not valid JSON: {error}") from error
        return payload

    async def predict(self, payload, headers=None, response_headers=None):
        request, batch = payload
        return request, await self.batcher.submit(batch)

    async def postprocess(self, result, headers=None, response_headers=None):
        request, outputs = result
        if request.protocol == "v1":
            return codec.format_v1(outputs, request)
        infer_outputs = []
        for name in request.outputs:
            output = InferOutput(name=name, shape=list(outputs[name].shape), datatype="FP32")
            output.set_data_from_numpy(outputs[name], binary_data=False)
            infer_outputs.append(output)
        return InferResponse(
            response_id=request.request_id or "", model_name=self.name, infer_outputs=infer_outputs
        )

    def get_input_types(self) -> list[dict]:
        """v2 metadata: one of the two inputs per request (images of any size)."""
        return [
            {"name": ENCODED_INPUT_NAME, "datatype": "BYTES", "shape": [-1]},
            {"name": PIXELS_INPUT_NAME, "datatype": "UINT8", "shape": [-1, -1, -1, 3]},
        ]

    def get_output_types(self) -> list[dict]:
        """v2 metadata: the three float32 outputs."""
        dim, tokens = self.runtime.embed_dim, self.runtime.num_patches
        shapes = {"embedding": [-1, dim], "cls": [-1, dim], "patch_tokens": [-1, tokens, dim]}
        return [{"name": n, "datatype": "FP32", "shape": shapes[n]} for n in OUTPUT_NAMES]
