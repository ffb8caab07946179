"""The server refuses ONNX files whose preprocessing metadata differs from its own."""

from __future__ import annotations

import subprocess
import sys

import onnx
import pytest

from siameseim_tf.serving.runtime import EncoderRuntime, ModelMismatch


def _with_metadata(source: str, target: str, key: str, value: str | None) -> str:
    model = onnx.load(source)
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if value is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, target)
    return target


def test_runtime_reads_metadata(served_files):
    runtime = EncoderRuntime(served_files["onnx"])
    assert (runtime.image_size, runtime.embed_dim, runtime.num_patches) == (32, 192, 16)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("siameseim.mean", "[0.5, 0.5, 0.5]", "siameseim.mean"),
        ("siameseim.resize_size", "32", "resize size"),
        ("siameseim.image_size", None, "no siameseim metadata"),
    ],
)
def test_mismatched_model_is_refused(served_files, tmp_path, key, value, message):
    path = _with_metadata(served_files["onnx"], str(tmp_path / "bad.onnx"), key, value)
    with pytest.raises(ModelMismatch, match=message):
        EncoderRuntime(path)


def test_serve_cli_reports_mismatch_in_one_line(served_files, tmp_path):
    path = _with_metadata(
        served_files["onnx"], str(tmp_path / "bad.onnx"), "siameseim.std", "[1, 1, 1]"
    )
    result = subprocess.run(
        [sys.executable, "-m", "siameseim_tf.cli", "serve", "--model", path, "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("siameseim serve: error: ")
    assert "siameseim.std" in result.stderr


def test_device_choice_never_falls_back_silently():
    from siameseim_tf.serving.runtime import DeviceUnavailable, providers_for

    cpu_only = ["CPUExecutionProvider"]
    with_cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cpu", with_cuda) == cpu_only
    assert providers_for("auto", cpu_only) == cpu_only
    assert providers_for("auto", with_cuda) == with_cuda
    assert providers_for("cuda", with_cuda) == with_cuda
    assert providers_for("tensorrt", with_cuda + ["TensorrtExecutionProvider"])[0].startswith(
        "Tensorrt"
    )
    with pytest.raises(DeviceUnavailable, match="onnxruntime-gpu"):
        providers_for("cuda", cpu_only)


def test_serve_cli_without_the_gpu_provider_is_a_one_line_error(served_files):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the error path cannot be reached here")
    command = [sys.executable, "-m", "siameseim_tf.cli", "serve", "--model"]
    result = subprocess.run(
        [*command, served_files["onnx"], "--port", "1", "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "CUDAExecutionProvider is not in this onnxruntime" in result.stderr.splitlines()[-1]
