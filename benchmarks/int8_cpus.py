"""int8 ONNX accuracy per quantisation setting, on this CPU and on emulated older CPUs.

Exports seeded random-init encoders (the tests' tiny one; ViT-Tiny/16 at 224 px) to fp32
ONNX, quantises each with ONNX Runtime's dynamic int8 under every combination of
per-channel scales and reduced (7-bit) weight range, and reports the minimum per-image
cosine of int8 against fp32 (embedding, cls) on 8 check images: natively and under QEMU
with the CPUID of an AVX2 CPU without VNNI ("Haswell-v4") and of an AVX-only CPU
("SandyBridge"), where ONNX Runtime runs other int8 kernels (tests/export/emulated_cpu.py).
The export uses per-channel + reduced range (siameseim_tf/export/onnx.py). JSON out.

    python benchmarks/int8_cpus.py --output benchmarks/results_int8_cpus_zen5_epyc.json
    python benchmarks/int8_cpus.py --cpus --output ...   # this CPU only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import siameseim_tf  # noqa: E402, F401 - before TensorFlow: turns on its oneDNN rewrites

# isort: split

import keras  # noqa: E402

from benchmarks.train_step import print_report  # noqa: E402
from siameseim_tf.export.common import parity, sample_pixels  # noqa: E402
from siameseim_tf.export.onnx import export_onnx, run_onnx  # noqa: E402
from siameseim_tf.models.vit import ViTEncoder, preset_arguments  # noqa: E402
from siameseim_tf.serving.preprocessing import preprocess_uint8  # noqa: E402
from siameseim_tf.training.machine import cpu_model  # noqa: E402
from tests.export.emulated_cpu import onnx_outputs_on, qemu_skip_reason  # noqa: E402
from tests.export.tiny import make_tiny_encoder  # noqa: E402

SETTINGS = [(False, False), (True, False), (False, True), (True, True)]  # (channel, reduce)


def encoders() -> dict:
    keras.utils.set_random_seed(0)
    vit_tiny = ViTEncoder(**preset_arguments("tiny", image_size=224, patch_size=16))
    return {"tiny_32px_2_blocks": make_tiny_encoder(), "vit_tiny_16_224px": vit_tiny}


def min_cosines(fp32: dict, int8: dict) -> dict:
    return {
        name: round(parity(fp32[name], int8[name]).min_cosine, 6) for name in ("embedding", "cls")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cpus",
        nargs="*",
        default=["Haswell-v4", "SandyBridge"],
        help="QEMU CPU models to emulate; none (a bare --cpus) = this CPU only",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds per emulated run (QEMU is slow)"
    )
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    skip = qemu_skip_reason()
    report = {"host_cpu": cpu_model(), "emulated": [] if skip else args.cpus, "rows": []}
    if skip:
        report["emulation_skipped"] = skip
    with tempfile.TemporaryDirectory() as tmp:
        for model_name, encoder in encoders().items():
            path = os.path.join(tmp, f"{model_name}.onnx")
            export_onnx(encoder, path, verbose=False)
            size = encoder.image_size
            images = preprocess_uint8(sample_pixels(8, size + 21, size + 7, seed=1), size).numpy()
            for per_channel, reduce_range in SETTINGS:
                int8_path = os.path.join(tmp, f"{model_name}.{per_channel}.{reduce_range}.onnx")
                quantize_dynamic(
                    path,
                    int8_path,
                    weight_type=QuantType.QInt8,
                    per_channel=per_channel,
                    reduce_range=reduce_range,
                )
                row = {
                    "model": model_name,
                    "per_channel": per_channel,
                    "reduce_range": reduce_range,
                    "native": min_cosines(run_onnx(path, images), run_onnx(int8_path, images)),
                }
                for cpu in report["emulated"]:
                    features, (fp32, int8) = onnx_outputs_on(
                        cpu, [path, int8_path], images, timeout=args.timeout
                    )
                    row[cpu] = min_cosines(fp32, int8)
                    row[f"{cpu}_cpuid"] = features
                print(row, flush=True)
                report["rows"].append(row)
    print_report(report, args.output)


if __name__ == "__main__":
    main()
