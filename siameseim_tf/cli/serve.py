"""`siameseim serve`: an exported ONNX encoder over TF Serving REST v1 and Open Inference v2.

Imports neither TensorFlow nor (until it runs) the serving stack.
"""

from __future__ import annotations

import argparse
import os

from siameseim_tf.cli import UserError

DEFAULT_OUTPUTS = "embedding,cls,patch_tokens"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Registers the arguments of `siameseim serve`."""
    parser.add_argument("--model", required=True, help="ONNX file from `siameseim export`")
    parser.add_argument("--name", default="siameseim", help="model name in the URLs")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default: loopback only; 0.0.0.0 to expose)",
    )
    parser.add_argument("--port", type=int, default=8501, help="HTTP port (default: 8501)")
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="also serve the Open Inference v2 gRPC API (KServe's GRPCInferenceService) "
        "on this port, on --host (default: no gRPC)",
    )
    parser.add_argument(
        "--tfserving-grpc-port",
        type=int,
        default=None,
        help="also serve TF Serving's gRPC API (PredictionService Predict / "
        "GetModelMetadata, ModelService GetModelStatus; TF Serving uses 8500) on this port; "
        "needs tensorflow-serving-api (imports TensorFlow)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=32.0,
        help="largest request body in MiB (413 above; default 32)",
    )
    parser.add_argument(
        "--max-images", type=int, default=64, help="images per request (413 above; default 64)"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=40_000_000,
        help="pixels per image, checked before decoding (413; default 40e6)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=32,
        help="images per model call when batching requests (1: no batching)",
    )
    parser.add_argument(
        "--batch-timeout-ms",
        type=float,
        default=2.0,
        help="how long a request waits for others to batch with (default 2)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)"
    )
    parser.add_argument(
        "--ort-spinning",
        action="store_true",
        help="let ONNX Runtime threads busy-wait (faster on dedicated cores only)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "tensorrt", "auto"),
        default="cpu",
        help="ONNX Runtime execution provider (cuda / tensorrt need onnxruntime-gpu; "
        "auto: CUDA when available, else CPU)",
    )
    parser.add_argument(
        "--outputs",
        default=DEFAULT_OUTPUTS,
        help=f"outputs of v1 responses (default: {DEFAULT_OUTPUTS})",
    )
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from siameseim_tf.serving.codec import Limits
    from siameseim_tf.serving.contract import OUTPUT_NAMES
    from siameseim_tf.serving.server import ServeConfig

    if not os.path.isfile(args.model):
        raise UserError(f"model {args.model!r} does not exist")
    outputs = tuple(name.strip() for name in args.outputs.split(",") if name.strip())
    if not outputs or set(outputs) - set(OUTPUT_NAMES):
        raise UserError(f"--outputs must be a subset of {','.join(OUTPUT_NAMES)}")
    for flag in ("grpc_port", "tfserving_grpc_port"):
        value = getattr(args, flag)
        if value is not None and not 0 < value < 65536:
            raise UserError(f"--{flag.replace('_', '-')} must be 1..65535, got {value}")
    if args.tfserving_grpc_port is not None:
        import importlib.util

        if importlib.util.find_spec("tensorflow_serving") is None:
            raise UserError(
                "--tfserving-grpc-port needs TF Serving's stubs: pip install --no-deps "
                "'tensorflow-serving-api>=2.21,<2.22' (next to your TensorFlow)"
            )
    for flag in ("max_images", "max_pixels", "max_batch", "port"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be positive")
    if args.max_body_mb <= 0 or args.batch_timeout_ms < 0 or args.threads < 0:
        raise UserError("--max-body-mb must be > 0, --batch-timeout-ms and --threads >= 0")
    limits = Limits(int(args.max_body_mb * 1024 * 1024), args.max_images, args.max_pixels)
    return ServeConfig(
        model_path=args.model,
        name=args.name,
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        tfserving_grpc_port=args.tfserving_grpc_port,
        limits=limits,
        max_batch=args.max_batch,
        batch_timeout_ms=args.batch_timeout_ms,
        threads=args.threads,
        spinning=args.ort_spinning,
        device=args.device,
        outputs=outputs,
    )


def run(args: argparse.Namespace) -> int:
    """Loads the model and serves until interrupted."""
    config = _config(args)
    from siameseim_tf.serving.app import run as serve
    from siameseim_tf.serving.runtime import DeviceUnavailable, ModelMismatch

    print(
        f"serving {config.model_path} as '{config.name}' on http://{config.host}:"
        f"{config.port} (REST v1: /v1/models/{config.name}:predict, "
        f"v2: /v2/models/{config.name}/infer)"
        + (f"; gRPC v2 on {config.host}:{config.grpc_port}" if config.grpc_port else "")
        + (
            f"; TF Serving gRPC on {config.host}:{config.tfserving_grpc_port}"
            if config.tfserving_grpc_port
            else ""
        ),
        flush=True,
    )
    try:
        serve(config)
    except (ModelMismatch, DeviceUnavailable) as error:
        raise UserError(str(error)) from error
    return 0
