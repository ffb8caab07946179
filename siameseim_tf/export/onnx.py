"""ONNX export of the encoder (tf2onnx), checked with onnx.checker and ONNX Runtime.

The ONNX model takes **preprocessed** images: input ``images`` float32 [B, S, S, 3] (NHWC,
dynamic batch), i.e. the output of the shared preprocessing
(:mod:`siameseim_tf.serving.preprocessing`); it returns ``embedding`` [B, E], ``cls``
[B, E] and ``patch_tokens`` [B, N, E]. Opset :data:`~siameseim_tf.serving.contract.ONNX_OPSET`.
The preprocessing constants, image size and output names are stored in the model's
``metadata_props`` so that a server can check it preprocesses the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from siameseim_tf.export.common import (
    ExportVerificationError,
    Parity,
    check_parity,
    float32_copy,
    is_classifier,
    output_names,
    parity,
    sample_pixels,
    serving_outputs,
)
from siameseim_tf.serving import contract
from siameseim_tf.serving.preprocessing import IMAGENET_MEAN, IMAGENET_STD, resize_size
from siameseim_tf.serving.preprocessing_tf import preprocess_uint8


@dataclass
class OnnxExport:
    """Where the files went and how well they agree with the Keras encoder."""

    path: str
    parity: dict[str, Parity]
    int8_path: str | None = None
    int8_parity: dict[str, Parity] = field(default_factory=dict)  # int8 vs fp32 ONNX


def _convert(encoder: keras.Model, opset: int):
    """tf2onnx conversion of the serving outputs; returns an onnx.ModelProto."""
    import tf2onnx

    size = encoder.image_size
    spec = [tf.TensorSpec([None, size, size, 3], tf.float32, name=contract.ONNX_INPUT_NAME)]

    @tf.function(input_signature=spec)
    def serve(images):  # float32 [B, S, S, 3] -> outputs
        return serving_outputs(encoder, images)

    model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    _check_io(model_proto, output_names(encoder))
    return model_proto


def _check_io(model_proto, expected: tuple[str, ...] = contract.OUTPUT_NAMES) -> None:
    """Checks the output names (tf2onnx takes them from the dict keys); names the batch axis."""
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output):  # dynamic batch axis named "batch"
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    found = sorted(o.name for o in graph.output)
    if found != sorted(expected):
        raise ExportVerificationError(f"ONNX outputs {found}, expected {expected}")


def _add_metadata(
    model_proto, encoder: keras.Model, model_name: str, version: int, opset: int
) -> None:
    """Model name / version, preprocessing constants and I/O description as metadata."""
    model = encoder
    encoder = getattr(model, "encoder", model)
    size = encoder.image_size
    model_proto.producer_name = "siameseim-tf"
    model_proto.model_version = int(version)
    model_proto.doc_string = (
        f"SiameseIM ViT encoder '{model_name}' v{version}. Input '{contract.ONNX_INPUT_NAME}': "
        f"{contract.INPUT_LAYOUT}, [B, {size}, {size}, 3]. Outputs: embedding (mean of patch "
        "tokens) [B, E], cls [B, E], patch_tokens [B, N, E]"
        + (", probabilities [B, C] (class names in metadata)." if is_classifier(model) else ".")
    )
    meta = {
        contract.META_MODEL_NAME: model_name,
        contract.META_VERSION: str(int(version)),
        contract.META_IMAGE_SIZE: str(size),
        contract.META_RESIZE_SIZE: str(resize_size(size)),
        contract.META_MEAN: json.dumps(list(IMAGENET_MEAN)),
        contract.META_STD: json.dumps(list(IMAGENET_STD)),
        contract.META_LAYOUT: contract.INPUT_LAYOUT,
        contract.META_OUTPUTS: json.dumps(list(output_names(model))),
        contract.META_PREPROCESSING: "shorter side to round(S*256/224), bilinear (half-pixel,"
        " no antialias), centre crop S, (x/255 - mean) / std",
        "siameseim.opset": str(opset),
        "siameseim.patch_size": str(encoder.patch_size),
        "siameseim.embed_dim": str(encoder.embed_dim),
    }
    if is_classifier(model):
        names = model.class_names or [str(k) for k in range(model.num_classes)]
        meta[contract.META_CLASS_NAMES] = json.dumps(names)
    del model_proto.metadata_props[:]
    for key, value in meta.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def run_onnx(path: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs an exported model with ONNX Runtime (CPU) on float32 [B, S, S, 3]."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {contract.ONNX_INPUT_NAME: images})))


def _test_inputs(encoder: keras.Model, batch: int) -> np.ndarray:
    """Preprocessed test images float32 [batch, S, S, 3]."""
    size = encoder.image_size
    return preprocess_uint8(sample_pixels(batch, size + 21, size + 7, seed=1), size).numpy()


# The int8 file is kept only if it agrees this well with the fp32 one (minimum per-image
# cosine on the check images); below, the export refuses it with the figures.
INT8_MIN_COSINE = {"embedding": 0.995, "cls": 0.99}


class Int8AccuracyError(ExportVerificationError):
    """The int8 model falls short of ``INT8_MIN_COSINE``; the fp32 file is kept."""


def quantize_int8(path: str, int8_path: str) -> str:
    """Dynamic int8 quantisation of the weights of MatMul / Gemm nodes (ORT).

    Per-channel weight scales and 7-bit weight range (``reduce_range``): ONNX Runtime's
    u8s8 kernels on x86 without VNNI can saturate the 16-bit intermediate sums with full
    8-bit weights (ORT quantisation docs), which made the result depend on the CPU.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        path, int8_path, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True
    )
    source, quantized = onnx.load(path, load_external_data=False), onnx.load(int8_path)
    if not quantized.metadata_props:  # keep the serving metadata on the quantised file
        quantized.metadata_props.extend(source.metadata_props)
        onnx.save(quantized, int8_path)
    return int8_path


def export_onnx(
    encoder: keras.Model,
    path: str,
    model_name: str = "siameseim",
    version: int = 1,
    *,
    opset: int = contract.ONNX_OPSET,
    quantize: bool = False,
    int8_min_cosine: dict[str, float] | None = None,
    atol: float = 1e-4,
    check_batch: int = 3,
    verbose: bool = True,
) -> OnnxExport:
    """Exports ``encoder`` to ONNX at ``path`` and checks it.

    Checks: ``onnx.checker.check_model``; an ONNX Runtime session on a batch of
    ``check_batch`` images (the graph is traced with an unknown batch) against the Keras
    encoder: prints max |diff| and cosine similarity per output, raises
    ExportVerificationError above ``atol``. With ``quantize``, also writes
    ``<path stem>.int8.onnx`` and reports its agreement with the fp32 model; an int8
    file whose cosine to fp32 falls below ``int8_min_cosine`` (default
    :data:`INT8_MIN_COSINE`) is deleted and :class:`Int8AccuracyError` raised with the
    figures (the fp32 file stays).
    """
    import onnx

    encoder = float32_copy(encoder)
    model_proto = _convert(encoder, opset)
    _add_metadata(model_proto, encoder, model_name, version, opset)
    onnx.checker.check_model(model_proto, full_check=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(model_proto, path)

    images = _test_inputs(encoder, check_batch)
    reference = {k: v.numpy() for k, v in serving_outputs(encoder, images).items()}
    fp32 = run_onnx(path, images)
    result = OnnxExport(path, check_parity("ONNX fp32", reference, fp32, atol, verbose))
    if quantize:
        result.int8_path = quantize_int8(path, os.path.splitext(path)[0] + ".int8.onnx")
        int8 = run_onnx(result.int8_path, images)
        result.int8_parity = {name: parity(fp32[name], int8[name]) for name in fp32}
        if verbose:
            for name, value in result.int8_parity.items():
                print(f"[ONNX int8 vs fp32] {name}: {value}")
        floors = INT8_MIN_COSINE if int8_min_cosine is None else int8_min_cosine
        short = {
            name: (result.int8_parity[name].min_cosine, floor)
            for name, floor in floors.items()
            if not result.int8_parity[name].min_cosine >= floor
        }
        if short:
            os.remove(result.int8_path)
            figures = ", ".join(f"{n} cosine {c:.5f} < {f}" for n, (c, f) in short.items())
            raise Int8AccuracyError(
                f"int8 model refused ({figures} vs fp32 on the check images); {path} "
                "(fp32) is written; lower the floor with --int8-min-cosine if that is enough"
            )
    return result
