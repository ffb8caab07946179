"""TF Serving's gRPC API (``tensorflow.serving.PredictionService`` and ``ModelService``), so
that clients written for TF Serving's port 8500 call the ONNX encoder unchanged.

Optional: needs the official ``tensorflow-serving-api`` stubs, whose messages are built
on TensorFlow's protos (importing them imports TensorFlow, ~5 s). ``pip install --no-deps
tensorflow-serving-api==2.21.*`` next to the TensorFlow you have (its declared dependency
``tensorflow`` would install a second TensorFlow distribution over ``tensorflow-cpu``).

Signatures, as in the exported SavedModel: ``serving_default`` (input ``images``,
DT_STRING [B], JPEG / PNG bytes) and ``embed_pixels`` (input ``pixels``, DT_UINT8
[B, H, W, 3]); outputs ``embedding``, ``cls``, ``patch_tokens`` (DT_FLOAT), filtered by
``output_filter``. The model has one version, 1.
"""

from __future__ import annotations

import asyncio

import numpy as np

from siameseim_tf.serving import codec
from siameseim_tf.serving.contract import (
    ENCODED_INPUT_NAME,
    OUTPUT_NAMES,
    PIXELS_INPUT_NAME,
    SIGNATURE_ENCODED,
    SIGNATURE_PIXELS,
)
from siameseim_tf.serving.preprocessing import ImageError

VERSION = 1
SIGNATURE_INPUTS = {SIGNATURE_ENCODED: ENCODED_INPUT_NAME, SIGNATURE_PIXELS: PIXELS_INPUT_NAME}


class ClientError(ValueError):
    """A request TF Serving would refuse: (grpc status code name, message)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _shape(proto) -> list[int]:
    return [int(d.size) for d in proto.tensor_shape.dim]


def images_from_tensor(proto, signature: str, limits: codec.Limits) -> list[codec.Image]:
    """The request's images: bytes (``serving_default``) or uint8 arrays (``embed_pixels``)."""
    from tensorflow.core.framework import types_pb2

    shape = _shape(proto)
    if signature == SIGNATURE_ENCODED:
        if proto.dtype != types_pb2.DT_STRING or len(shape) != 1:
            raise ClientError("INVALID_ARGUMENT", "input 'images' must be DT_STRING of shape [B]")
        images = list(proto.string_val)
        if len(images) != shape[0]:
            raise ClientError("INVALID_ARGUMENT", f"shape {shape} holds {len(images)} strings")
    else:
        if proto.dtype != types_pb2.DT_UINT8 or len(shape) != 4 or shape[3] != 3:
            raise ClientError(
                "INVALID_ARGUMENT", "input 'pixels' must be DT_UINT8 of shape [B, H, W, 3]"
            )
        if int(np.prod(shape[1:3])) > limits.max_pixels:
            raise ClientError("INVALID_ARGUMENT", f"images over {limits.max_pixels} pixels")
        count = int(np.prod(shape))
        if proto.tensor_content:
            data = np.frombuffer(proto.tensor_content, np.uint8)
        else:  # small tensors may come as int_val
            data = np.asarray(proto.int_val, np.int64)
            if data.size and (data.min() < 0 or data.max() > 255):
                raise ClientError("INVALID_ARGUMENT", "DT_UINT8 values must be 0..255")
            data = data.astype(np.uint8)
        if data.size != count:
            raise ClientError("INVALID_ARGUMENT", f"{data.size} values for shape {shape}")
        images = list(data.reshape(shape))
    if not images:
        raise ClientError("INVALID_ARGUMENT", "the request holds no image")
    if len(images) > limits.max_images:
        raise ClientError("INVALID_ARGUMENT", f"at most {limits.max_images} images per request")
    return images


def float_tensor(array: np.ndarray):
    """float32 numpy -> TensorProto (DT_FLOAT, little-endian tensor_content)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims),
        tensor_content=np.ascontiguousarray(array, "<f4").tobytes(),
    )


def signature_defs(output_shapes: dict[str, list[int]]):
    """The SignatureDefMap of GetModelMetadata (both signatures)."""
    from tensorflow.core.framework import tensor_shape_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    def info(name, dtype, shape):
        dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
        shape_proto = tensor_shape_pb2.TensorShapeProto(dim=dims)
        return meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=dtype, tensor_shape=shape_proto)

    outputs = {o: info(o, types_pb2.DT_FLOAT, output_shapes[o]) for o in OUTPUT_NAMES}
    inputs = {
        SIGNATURE_ENCODED: info(ENCODED_INPUT_NAME, types_pb2.DT_STRING, [-1]),
        SIGNATURE_PIXELS: info(PIXELS_INPUT_NAME, types_pb2.DT_UINT8, [-1, -1, -1, 3]),
    }
    from tensorflow_serving.apis import get_model_metadata_pb2

    signatures = get_model_metadata_pb2.SignatureDefMap()
    for name, tensor in inputs.items():
        signatures.signature_def[name].CopyFrom(
            meta_graph_pb2.SignatureDef(
                inputs={SIGNATURE_INPUTS[name]: tensor},
                outputs=outputs,
                method_name="tensorflow/serving/predict",
            )
        )
    return signatures


def servicers(model, output_shapes: dict[str, list[int]]):
    """(PredictionService, ModelService) servicers around the served ``EncoderModel``."""
    import grpc
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    def check_spec(spec) -> None:
        if spec.name != model.name:
            raise ClientError("NOT_FOUND", f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version") and spec.version.value != VERSION:
            raise ClientError(
                "NOT_FOUND",
                f"Servable not found for request: Specific({spec.name}, {spec.version.value})",
            )

    async def fail(context, error: ClientError):
        await context.abort(getattr(grpc.StatusCode, error.code), str(error))

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            try:
                check_spec(request.model_spec)
                signature = request.model_spec.signature_name or SIGNATURE_ENCODED
                if signature not in SIGNATURE_INPUTS:
                    raise ClientError(
                        "INVALID_ARGUMENT",
                        f"signature {signature!r} not found; have {sorted(SIGNATURE_INPUTS)}",
                    )
                wanted = SIGNATURE_INPUTS[signature]
                if set(request.inputs) != {wanted}:
                    raise ClientError(
                        "INVALID_ARGUMENT",
                        f"signature {signature} takes one input {wanted!r}, "
                        f"got {sorted(request.inputs)}",
                    )
                outputs = list(request.output_filter) or list(OUTPUT_NAMES)
                if unknown := set(outputs) - set(OUTPUT_NAMES):
                    raise ClientError("INVALID_ARGUMENT", f"unknown outputs {sorted(unknown)}")
                limits = model.config.limits
                images = images_from_tensor(request.inputs[wanted], signature, limits)
                try:
                    batch = await asyncio.to_thread(model._prepare, images)
                except (codec.BadRequest, ImageError) as error:
                    raise ClientError("INVALID_ARGUMENT", str(error)) from error
            except ClientError as error:
                return await fail(context, error)
            result = await model.batcher.submit(batch)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = model.name
            response.model_spec.version.value = VERSION
            response.model_spec.signature_name = signature
            for name in outputs:
                response.outputs[name].CopyFrom(float_tensor(result[name]))
            return response

        async def GetModelMetadata(self, request, context):
            try:
                check_spec(request.model_spec)
                if list(request.metadata_field) != ["signature_def"]:
                    raise ClientError(
                        "INVALID_ARGUMENT", "metadata_field must be ['signature_def']"
                    )
            except ClientError as error:
                return await fail(context, error)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = model.name
            response.model_spec.version.value = VERSION
            response.metadata["signature_def"].Pack(signature_defs(output_shapes))
            return response

    class Status(model_service_pb2_grpc.ModelServiceServicer):
        async def GetModelStatus(self, request, context):
            try:
                check_spec(request.model_spec)
            except ClientError as error:
                return await fail(context, error)
            response = get_model_status_pb2.GetModelStatusResponse()
            status = response.model_version_status.add()
            status.version = VERSION
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            return response

    return Prediction(), Status()


def add_to_server(server, model, output_shapes: dict[str, list[int]]) -> None:
    """Registers both services on a ``grpc.aio`` server."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    prediction, status = servicers(model, output_shapes)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(status, server)
