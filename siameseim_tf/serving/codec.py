"""Request parsing and response formatting for TF Serving REST v1 and Open Inference v2.

Turns a request body into a list of images (encoded bytes or uint8 pixel arrays) and a
batch of model outputs back into each protocol's JSON, enforcing the per-request limits.
Everything a client can get wrong raises :class:`BadRequest` (HTTP 400) or
:class:`TooLarge` (HTTP 413) with a message saying what was wrong. No TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

import numpy as np

from siameseim_tf.serving.contract import (
    ENCODED_INPUT_NAME,
    OUTPUT_NAMES,
    PIXELS_INPUT_NAME,
    SIGNATURE_ENCODED,
    SIGNATURE_PIXELS,
)

# An image as sent by a client: encoded bytes (JPEG / PNG) or uint8 pixels [H, W, 3].
Image = bytes | np.ndarray


class BadRequest(ValueError):
    """The client's request is malformed: HTTP 400."""

    status = 400


class TooLarge(BadRequest):
    """The request exceeds a configured limit: HTTP 413."""

    status = 413


@dataclass(frozen=True)
class Limits:
    """Per-request limits (all configurable from `siameseim serve`)."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_images: int = 64
    max_pixels: int = 40_000_000  # per image, checked before decoding


@dataclass
class ParsedRequest:
    """What the model needs from a request, whichever protocol it came in."""

    images: list[Image]
    protocol: str  # "v1" or "v2"
    columnar: bool = False  # v1 {"inputs": ...} (answered with {"outputs": ...})
    outputs: tuple[str, ...] = OUTPUT_NAMES
    request_id: str | None = None


def decode_b64(text: object) -> bytes:
    """Standard or URL-safe base64 -> bytes; raises BadRequest on anything else."""
    if not isinstance(text, str):
        raise BadRequest(f"'b64' must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.b64decode(text, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest(f"invalid base64 image data: {error}") from error


def pixels_array(value: object, limits: Limits, where: str) -> np.ndarray:
    """A JSON pixel array -> uint8 [H, W, 3]; checks dtype, shape, range and size."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise BadRequest(f"{where}: pixel array is ragged or not numeric ({error})") from error
    if array.dtype.kind not in "iu":
        raise BadRequest(f"{where}: pixels must be integers in 0..255, got {array.dtype} values")
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise BadRequest(f"{where}: pixels must have shape [H, W, 3], got {list(array.shape)}")
    if array.shape[0] * array.shape[1] > limits.max_pixels:
        raise TooLarge(
            f"{where}: {array.shape[1]}x{array.shape[0]} image exceeds the limit "
            f"of {limits.max_pixels} pixels"
        )
    if array.min() < 0 or array.max() > 255:
        raise BadRequest(f"{where}: pixel values must be in 0..255")
    return array.astype(np.uint8)


def _v1_image(instance: object, limits: Limits, where: str) -> Image:
    """One v1 instance: {"b64": ...}, {"images": {"b64": ...}}, {"pixels": [...]}, [...]."""
    if isinstance(instance, dict):
        if set(instance) == {"b64"}:
            return decode_b64(instance["b64"])
        if set(instance) == {ENCODED_INPUT_NAME}:
            return _v1_image(instance[ENCODED_INPUT_NAME], limits, where)
        if set(instance) == {PIXELS_INPUT_NAME}:
            return pixels_array(instance[PIXELS_INPUT_NAME], limits, where)
        raise BadRequest(
            f'{where}: expected {{"b64": ...}} or a named input '
            f"({ENCODED_INPUT_NAME!r} / {PIXELS_INPUT_NAME!r}), got keys "
            f"{sorted(instance)[:5]}"
        )
    if isinstance(instance, list):
        return pixels_array(instance, limits, where)
    raise BadRequest(
        f'{where}: expected {{"b64": "<base64 JPEG/PNG>"}} or a [H, W, 3] pixel '
        f"array, got {type(instance).__name__}"
    )


def _v1_batch(items: object, limits: Limits, key: str) -> list[Image]:
    """The list of instances under ``key`` -> images, with the per-request count limit."""
    if isinstance(items, dict):  # columnar with a named input: {"images": [...]}
        if len(items) != 1 or next(iter(items)) not in (ENCODED_INPUT_NAME, PIXELS_INPUT_NAME):
            raise BadRequest(
                f'"{key}" must name one input ({ENCODED_INPUT_NAME!r} or '
                f"{PIXELS_INPUT_NAME!r}), got {sorted(items)[:5]}"
            )
        ((name, items),) = items.items()
        if not isinstance(items, list):
            items = [items]
        items = [{name: item} for item in items]
    if not isinstance(items, list) or not items:
        raise BadRequest(f'"{key}" must be a non-empty list of images')
    if len(items) > limits.max_images:
        raise TooLarge(f"{len(items)} images in one request; the limit is {limits.max_images}")
    return [_v1_image(item, limits, f"{key}[{k}]") for k, item in enumerate(items)]


def parse_v1(body: object, limits: Limits) -> ParsedRequest:
    """TF Serving REST predict body (row ``instances`` or columnar ``inputs`` format)."""
    if not isinstance(body, dict):
        raise BadRequest('request body must be a JSON object with "instances" or "inputs"')
    signature = body.get("signature_name", SIGNATURE_ENCODED)
    if signature not in (SIGNATURE_ENCODED, SIGNATURE_PIXELS):
        raise BadRequest(
            f"unknown signature_name {signature!r}; this model serves "
            f"{SIGNATURE_ENCODED!r} and {SIGNATURE_PIXELS!r}"
        )
    keys = {"instances", "inputs"} & set(body)
    if len(keys) != 1:
        raise BadRequest('request body needs exactly one of "instances" or "inputs"')
    (key,) = keys
    return ParsedRequest(_v1_batch(body[key], limits, key), "v1", columnar=key == "inputs")


def format_v1(outputs: dict[str, np.ndarray], request: ParsedRequest) -> dict:
    """TF Serving response: row ``predictions`` or columnar ``outputs``."""
    if request.columnar:
        return {"outputs": {name: outputs[name].tolist() for name in request.outputs}}
    lists = {name: outputs[name].tolist() for name in request.outputs}
    count = len(next(iter(lists.values())))
    return {"predictions": [{name: lists[name][k] for name in lists} for k in range(count)]}


def _v2_tensor(infer_input) -> np.ndarray:
    """An InferInput's data as numpy (shape / datatype errors are the client's)."""
    try:
        return infer_input.as_numpy()
    # struct.error: raw BYTES contents without valid length prefixes (gRPC raw_input_contents)
    except (ValueError, TypeError, OverflowError, struct.error) as error:  # + kserve's InvalidInput
        raise BadRequest(
            f"input {infer_input.name!r}: data does not match datatype "
            f"{infer_input.datatype} and shape {infer_input.shape}: {error}"
        ) from error


def _v2_images(infer_input, limits: Limits) -> list[Image]:
    """BYTES [B] (base64 str or raw bytes) or UINT8 [B, H, W, 3] / [H, W, 3] -> images."""
    shape = list(infer_input.shape)
    if infer_input.datatype == "BYTES":
        if len(shape) != 1:
            raise BadRequest(f"BYTES input {infer_input.name!r} must have shape [B], got {shape}")
        elements = list(_v2_tensor(infer_input).reshape(-1))
        _check_count(len(elements), limits)
        return [e if isinstance(e, bytes) else decode_b64(e) for e in elements]
    if infer_input.datatype == "UINT8":
        if len(shape) == 3:
            shape = [1, *shape]
        if len(shape) != 4 or shape[-1] != 3:
            raise BadRequest(
                f"UINT8 input {infer_input.name!r} must have shape [B, H, W, 3], "
                f"got {list(infer_input.shape)}"
            )
        _check_count(shape[0], limits)
        _check_integral(infer_input)
        pixels = _v2_tensor(infer_input).reshape(shape)
        return [pixels_array(p, limits, f"{infer_input.name}[{k}]") for k, p in enumerate(pixels)]
    raise BadRequest(
        f"input {infer_input.name!r}: datatype must be BYTES (encoded images) or "
        f"UINT8 (pixels [B, H, W, 3]), got {infer_input.datatype}"
    )


def _check_integral(infer_input) -> None:
    """JSON UINT8 data with fractional values: 400 (a cast would truncate them silently)."""
    data = getattr(infer_input, "data", None)
    if not isinstance(data, list):
        return  # binary tensor data: bytes are uint8 by construction
    try:
        values = np.asarray(data)
    except (ValueError, TypeError):
        return  # ragged: reported by the shape check in _v2_tensor
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        raise BadRequest(
            f"UINT8 input {infer_input.name!r}: pixels must be integers in 0..255, "
            "got fractional values"
        )
    if values.dtype.kind not in "iubf":
        raise BadRequest(f"UINT8 input {infer_input.name!r}: pixels must be integers in 0..255")


def _check_count(count: int, limits: Limits) -> None:
    if count < 1:
        raise BadRequest("the request holds no images")
    if count > limits.max_images:
        raise TooLarge(f"{count} images in one request; the limit is {limits.max_images}")


def parse_v2(request, limits: Limits) -> ParsedRequest:
    """Open Inference Protocol v2 request (kserve InferRequest) with one image input."""
    if len(request.inputs) != 1:
        raise BadRequest(
            f"expected exactly one input tensor ('{ENCODED_INPUT_NAME}' BYTES or "
            f"'{PIXELS_INPUT_NAME}' UINT8), got {len(request.inputs)}"
        )
    outputs = OUTPUT_NAMES
    if request.request_outputs:
        outputs = tuple(o.name for o in request.request_outputs)
        unknown = sorted(set(outputs) - set(OUTPUT_NAMES))
        if unknown:
            raise BadRequest(f"unknown outputs {unknown}; available: {list(OUTPUT_NAMES)}")
    images = _v2_images(request.inputs[0], limits)
    return ParsedRequest(images, "v2", outputs=outputs, request_id=request.id)
