"""TF Serving's gRPC API (PredictionService, ModelService) called with the official
tensorflow-serving-api stubs, as a TF Serving client would on port 8500."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.serving.conftest import MODEL_NAME, TFSERVING_STUBS, assert_close

pytestmark = pytest.mark.skipif(
    not TFSERVING_STUBS,
    reason="tensorflow-serving-api not installed (scripts/setup.sh installs it)",
)


@pytest.fixture(scope="module")
def channel(server, server_ports):
    with grpc.insecure_channel(f"127.0.0.1:{server_ports['tfserving']}") as channel:
        yield channel


def _predict_request(signature: str, tensor, name: str = MODEL_NAME, outputs=()):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.inputs["images" if signature in ("", "serving_default") else "pixels"].CopyFrom(tensor)
    request.output_filter.extend(outputs)
    return request


def test_predict_with_jpeg_bytes_matches_keras(channel, served_files, reference):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    payloads = [open(p, "rb").read() for p in served_files["images"][:2]]
    response = stub.Predict(_predict_request("", tf.make_tensor_proto(payloads)), timeout=30)
    assert response.model_spec.version.value == 1
    assert set(response.outputs) == {"embedding", "cls", "patch_tokens"}
    for k in range(2):
        for name in ("embedding", "cls"):
            assert_close(tf.make_ndarray(response.outputs[name])[k], reference[k][name])


def test_predict_pixels_with_output_filter(channel, served_files):
    import tensorflow as tf
    from PIL import Image
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    pixels = np.asarray(Image.open(served_files["images"][0]).convert("RGB"))[None]
    request = _predict_request("embed_pixels", tf.make_tensor_proto(pixels), outputs=["embedding"])
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["embedding"]
    assert tf.make_ndarray(response.outputs["embedding"]).shape == (1, 192)


def test_metadata_and_status(channel):
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL_NAME
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert list(default.inputs) == ["images"] and "embedding" in default.outputs
    assert list(signatures.signature_def["embed_pixels"].inputs) == ["pixels"]
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = MODEL_NAME
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request)
    assert status.model_version_status[0].version == 1
    assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.mark.parametrize(
    "case, code",
    [
        ("unknown model", grpc.StatusCode.NOT_FOUND),
        ("unknown signature", grpc.StatusCode.INVALID_ARGUMENT),
        ("not an image", grpc.StatusCode.INVALID_ARGUMENT),
        ("float pixels", grpc.StatusCode.INVALID_ARGUMENT),
        ("unknown output", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_requests_get_tf_serving_status_codes(channel, case, code):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    text = tf.make_tensor_proto([b"not an image"])
    request = {
        "unknown model": _predict_request("", text, name="other"),
        "unknown signature": _predict_request("classify", text),
        "not an image": _predict_request("", text),
        "float pixels": _predict_request(
            "embed_pixels", tf.make_tensor_proto(np.zeros((1, 8, 8, 3)))
        ),
        "unknown output": _predict_request("", text, outputs=["logits"]),
    }[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=30)
    assert caught.value.code() == code and caught.value.details()
    good = _predict_request("embed_pixels", tf.make_tensor_proto(np.zeros((1, 8, 8, 3), np.uint8)))
    assert "embedding" in stub.Predict(good, timeout=30).outputs  # the channel still works
