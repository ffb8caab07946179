"""Open Inference v2 over gRPC, called with grpcio and KServe's generated stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.serving.conftest import MODEL_NAME


@pytest.fixture(scope="module")
def stub(grpc_target):
    with grpc.insecure_channel(grpc_target) as channel:
        yield GRPCInferenceServiceStub(channel)


def _images_request(payloads: list[bytes], outputs=("embedding",)) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="images",
        datatype="BYTES",
        shape=[len(payloads)],
        contents=pb.InferTensorContents(bytes_contents=payloads),
    )
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name=o) for o in outputs]
    return pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor], outputs=wanted)


def test_health_and_metadata(stub):
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME)).ready
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL_NAME))
    assert {o.name: list(o.shape) for o in meta.outputs}["embedding"] == [-1, 192]


def test_infer_jpeg_bytes_matches_keras(stub, served_files, reference):
    payloads = [open(p, "rb").read() for p in served_files["images"][:2]]
    response = stub.ModelInfer(_images_request(payloads))
    (output,) = response.outputs
    assert output.name == "embedding" and list(output.shape) == [2, 192]
    if response.raw_output_contents:
        values = np.frombuffer(response.raw_output_contents[0], np.float32)
    else:
        values = np.asarray(output.contents.fp32_contents, np.float32)
    expected = np.stack([r["embedding"] for r in reference[:2]])
    np.testing.assert_allclose(values.reshape(2, 192), expected, atol=1e-4)


def test_bad_requests_are_invalid_argument(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(_images_request([b"not an image"]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(_images_request([b"x"], outputs=("logits",)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = _images_request([b"x"])
    request.model_name = "other"
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_infer_uint8_pixels(stub, served_files, reference):
    from PIL import Image

    pixels = np.asarray(Image.open(served_files["images"][0]).convert("RGB"), np.uint8)
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="pixels", datatype="UINT8", shape=[1, *pixels.shape]
    )
    request = pb.ModelInferRequest(
        model_name=MODEL_NAME, inputs=[tensor], raw_input_contents=[pixels.tobytes()]
    )
    response = stub.ModelInfer(request)
    names = [o.name for o in response.outputs]
    index = names.index("embedding")
    if response.raw_output_contents:
        values = np.frombuffer(response.raw_output_contents[index], np.float32)
    else:
        values = np.asarray(response.outputs[index].contents.fp32_contents, np.float32)
    # Pixels decoded by PIL vs the reference's TF decode of the same file: JPEG decoders
    # may differ by a level or two, hence the tolerance.
    np.testing.assert_allclose(values, reference[0]["embedding"], atol=5e-2)
