"""The Open Inference v2 binary tensor extension, parsed strictly.

A binary request is a JSON header of ``Inference-Header-Content-Length`` bytes followed by
the raw data of every input whose ``parameters.binary_data_size`` says how many bytes it
takes; BYTES elements are each a 4-byte little-endian length and the bytes. KServe's own
parser re-encodes binary BYTES data as UTF-8 text (so every JPEG fails with a 500 that
echoes the image) and lets short or malformed bodies reach ``struct`` errors; here every
inconsistency is a one-line 400.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput


def header_length(value: str | None, body_size: int) -> int:
    if value is None:
        raise InvalidInput("binary request without an 'Inference-Header-Content-Length' header")
    if not value.strip().isdigit():
        raise InvalidInput(f"'Inference-Header-Content-Length' must be an integer, got {value!r}")
    length = int(value)
    if length > body_size:
        raise InvalidInput(
            f"'Inference-Header-Content-Length' {length} exceeds the body's {body_size} bytes"
        )
    return length


def split_bytes_elements(raw: bytes, count: int, name: str) -> np.ndarray:
    """4-byte-length-prefixed elements -> object array of ``count`` bytes values."""
    elements, offset = [], 0
    for k in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(f"input {name!r}: element {k} has no 4-byte length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(
                f"input {name!r}: element {k} declares {length} bytes, "
                f"{len(raw) - offset} remain (missing length prefix?)"
            )
        elements.append(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise InvalidInput(f"input {name!r}: {len(raw) - offset} bytes after the last element")
    return np.array(elements, dtype=np.object_)


def parse_binary_request(body: bytes, json_length: int, model_name: str) -> InferRequest:
    try:
        header = orjson.loads(body[:json_length])
        inputs = header["inputs"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as error:
        raise InvalidInput(
            f"binary request: the JSON header is not a v2 request ({error})"
        ) from None
    if not isinstance(inputs, list):
        raise InvalidInput("binary request: 'inputs' must be a list")
    offset, infer_inputs = json_length, []
    for item in inputs:
        try:
            name, shape, datatype = item["name"], list(item["shape"]), item["datatype"]
            count = int(np.prod(shape)) if all(isinstance(d, int) and d >= 0 for d in shape) else -1
        except (KeyError, TypeError) as error:
            message = f"binary request: input without name / shape / datatype ({error})"
            raise InvalidInput(message) from None
        if count < 0:
            raise InvalidInput(f"input {name!r}: shape must be non-negative integers, got {shape}")
        parameters = item.get("parameters") or {}
        infer_input = InferInput(name=name, shape=shape, datatype=datatype)
        if "data" in item:
            infer_input.data = item["data"]
        else:
            size = parameters.get("binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input {name!r}: 'binary_data_size' must be an integer >= 0")
            if offset + size > len(body):
                raise InvalidInput(
                    f"input {name!r}: 'binary_data_size' {size} exceeds the "
                    f"{len(body) - offset} bytes left in the body"
                )
            raw = body[offset : offset + size]
            offset += size
            if datatype == "BYTES":
                elements = split_bytes_elements(raw, count, name)
                infer_input.set_data_from_numpy(elements.reshape(shape), binary_data=True)
            elif datatype == "UINT8":
                if size != count:
                    raise InvalidInput(
                        f"input {name!r}: UINT8 shape {shape} needs {count} bytes, got {size}"
                    )
                infer_input._raw_data = raw
            else:
                raise InvalidInput(f"input {name!r}: datatype must be BYTES or UINT8")
        infer_inputs.append(infer_input)
    if offset != len(body):
        raise InvalidInput(f"binary request: {len(body) - offset} bytes after the declared inputs")
    outputs = header.get("outputs")
    return InferRequest(
        model_name=model_name,
        request_id=header.get("id"),
        parameters=header.get("parameters"),
        infer_inputs=infer_inputs,
        request_outputs=[RequestedOutput(name=o["name"]) for o in outputs] if outputs else None,
    )


class StrictDataPlane(DataPlane):
    """KServe's data plane with :func:`parse_binary_request` for binary bodies."""

    def decode_inference_request(self, body, headers, model_name: str) -> InferRequest:
        if isinstance(body, bytes):
            length = header_length(headers.get("inference-header-content-length"), len(body))
            return parse_binary_request(body, length, model_name)
        return super().decode_inference_request(body, headers, model_name)
